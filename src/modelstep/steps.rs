//! Whole steps back from records: every record carrying a `model_step` contributes
//! `median × scale × count` seconds to its step's part; the table reads like llama-bench's
//! (`pp512`, `tg1 @ d4096`, tokens/s) with the planner's roofline prediction for this machine
//! (`--chip local`: the run's calibration) beside it.

use super::measure::StepFormat;
use super::shapes::{self, Part, Phase, StepShape};
use crate::formats::Format;
use crate::measure::ceilings::on_host_cpu;
use crate::profiles;
use crate::project::roofline::{calibration_roof, compute_roof, Peaks3};
use crate::report::markdown::{human_time, table};
use crate::results::{Calibration, ModelStep, Record, Run};
use std::fmt::Write;

/// Seconds, roofline bytes and FLOPs of one part of a step.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PartSum {
    pub seconds: f64,
    /// Weight-operand bytes of the real products (weights, scales, KV cache), per step.
    pub bytes: f64,
    pub flops: f64,
    /// Σ over the part's products of its FLOPs at the compute roof of its operands at the run's
    /// calibration ([`calibration_roof`]: the BF16 dot-product peak for BF16/FP8 operands where
    /// the CPU has those units, else the FMA peak; 0 without a calibration).
    pub compute_s: f64,
    /// Σ over the part's products of the roofline bound of each, `max(bytes / read bandwidth,
    /// FLOPs / compute roof)` at the run's calibration (0 without one): what this machine's roofs
    /// allow product by product, where the planner's figure puts the whole step under one bound.
    pub roof_s: f64,
    /// Σ over the part's products of its bytes at the read ceiling, and of its FLOPs at its
    /// compute roof (FMA or BF16 dot-product peak, as for `compute_s`), re-measured right after
    /// that product ([`ModelStep::roofs_after`]): the part's two
    /// roofline times at the roofs of the products' own moments.
    pub paired_read_s: f64,
    pub paired_compute_s: f64,
    /// Products of the part without `roofs_after`.
    pub unpaired: usize,
}

/// One measured step: model × phase × step format × backend.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub model: String,
    pub phase: Phase,
    pub step_format: String,
    pub backend: String,
    /// It ran on the CPU the run's calibration measured ([`on_host_cpu`]: cpu, candle, or wgpu on
    /// a software rasterizer), so the calibration's roofs describe its units; a GPU's do not.
    pub host_cpu: bool,
    pub threads: usize,
    pub batch: u64,
    pub prompt: u64,
    pub context: u64,
    /// Indexed like [`Part::ALL`].
    pub parts: [PartSum; 4],
    /// Valid records that contributed.
    pub valid: usize,
    /// Products the model's step has (0 when the profile is not embedded).
    pub expected: usize,
    /// Records of this step that failed validation.
    pub invalid: usize,
}

fn part_index(name: &str) -> Option<usize> {
    Part::ALL.iter().position(|p| p.name() == name)
}

fn phase_of(name: &str) -> Option<Phase> {
    match name {
        "decode" => Some(Phase::Decode),
        "prefill" => Some(Phase::Prefill),
        _ => None,
    }
}

impl Step {
    pub fn seconds(&self) -> f64 {
        self.parts.iter().map(|p| p.seconds).sum()
    }
    pub fn bytes(&self) -> f64 {
        self.parts.iter().map(|p| p.bytes).sum()
    }
    pub fn flops(&self) -> f64 {
        self.parts.iter().map(|p| p.flops).sum()
    }
    /// The per-product roofline of the step ([`PartSum::roof_s`]), when the run was calibrated.
    pub fn roofline_s(&self) -> Option<f64> {
        let s: f64 = self.parts.iter().map(|p| p.roof_s).sum();
        (s > 0.0).then_some(s)
    }
    /// The paired planner ([`PartSum::paired_s`]): the planner's rule with each product at the
    /// roofs of its own moment, so that a drift of the machine between calibration and a product
    /// does not count as the kernels' distance from the planner. `None` unless every product
    /// carries its roofs.
    pub fn paired_planner_s(&self) -> Option<f64> {
        let s: f64 = self.parts.iter().map(|p| p.paired_read_s.max(p.paired_compute_s)).sum();
        (self.parts.iter().all(|p| p.unpaired == 0) && s > 0.0).then_some(s)
    }
    /// Tokens one step produces (decode: one per sequence) or consumes (prefill: the prompt).
    pub fn tokens(&self) -> u64 {
        match self.phase {
            Phase::Decode => self.batch,
            Phase::Prefill => self.prompt,
        }
    }
    pub fn tokens_s(&self) -> f64 {
        self.tokens() as f64 / self.seconds()
    }
    /// Every product measured and valid.
    pub fn complete(&self) -> bool {
        self.invalid == 0 && self.valid > 0 && (self.expected == 0 || self.valid == self.expected)
    }
    /// llama-bench's test name: `pp512`, `tg1 @ d4096` (tg with the batch).
    pub fn test(&self) -> String {
        match self.phase {
            Phase::Prefill => format!("pp{}", self.prompt),
            Phase::Decode => format!("tg{} @ d{}", self.batch, self.context),
        }
    }
    /// The whole model's weights in this step's format, GB (10⁹ bytes).
    pub fn weights_gb(&self) -> Option<f64> {
        let model = profiles::model(&self.model).ok()?;
        let sf = StepFormat::parse(&self.step_format).ok()?;
        Some(sf.model_bytes(&model) / 1e9)
    }
    /// The planner's prediction for this machine, the `plan` rule for both phases: each part
    /// reads its bytes once at `read_gbs` (the run's sustained read bandwidth,
    /// [`planner_read_gbs`]) or runs its FLOPs at the measured peak of the units its operands
    /// run on ([`PartSum::compute_s`]), whichever takes longer. Decode parts are mostly
    /// bytes-bound (DeepSeek-V3's absorbed attention over the cache is not), prefill parts mostly
    /// FLOP-bound — except a mixture of experts' routed experts, which a 512-token prompt gives
    /// 16 tokens each and which read all their weights (since 2026-12-04; prefill used to be the
    /// FLOPs alone).
    pub fn predicted_s(&self, read_gbs: f64) -> Option<f64> {
        let s: f64 = self.parts.iter().map(|p| (p.bytes / (read_gbs * 1e9)).max(p.compute_s)).sum();
        (read_gbs > 0.0 && s > 0.0).then_some(s)
    }
}

/// The read bandwidth the planner predicts decode with, and how it was found: the median of the
/// read figures re-measured right after each product of the run (what this machine sustained
/// while the steps ran), else the calibration's ceiling (files without re-measurements).
///
/// Why not the ceiling: the ceiling is the best trial ever seen, a bound a kernel must not beat.
/// On a shared 2-vCPU guest that best is a burst of a few milliseconds (52 GB/s once in 138
/// trials of a run whose median trial read 34 and whose 90th percentile read 39), which no
/// step of several seconds can meet. A prediction takes what the machine delivered; the
/// roofline column keeps the ceiling.
pub fn planner_read_gbs(run: &Run) -> Option<(f64, String)> {
    let seen: Vec<f64> = run
        .records
        .iter()
        .filter_map(|r| r.model_step.as_ref()?.roofs_after.map(|at| at.read_gbs))
        .filter(|g| g.is_finite() && *g > 0.0)
        .collect();
    if !seen.is_empty() {
        let median = crate::project::check::median(&seen);
        let (lo, hi) = seen.iter().fold((f64::INFINITY, 0f64), |(lo, hi), &g| (lo.min(g), hi.max(g)));
        let why = format!(
            "{median:.1} GB/s, the median of {} read figures re-measured after each product, each the median \
             over the product's passes ({lo:.1}–{hi:.1})",
            seen.len()
        );
        return Some((median, why));
    }
    let c = run.calibration.as_ref().filter(|c| c.read_gbs > 0.0)?;
    Some((c.read_gbs, format!("{:.1} GB/s, the calibration's read ceiling", c.read_gbs)))
}

/// A record's format key (F32 where unreadable: files of other versions).
fn format_of(name: &str) -> Format {
    name.parse().unwrap_or(Format::F32)
}

/// Bytes and FLOPs of the real product behind a record.
fn roofline_of(r: &Record, s: &ModelStep) -> (f64, f64) {
    let format = format_of(&r.format);
    let scaling = r.scaling.parse().unwrap_or(crate::formats::Scaling::NONE);
    let bytes = StepFormat::weight_bytes(format, scaling, s.n as u64, s.k as u64) * s.count;
    (bytes, 2.0 * s.m as f64 * s.n as f64 * s.k as f64 * s.count)
}

/// The steps of a run: models and formats in first-seen order, prefill before decode (as
/// llama-bench prints pp before tg).
pub fn steps(run: &Run) -> Vec<Step> {
    let mut out = collect(run);
    let first = |f: &dyn Fn(&Step) -> String| {
        let mut seen: Vec<String> = Vec::new();
        for s in &out {
            if !seen.contains(&f(s)) {
                seen.push(f(s));
            }
        }
        seen
    };
    let models = first(&|s| s.model.clone());
    let formats = first(&|s| s.step_format.clone());
    let pos = |v: &[String], x: &str| v.iter().position(|y| y == x).unwrap_or(usize::MAX);
    out.sort_by_key(|s| {
        (pos(&models, &s.model), pos(&formats, &s.step_format), s.phase == Phase::Decode, s.backend.clone())
    });
    out
}

/// The two roofline times of one product at the run's calibration: its bytes at the read
/// ceiling and its FLOPs at the compute roof of its operands ([`calibration_roof`]), 0 where the
/// calibration lacks the figure.
fn product_roofs(
    cal: Option<&Calibration>,
    (threads, unit): (usize, &str),
    act: Format,
    w: Format,
    bytes: f64,
    flops: f64,
) -> (f64, f64) {
    let Some(cal) = cal else { return (0.0, 0.0) };
    let read = if cal.read_gbs > 0.0 { bytes / (cal.read_gbs * 1e9) } else { 0.0 };
    let compute = calibration_roof(cal, threads, unit, act, w).map_or(0.0, |g| flops / (g * 1e9));
    (read, compute)
}

fn collect(run: &Run) -> Vec<Step> {
    let cal = run.calibration.as_ref();
    let mut out: Vec<Step> = Vec::new();
    for r in &run.records {
        let Some(s) = &r.model_step else { continue };
        let (Some(phase), Some(part)) = (phase_of(&s.phase), part_index(&s.part)) else { continue };
        let same = |x: &Step| {
            x.model == s.model
                && x.phase == phase
                && x.step_format == s.step_format
                && x.backend == r.backend
                && x.threads == r.threads
                && (x.batch, x.prompt, x.context) == (s.batch, s.prompt, s.context)
        };
        let i = match out.iter().position(same) {
            Some(i) => i,
            None => {
                let shape = StepShape { phase, batch: s.batch, prompt: s.prompt, context: s.context };
                let expected = profiles::model(&s.model).map_or(0, |m| shapes::products(&m, &shape).len());
                out.push(Step {
                    model: s.model.clone(),
                    phase,
                    step_format: s.step_format.clone(),
                    backend: r.backend.clone(),
                    host_cpu: on_host_cpu(r, run),
                    threads: r.threads,
                    batch: s.batch,
                    prompt: s.prompt,
                    context: s.context,
                    parts: Default::default(),
                    valid: 0,
                    expected,
                    invalid: 0,
                });
                out.len() - 1
            }
        };
        let st = &mut out[i];
        if !r.valid {
            st.invalid += 1;
            continue;
        }
        st.valid += 1;
        let (bytes, flops) = roofline_of(r, s);
        let (act, w) = (format_of(&r.act_format), format_of(&r.format));
        let (read_s, compute_s) = product_roofs(cal, (r.threads, &r.compute), act, w, bytes, flops);
        let p = &mut st.parts[part];
        p.seconds += s.seconds(r);
        p.bytes += bytes;
        p.flops += flops;
        p.compute_s += compute_s;
        p.roof_s += read_s.max(compute_s);
        let paired = s.roofs_after.and_then(|at| {
            let peaks = Peaks3 { fma: Some(at.fma_gflops), dot: at.dot_gflops, tile: at.tile_gflops };
            let roof = compute_roof(peaks, &r.compute, act, w)?;
            (at.read_gbs > 0.0).then(|| (bytes / (at.read_gbs * 1e9), flops / (roof * 1e9)))
        });
        match paired {
            Some((read, compute)) => {
                p.paired_read_s += read;
                p.paired_compute_s += compute;
            }
            None => p.unpaired += 1,
        }
    }
    out
}

/// The heading [`render`] puts over [`render_body`].
pub const HEADING: &str = "## Model steps\n\n";

/// The step table (Markdown/text) under its [`HEADING`], or an empty string when the run has no
/// model steps.
pub fn render(run: &Run) -> String {
    let body = render_body(run);
    if body.is_empty() {
        body
    } else {
        format!("{HEADING}{body}")
    }
}

/// [`render`] without the heading: what a report that puts several runs under one heading takes.
pub fn render_body(run: &Run) -> String {
    let steps = steps(run);
    if steps.is_empty() {
        return String::new();
    }
    let planner_read = planner_read_gbs(run);
    let mut rows = Vec::new();
    for st in &steps {
        let total = st.seconds();
        let share = |i: usize| format!("{:.0} %", 100.0 * st.parts[i].seconds / total);
        // The calibration's roofs are the host CPU's: no planner figure for a step on a GPU.
        let calibrated = st.host_cpu;
        let pred = st.predicted_s(planner_read.as_ref().map_or(0.0, |p| p.0)).filter(|_| calibrated);
        let roof = st.roofline_s().filter(|_| calibrated);
        let paired = st.paired_planner_s().filter(|_| calibrated);
        let mut row = vec![
            st.model.clone(),
            st.step_format.clone(),
            format!("{}/{}t", st.backend, st.threads),
            st.weights_gb().map_or("-".into(), |g| format!("{g:.2}")),
            st.test(),
        ];
        if st.complete() {
            row.extend([
                human_time(total),
                format!("{:.2}", st.tokens_s()),
                share(0),
                share(1),
                share(2),
                share(3),
                pred.map_or("-".into(), |p| format!("{:.2}", st.tokens() as f64 / p)),
                pred.map_or("-".into(), |p| format!("{:.2}", total / p)),
                paired.map_or("-".into(), |p| format!("{:.2}", total / p)),
                roof.map_or("-".into(), |p| format!("{:.2}", total / p)),
            ]);
        } else {
            let why = format!("incomplete: {} of {} valid", st.valid, st.expected.max(st.valid + st.invalid));
            row.extend([
                why,
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
            ]);
        }
        rows.push(row);
    }
    let header = [
        "model",
        "format",
        "backend",
        "weights GB",
        "test",
        "step",
        "t/s",
        "attn proj",
        "attn KV",
        "FFN/experts",
        "head",
        "planner t/s",
        "measured/planner",
        "paired",
        "measured/roofline",
    ];
    let mut s = table(&header, &rows);
    let mut ratios = Vec::new();
    for st in steps.iter().filter(|x| x.phase == Phase::Decode && x.complete()) {
        for other in steps.iter().filter(|x| {
            x.phase == Phase::Decode
                && x.complete()
                && x.model == st.model
                && x.backend == st.backend
                && x.threads == st.threads
                && x.context == st.context
                && x.batch == st.batch
                && x.step_format.starts_with("bf16")
        }) {
            if st.step_format.starts_with("e4m3") || st.step_format.starts_with("e5m2") {
                ratios.push(format!(
                    "{} {}: decode t/s {} / {} = {:.2}×",
                    st.model,
                    st.backend,
                    st.step_format,
                    other.step_format,
                    st.tokens_s() / other.tokens_s()
                ));
            }
        }
    }
    s.push('\n');
    for r in ratios {
        let _ = writeln!(s, "- {r}");
    }
    let _ = writeln!(
        s,
        "\nA step is the sum over its distinct matrix products of median × (real work / measured slice) × \
         count (see docs/model-step.md). planner: each part reads its weight and KV bytes once at the \
         run's sustained read bandwidth ({}) or runs its FLOPs at the calibrated peak of the units it runs on \
         (the BF16 dot-product or tile peak for BF16 and FP8 steps, whose activations are in the step's \
         format, on a CPU with those units; the FMA peak otherwise), whichever takes longer: decode is \
         mostly bytes (absorbed MLA attention is FLOPs), prefill mostly FLOPs (a prompt's routed experts, \
         16 tokens each at 512, are bytes). measured/planner \
         above 1 = slower than the planner predicts. paired: measured / the planner's rule with each product \
         at the read ceiling and compute peaks re-measured right after it, which \
         cancels this machine's drift between the calibration and the product. roofline: each product at its own bound, the \
         longer of its bytes at the read bandwidth and its FLOPs at its compute peak, summed (a \
         compute-bound product in a decode step, such as absorbed MLA attention over a long \
         cache, counts at that peak); measured/roofline is how far the kernels are from this \
         machine's roofs (the read ceiling: the best read trial of the run). Norms, softmax, RoPE, \
         sampling and communication are not in the step.\n",
        planner_read.map_or("none measured".into(), |p| p.1)
    );
    if steps.iter().any(|st| !st.host_cpu) {
        let _ = writeln!(
            s,
            "wgpu rows have no planner, paired or roofline figure: the calibration measures this host's CPU, \
             not the device the steps ran on.\n"
        );
    }
    s
}
