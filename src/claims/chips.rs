//! Checks on the sourced chip and model profiles (and the planner built on them).
//!
//! Chip figures are mostly press reports and analyst estimates, often disagreeing; a check looks
//! at every alternative a profile keeps and at every reading of an ambiguous figure (an
//! interconnect total whose direction no source states), and only calls a claim supported when
//! all readings agree.

use super::measured::{format_speedups, run_ids};
use super::{median, sig3, Finding, LoadedRun, Verdict};
use crate::formats::Format;
use crate::profiles::{self, Chip, Direction, Figure, Precision};
use crate::project::planner::{self, Plan, PlanOptions, WeightPrecision};
use crate::{Error, Result};

/// The first web address in a source string, without the scheme, shortened for a table cell.
pub fn short_source(source: &str) -> String {
    let token = source
        .split_whitespace()
        .find(|t| t.starts_with("http"))
        .map(|t| t.trim_start_matches("https://").trim_start_matches("http://"))
        .map(|t| t.trim_end_matches([')', ',', ';', '.', '\'']))
        .unwrap_or(source);
    if token.chars().count() > 60 {
        format!("{}…", token.chars().take(59).collect::<String>())
    } else {
        token.to_string()
    }
}

fn figure<'a>(chip: &'a Chip, field: &str) -> Result<&'a Figure> {
    let f = match field {
        "interconnect" => chip.interconnect.as_ref(),
        "memory_bw" => chip.memory_bw.as_ref(),
        "memory" => chip.memory.as_ref(),
        _ => return Err(Error::invalid("check field", field, "interconnect, memory_bw, memory")),
    };
    f.ok_or_else(|| Error::Other(format!("chip {} has no {field} figure", chip.id)))
}

fn cite(chip: &Chip, field: &str, f: &Figure) -> String {
    format!("profile {} {field}: {}", chip.id, short_source(&f.source))
}

/// Every reading of a figure as a comparable total: the value and its alternatives, and for an
/// interconnect whose direction is unstated, also the per-direction reading (doubled to a total).
fn readings(f: &Figure) -> Vec<(f64, String)> {
    let mut values: Vec<(f64, String)> = f.get().map(|v| (v, "main".to_string())).into_iter().collect();
    values.extend(
        f.alternatives.iter().map(|a| (a.value, format!("alternative ({})", short_source(&a.source)))),
    );
    if f.direction == Some(Direction::Unstated) {
        let doubled: Vec<(f64, String)> =
            values.iter().map(|(v, w)| (v * 2.0, format!("{w} read as per direction"))).collect();
        values.extend(doubled);
    }
    values
}

pub fn compare(field: &str, chip: &str, versus: &str) -> Result<Finding> {
    let list = profiles::chips()?;
    let (a, b) = (profiles::find_chip(&list, chip)?, profiles::find_chip(&list, versus)?);
    let (fa, fb) = (figure(a, field)?, figure(b, field)?);
    let vb = fb.get().ok_or_else(|| Error::Other(format!("{} {field} is {}", b.id, fb.status().label())))?;
    let unit = fb.unit.clone().unwrap_or_default();
    let dir = |f: &Figure| match f.direction {
        Some(Direction::Bidirectional) => " (bidirectional total)",
        Some(Direction::PerDirection) => " (per direction)",
        Some(Direction::Unstated) => " (direction unstated)",
        None => "",
    };
    let rs = readings(fa);
    if rs.is_empty() {
        return Err(Error::Other(format!("{} {field} is {}", a.id, fa.status().label())));
    }
    let mut numbers = vec![format!("{} {field} {} {unit}{}", b.id, sig3(vb), dir(fb))];
    for (v, what) in &rs {
        numbers.push(format!("{} {what}: {} {unit}{} = {}x", a.id, sig3(*v), dir(fa), sig3(v / vb)));
    }
    let lower = rs.iter().filter(|(v, _)| *v < vb).count();
    let verdict = match lower {
        0 => Verdict::NotSupported,
        n if n == rs.len() => Verdict::Supported,
        _ => Verdict::Partly,
    };
    Ok(Finding::new(verdict, numbers, vec![cite(a, field, fa), cite(b, field, fb)]))
}

/// The fastest sourced native dense peak among FP8, BF16, FP16, with its precision (TFLOPS).
fn best_native(chip: &Chip) -> Option<(f64, Precision)> {
    [Precision::Fp8, Precision::Bf16, Precision::Fp16]
        .into_iter()
        .filter(|&p| chip.is_native(p))
        .filter_map(|p| chip.peak_figure(p).and_then(Figure::get).map(|v| (v, p)))
        .max_by(|a, b| a.0.total_cmp(&b.0))
}

/// A sourced dense peak in a precision the chip runs natively.
fn native_peak(chip: &Chip, p: Precision) -> Option<f64> {
    chip.peak_figure(p).filter(|_| chip.is_native(p)).and_then(Figure::get)
}

fn bf16(chip: &Chip) -> Option<f64> {
    chip.peak_figure(Precision::Bf16).and_then(Figure::get)
}

fn peak_cite(chip: &Chip, p: Precision) -> Option<String> {
    chip.peak_figure(p).map(|f| format!("profile {} peak.{p}: {}", chip.id, short_source(&f.source)))
}

pub fn fp8_compute_ratio(min_ratio: f64, runs: &[LoadedRun]) -> Result<Finding> {
    let list = profiles::chips()?;
    let (mut with, mut without, mut weak, mut from) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for c in &list {
        let Some(b) = bf16(c) else { continue };
        if !c.is_native(Precision::Fp8) {
            without.push(c.id.clone());
            continue;
        }
        let Some(f8) = c.peak_figure(Precision::Fp8).and_then(Figure::get) else { continue };
        let entry = format!("{} {}x", c.id, sig3(f8 / b));
        if f8 / b >= min_ratio {
            with.push(entry);
        } else {
            weak.push(entry);
        }
    }
    from.push("chip profiles peak.fp8 / peak.bf16 (dense), every embedded profile".to_string());
    let total = with.len() + without.len() + weak.len();
    if total == 0 {
        return Err(Error::Other("no chip profile has a BF16 peak".into()));
    }
    let verdict = match with.len() {
        0 => Verdict::NotSupported,
        n if n == total => Verdict::Supported,
        _ => Verdict::Partly,
    };
    let mut numbers =
        vec![format!("FP8 peak >= {min_ratio}x BF16 on {}/{total} chips: {}", with.len(), with.join(", "))];
    if !weak.is_empty() {
        numbers.push(format!("FP8 below {min_ratio}x BF16: {}", weak.join(", ")));
    }
    if !without.is_empty() {
        numbers.push(format!("no FP8 units (no compute gain): {}", without.join(", ")));
    }
    let (mut gemm, _, used) = format_speedups(runs, "gemm", Format::BF16);
    if !gemm.is_empty() {
        let n = gemm.len();
        numbers.push(format!(
            "measured GEMM FP8-over-BF16 speedup on the backends in the results: median {}x over {n} problems",
            sig3(median(&mut gemm))
        ));
        from.extend(run_ids(used));
    }
    // Which units ran the measured low-precision GEMMs: on a CPU, FP8 gains compute only where
    // it has BF16 dot-product units (FP8 decoded exactly to BF16) — "units absent" otherwise.
    let mut units: Vec<String> = Vec::new();
    for r in runs.iter().flat_map(|r| &r.run.records) {
        let low_act = matches!(r.act_format.as_str(), "bf16" | "e4m3" | "e5m2");
        if r.op == "gemm" && r.valid && low_act && !r.compute.is_empty() {
            let what = if r.compute.starts_with("bf16-dot") {
                format!("{} on {} (BF16 dot-product units present)", r.backend, r.compute)
            } else if r.compute.starts_with("f32-fma") {
                format!("{} on {} (BF16 dot-product units absent: decoded to f32)", r.backend, r.compute)
            } else {
                format!("{} on {}", r.backend, r.compute)
            };
            if !units.contains(&what) {
                units.push(what);
            }
        }
    }
    if !units.is_empty() {
        numbers.push(format!("low-precision-activation GEMMs in the results ran: {}", units.join("; ")));
    }
    Ok(Finding::new(verdict, numbers, from))
}

pub fn compute_ratios(
    frontier: &[String],
    available: &[String],
    target: f64,
    tolerance: f64,
) -> Result<Finding> {
    let list = profiles::chips()?;
    let lookup = |ids: &[String]| -> Result<Vec<&Chip>> {
        ids.iter().map(|id| profiles::find_chip(&list, id)).collect()
    };
    let (front, avail) = (lookup(frontier)?, lookup(available)?);
    let (lo, hi) = (target * (1.0 - tolerance), target * (1.0 + tolerance));
    let (mut near, mut all, mut from) = (Vec::new(), Vec::new(), Vec::new());
    for f in &front {
        for a in &avail {
            let mut pairs = Vec::new();
            if let (Some((vf, pf)), Some((va, pa))) = (best_native(f), best_native(a)) {
                pairs.push((vf / va, format!("{} {pf} vs {} {pa}", f.id, a.id)));
            }
            for p in [Precision::Fp8, Precision::Bf16, Precision::Fp16] {
                if let (Some(vf), Some(va)) = (native_peak(f, p), native_peak(a, p)) {
                    let label = format!("{} {p} vs {} {p}", f.id, a.id);
                    if !pairs.iter().any(|(_, l)| *l == label) {
                        pairs.push((vf / va, label));
                    }
                }
            }
            for (r, label) in pairs {
                all.push(r);
                if (lo..=hi).contains(&r) {
                    near.push(format!("{label} {}x", sig3(r)));
                }
            }
        }
    }
    for c in front.iter().chain(&avail) {
        if let Some(s) = best_native(c).and_then(|(_, p)| peak_cite(c, p)) {
            from.push(s);
        }
    }
    let (min, max) = (
        all.iter().copied().fold(f64::INFINITY, f64::min),
        all.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    );
    let mut numbers = vec![format!(
        "{} chip-pair ratios (fastest native formats, and same format FP8/BF16/FP16) span {}–{}x",
        all.len(),
        sig3(min),
        sig3(max)
    )];
    if near.is_empty() {
        numbers.push(format!("no pair within {}–{}x", sig3(lo), sig3(hi)));
    } else {
        numbers.push(format!("within {}–{}x: {}", sig3(lo), sig3(hi), near.join("; ")));
    }
    numbers
        .push("per-chip ratios only: a fleet-level gap also depends on how many chips each side has".into());
    let verdict = if near.is_empty() { Verdict::NotSupported } else { Verdict::Partly };
    Ok(Finding::new(verdict, numbers, from))
}

pub fn trails(chip: &str, versus: &str, supported_below: f64, partly_below: f64) -> Result<Finding> {
    let list = profiles::chips()?;
    let (a, b) = (profiles::find_chip(&list, chip)?, profiles::find_chip(&list, versus)?);
    let ((va, pa), (vb, pb)) = match (best_native(a), best_native(b)) {
        (Some(x), Some(y)) => (x, y),
        _ => return Err(Error::Other(format!("{} or {} has no sourced FP8/BF16/FP16 peak", a.id, b.id))),
    };
    let ratio = va / vb;
    let mut numbers = vec![format!(
        "fastest native: {} {pa} {} TFLOPS vs {} {pb} {} = {}x",
        a.id,
        sig3(va),
        b.id,
        sig3(vb),
        sig3(ratio)
    )];
    if let (Some(x), Some(y)) = (bf16(a), bf16(b)) {
        numbers.push(format!("BF16: {} vs {} TFLOPS = {}x", sig3(x), sig3(y), sig3(x / y)));
    }
    if let (Some(x), Some(y)) = (a.memory_bw_bytes_s(), b.memory_bw_bytes_s()) {
        numbers.push(format!(
            "memory bandwidth: {} vs {} TB/s = {}x",
            sig3(x / 1e12),
            sig3(y / 1e12),
            sig3(x / y)
        ));
    }
    let from = [peak_cite(a, pa), peak_cite(b, pb)].into_iter().flatten().collect();
    Ok(Finding::new(Verdict::below(ratio, supported_below, partly_below), numbers, from))
}

fn gb(bytes: f64) -> String {
    format!("{} GB", sig3(bytes / 1e9))
}

fn plan_for(model: &str, chip: &str, precision: WeightPrecision) -> Result<Plan> {
    let (m, c) = (profiles::model(model)?, profiles::chip(chip)?);
    planner::plan(&m, &c, &PlanOptions { precision, ..PlanOptions::default() })
}

fn plan_cite(p: &Plan) -> String {
    let o = &p.options;
    format!(
        "planner: {} on {} ({}; context {}, batch {}, {}% of memory usable)",
        p.model_id,
        p.chip_id,
        o.precision.name(),
        o.context,
        o.batch,
        sig3(o.usable_memory * 100.0)
    )
}

pub fn train_vs_infer(model: &str, chip: &str, min_ratio: f64) -> Result<Finding> {
    let (mut numbers, mut from, mut flops_ok, mut mem_ok) = (Vec::new(), Vec::new(), true, true);
    for precision in [WeightPrecision::Bf16, WeightPrecision::Fp8] {
        let p = plan_for(model, chip, precision)?;
        // Forward-only FLOPs per token, the same convention as the planner's 6·N for training
        // (attention scores excluded from both).
        let infer_flops = 2.0 * p.active_params as f64;
        let infer_mem = p.weights.total() + p.kv_bytes;
        let train_mem = p.train_state_bytes + p.activation_bytes;
        let (rf, rm) = (p.train_flops_per_token / infer_flops, train_mem / infer_mem);
        flops_ok &= rf >= min_ratio;
        mem_ok &= rm >= min_ratio;
        numbers.push(format!(
            "{}: FLOPs/token train {} vs inference {} = {}x; memory train {} ({} B/param state + activations) vs inference {} (weights + KV) = {}x; chips of {}: train {} vs inference {}",
            precision.name(),
            sig3(p.train_flops_per_token),
            sig3(infer_flops),
            sig3(rf),
            gb(train_mem),
            sig3(p.train.per_param()),
            gb(infer_mem),
            sig3(rm),
            p.chip_id,
            p.train_chips_needed,
            p.chips_needed
        ));
        from.push(plan_cite(&p));
        if !from.iter().any(|f| f.starts_with("training state")) {
            from.push(format!("training state: {}", short_source(p.train.source)));
        }
    }
    let verdict = match (flops_ok, mem_ok) {
        (true, true) => Verdict::Supported,
        (false, false) => Verdict::NotSupported,
        _ => Verdict::Partly,
    };
    Ok(Finding::new(verdict, numbers, from))
}

pub fn inference_fit(model: &str, chip: &str, max_chips: usize) -> Result<Finding> {
    let (mut numbers, mut from, mut fits) = (Vec::new(), Vec::new(), Vec::new());
    for precision in [WeightPrecision::Bf16, WeightPrecision::Fp8] {
        let p = plan_for(model, chip, precision)?;
        fits.push(p.chips_needed as usize <= max_chips);
        numbers.push(format!(
            "{}: weights {} + KV {} on {} GB chips: {} chips; decode bound {} tokens/s per sequence over them ({} read per step at {} TB/s per chip, {} ms per step with the attention over the cache at its bound); prefill at {}",
            precision.name(),
            gb(p.weights.total()),
            gb(p.kv_bytes),
            sig3(p.chip_memory / 1e9),
            p.chips_needed,
            sig3(p.decode.aggregate),
            gb(p.decode_bytes_per_step),
            sig3(p.chip_bw / 1e12),
            sig3(p.decode_step_s * 1e3),
            p.prefill_peak.label
        ));
        from.push(plan_cite(&p));
    }
    let c = profiles::chip(chip)?;
    for f in [&c.memory, &c.memory_bw].into_iter().flatten() {
        from.push(format!("profile {}: {}", c.id, short_source(&f.source)));
    }
    numbers.push(format!("limit: {max_chips} chips"));
    let verdict = match (fits[0], fits[1]) {
        (true, true) => Verdict::Supported,
        (false, true) => Verdict::Partly,
        _ => Verdict::NotSupported,
    };
    Ok(Finding::new(verdict, numbers, from))
}
