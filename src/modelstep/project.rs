//! `plan --model ID --chip X --from-results FILE`: the measured step moved onto a chip part by
//! part, each part by its own bound. A part's roofline time is `max(bytes / bandwidth,
//! FLOPs / peak)` — bytes of its weights, scales and KV cache; FLOPs at the peak for the step's
//! format — on this machine (the run's calibration) and on the chip; the measured time is scaled
//! by their ratio. Decode parts are bytes-bound, prefill parts FLOP-bound, and a part that is
//! not (MLA's attention over a long cache is FLOP-bound even in decode) is scaled by what bounds
//! it. The efficiency the kernels reached here is carried over; the paper plan assumes 100 %.

use super::shapes::Part;
use super::steps::{PartSum, Step};
use crate::formats::Format;
use crate::profiles::Chip;
use crate::project::roofline::{calibration_peak, dot_peak, peak_for};
use crate::results::Calibration;
use crate::{Error, Result};

/// Bandwidth (bytes/s) and peak (FLOP/s) of a machine for one step format.
#[derive(Debug, Clone, PartialEq)]
pub struct Roof {
    pub bandwidth: f64,
    pub flops_s: f64,
    /// Which peak, in words.
    pub peak: String,
}

impl Roof {
    /// Roofline seconds of one part.
    pub fn seconds(&self, p: &PartSum) -> f64 {
        (p.bytes / self.bandwidth).max(p.flops / self.flops_s)
    }
    /// Whether the part is bound by bytes on this roof.
    pub fn memory_bound(&self, p: &PartSum) -> bool {
        p.bytes / self.bandwidth >= p.flops / self.flops_s
    }

    /// This machine, from a run's calibration: the read ceiling and the FMA peak at the step's
    /// threads (a part whose products ran on the BF16 dot-product units carries their roof in
    /// [`PartSum::compute_s`], which [`local_seconds`] prefers).
    pub fn local(cal: &Calibration, threads: usize) -> Result<Roof> {
        if cal.read_gbs.is_nan() || cal.read_gbs <= 0.0 {
            return Err(Error::config("results", "calibration.read_gbs", "no read bandwidth measured"));
        }
        let (t, g) = calibration_peak(cal, threads)
            .ok_or_else(|| Error::config("results", "calibration.fma_peak_gflops", "no FMA peak measured"))?;
        Ok(Roof {
            bandwidth: cal.read_gbs * 1e9,
            flops_s: g * 1e9,
            peak: format!("measured FMA peak ({t} threads)"),
        })
    }

    /// A chip profile for a step whose weights are stored in `format`.
    pub fn chip(chip: &Chip, format: Format) -> Result<Roof> {
        let bandwidth = chip.memory_bw_bytes_s().ok_or_else(|| {
            Error::Unsupported(format!("chip {}: memory_bw is not sourced; cannot project", chip.id))
        })?;
        let peak = peak_for(chip, format)?;
        Ok(Roof { bandwidth, flops_s: peak.flops_s, peak: peak.label })
    }
}

/// One step projected onto one chip.
#[derive(Debug, Clone, PartialEq)]
pub struct Projected {
    pub chip: String,
    /// Seconds per part on the chip, indexed like [`Part::ALL`].
    pub parts: [f64; 4],
    pub roof: Roof,
}

impl Projected {
    pub fn seconds(&self) -> f64 {
        self.parts.iter().sum()
    }
}

/// The weight format of a step (`e4m3:deepseek` → E4M3).
pub fn step_weight_format(step: &Step) -> Result<Format> {
    let f = step.step_format.split(':').next().unwrap_or("");
    f.parse().map_err(|_| {
        Error::invalid("model_step.step_format", &step.step_format, "f32, bf16, f16, e4m3, e5m2")
    })
}

/// A part's roofline time on this machine: its bytes at `local`'s bandwidth — the run's
/// sustained read bandwidth ([`super::steps::planner_read_gbs`]), as the run's planner takes it —
/// or its FLOPs at the compute roofs re-measured right after each of its products where every
/// product carries them (the paired roofs; a register-only loop moves little, but a moment
/// short of a vCPU shows there), else at the calibration's: each product's FLOPs at the roof of
/// the units its operands run on ([`PartSum::compute_s`]: the BF16 dot-product peak for
/// BF16/FP8 products on a CPU with those units), whichever takes longer.
///
/// Bytes do not take the read figure re-measured after each product (they did until
/// 2026-12-04): one 2-trial figure swings 25–60 GB/s on this VM, so a decode part could come
/// out faster than its own roof here and be projected above the chip's.
pub fn local_seconds(local: &Roof, p: &PartSum) -> f64 {
    let compute = if p.unpaired == 0 && p.paired_compute_s > 0.0 {
        p.paired_compute_s
    } else if p.compute_s > 0.0 {
        p.compute_s
    } else {
        p.flops / local.flops_s
    };
    (p.bytes / local.bandwidth).max(compute)
}

/// Project a measured step onto `chip`.
pub fn project(step: &Step, local: &Roof, chip: &Chip) -> Result<Projected> {
    let roof = Roof::chip(chip, step_weight_format(step)?)?;
    let mut parts = [0.0; 4];
    for (out, p) in parts.iter_mut().zip(&step.parts).take(Part::ALL.len()) {
        let here = local_seconds(local, p);
        *out = if here > 0.0 { p.seconds * roof.seconds(p) / here } else { 0.0 };
    }
    Ok(Projected { chip: chip.id.clone(), parts, roof })
}

/// The `plan --from-results` table: for every measured step of `model` in `run`, each chip's
/// projected step beside the paper plan (the planner at 100 % of the chip's roof).
pub fn render(run: &crate::results::Run, model: &crate::profiles::Model, chips: &[&Chip]) -> Result<String> {
    use crate::project::planner::{self, PlanOptions, WeightPrecision};
    use crate::report::markdown::{human_time, table};
    let cal = run.calibration.as_ref().ok_or_else(|| {
        Error::config("results", "calibration", "missing: the run was made with --no-calibration")
    })?;
    let all: Vec<Step> =
        super::steps::steps(run).into_iter().filter(|s| s.model == model.id && s.complete()).collect();
    let steps: Vec<Step> = all.iter().filter(|s| s.host_cpu).cloned().collect();
    if steps.is_empty() && !all.is_empty() {
        return Err(Error::Unsupported(format!(
            "{}: the run's model steps ran on wgpu, whose device the calibration does not measure; \
             projecting needs steps measured on cpu or candle",
            model.id
        )));
    }
    if steps.is_empty() {
        return Err(Error::config(
            "results",
            "records",
            format!("no complete model step of {} (run `chipbench run --model {}`)", model.id, model.id),
        ));
    }
    let sustained = super::steps::planner_read_gbs(run);
    let mut rows = Vec::new();
    // Why a chip × format was not projected, once each, under the table (a reason in the cell
    // would widen the column for every row).
    let mut unprojected: Vec<String> = Vec::new();
    for st in &steps {
        let mut local = Roof::local(cal, st.threads)?;
        if let Some((gbs, _)) = &sustained {
            local.bandwidth = gbs * 1e9;
        }
        let precision = match step_weight_format(st)? {
            Format::BF16 => Some(WeightPrecision::Bf16),
            f if f.is_fp8() => Some(WeightPrecision::Fp8),
            _ => None,
        };
        for chip in chips {
            let p = match project(st, &local, chip) {
                Ok(p) => p,
                Err(e) => {
                    // A chip without the figure this step needs (no FP32 peak on the 910C): say so.
                    let mut row =
                        vec![chip.id.clone(), st.step_format.clone(), st.test(), human_time(st.seconds())];
                    row.push("not projected (below)".into());
                    let why = format!("- {} {}: not projected: {e}\n", chip.id, st.step_format);
                    if !unprojected.contains(&why) {
                        unprojected.push(why);
                    }
                    row.extend(std::iter::repeat_n("-".to_string(), 4));
                    rows.push(row);
                    continue;
                }
            };
            let paper = precision.and_then(|precision| {
                let o = PlanOptions {
                    precision,
                    context: st.context,
                    prompt: Some(st.prompt),
                    batch: st.batch,
                    ..PlanOptions::default()
                };
                let plan = planner::plan(model, chip, &o).ok()?;
                Some(match st.phase {
                    super::Phase::Decode => plan.decode.per_chip,
                    super::Phase::Prefill => plan.prefill.per_chip,
                })
            });
            let tps = st.tokens() as f64 / p.seconds();
            let shares: Vec<String> =
                p.parts.iter().map(|x| format!("{:.0} %", 100.0 * x / p.seconds())).collect();
            rows.push(vec![
                chip.id.clone(),
                st.step_format.clone(),
                st.test(),
                human_time(st.seconds()),
                human_time(p.seconds()),
                format!("{tps:.1}"),
                shares.join(" / "),
                paper.map_or("-".into(), |x| format!("{x:.1}")),
                paper.map_or("-".into(), |x| format!("{:.2}", tps / x)),
            ]);
        }
    }
    let header = [
        "chip",
        "format",
        "test",
        "step here",
        "step on chip",
        "t/s on chip",
        "attn proj / KV / FFN / head",
        "paper plan t/s",
        "measured-scaled / paper",
    ];
    let paired = steps.iter().all(|st| st.parts.iter().all(|p| p.unpaired == 0));
    let read = sustained
        .map_or_else(|| format!("{:.1} GB/s, the calibration's read ceiling", cal.read_gbs), |s| s.1);
    let here = if paired {
        format!(
            "bytes at the run's sustained read bandwidth ({read}), FLOPs at the compute roof (FMA, or the BF16 \
             dot-product or tile peak for BF16/FP8 products on a CPU with those units) re-measured right after each \
             product"
        )
    } else {
        let dot = dot_peak(cal, steps[0].threads)
            .map_or(String::new(), |(_, g, unit)| format!(", {g:.1} GFLOP/s {unit} (BF16/FP8 products)"));
        format!(
            "bytes at {read}, {:.1} GFLOP/s FMA{dot}",
            calibration_peak(cal, steps[0].threads).map_or(0.0, |x| x.1)
        )
    };
    Ok(format!(
        "## {} measured here ({}), scaled part by part onto each chip\n\n{}\n{}Each part's measured time × its \
         roofline time on the chip / its roofline time here (bytes at the memory bandwidth or FLOPs at the \
         format's peak, whichever bounds it; here: {here}). The paper plan assumes 100 % of the roof on one \
         chip; the chips needed to hold the model are not applied to either column.\n",
        model.name,
        run.run_id,
        table(&header, &rows),
        if unprojected.is_empty() { String::new() } else { unprojected.concat() + "\n" },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modelstep::Phase;

    fn step(parts: [PartSum; 4]) -> Step {
        Step {
            model: "m".into(),
            phase: Phase::Decode,
            step_format: "bf16:none".into(),
            backend: "cpu".into(),
            host_cpu: true,
            threads: 2,
            batch: 1,
            prompt: 512,
            context: 128,
            parts,
            valid: 4,
            expected: 4,
            invalid: 0,
        }
    }

    #[test]
    fn each_part_scales_by_its_own_bound() {
        let local = Roof { bandwidth: 10e9, flops_s: 100e9, peak: "x".into() };
        // Part 0 bytes-bound (1 GB, 1 GFLOP), part 1 FLOP-bound (1 MB, 100 GFLOP).
        let parts = [
            PartSum { seconds: 0.2, bytes: 1e9, flops: 1e9, ..Default::default() },
            PartSum { seconds: 2.0, bytes: 1e6, flops: 100e9, ..Default::default() },
            PartSum::default(),
            PartSum::default(),
        ];
        assert!(local.memory_bound(&parts[0]) && !local.memory_bound(&parts[1]));
        let chip = crate::profiles::chip("h20").unwrap();
        let p = project(&step(parts), &local, &chip).unwrap();
        let bw = chip.memory_bw_bytes_s().unwrap();
        let peak = peak_for(&chip, Format::BF16).unwrap().flops_s;
        // 0.2 s measured against a 0.1 s roofline here: half efficiency carried to the chip.
        assert!((p.parts[0] - 0.2 * (1e9 / bw).max(1e9 / peak) / 0.1).abs() < 1e-12);
        assert!((p.parts[1] - 2.0 * (1e6 / bw).max(100e9 / peak) / 1.0).abs() < 1e-12);
        assert_eq!(p.parts[2], 0.0);
        // With the roofs each product carried (paired), a part's FLOPs are at the compute roof of
        // its moment: part 1's peak was half the calibrated one, so its efficiency was double.
        // Its bytes stay at `local`'s bandwidth (the sustained one): a paired read figure is
        // ignored.
        let mut paired = parts;
        paired[0].paired_read_s = 0.05;
        paired[0].paired_compute_s = 0.01;
        paired[1].paired_compute_s = 2.0;
        let q = project(&step(paired), &local, &chip).unwrap();
        assert_eq!(q.parts[0], p.parts[0], "bytes at the sustained bandwidth, not the paired figure");
        assert!((q.parts[1] - 2.0 * (1e6 / bw).max(100e9 / peak) / 2.0).abs() < 1e-12);
        paired[1].unpaired = 1;
        let r = project(&step(paired), &local, &chip).unwrap();
        assert_eq!(r.parts[1], p.parts[1], "one product without roofs: the calibration's for the part");
    }
}
