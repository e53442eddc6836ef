//! Whole model steps: a model's decode and prefill step as the matrix products of its
//! architecture ([`shapes`]), each distinct product measured once by the suite runner
//! ([`measure`]) and summed back into steps ([`steps`]) beside the planner's roofline, then
//! projected part by part onto chips ([`project`]). `chipbench run --model ID` drives it;
//! docs/model-step.md explains the composition and what it leaves out.

pub mod measure;
pub mod project;
pub mod shapes;
pub mod steps;

pub use measure::{Planned, Sampling, StepFormat};
pub use shapes::{Operand, Part, Phase, Product, StepShape};
pub use steps::Step;

use crate::kernels::Backend;
use crate::measure::calibration;
use crate::measure::runner::{self, Event, Outcome, RunOptions};
use crate::project::check::median;
use crate::project::roofline::nearest_peak;
use crate::results::RoofsNow;

/// Run every distinct slice of `planned` (validated, then timed, by the suite runner) and return
/// one record per planned product, tagged with its `model_step`. The runner takes the slices in
/// `opts.repeat` passes over the whole list, each pass with `opts.timing`'s budget, and pools
/// each slice's samples over its passes: a product's time is then taken at several moments of the
/// run, as the planner's sustained bandwidth is (the median over the run), instead of at one
/// moment whose state of a shared host would set the step's ratios. Only one product's operands
/// are alive at a time: the runner builds a case, measures it and drops it, pass after pass.
/// `roofs_now`, called after each product in each pass, re-measures the machine's roofs (the read
/// ceiling, the FMA and BF16 dot-product peaks per thread count); the median over a product's
/// passes goes into its records as [`crate::results::ModelStep::roofs_after`], at each record's
/// thread count.
pub fn measure(
    planned: &[Planned],
    backends: &[Box<dyn Backend>],
    opts: &RunOptions,
    on_event: &mut dyn FnMut(Event),
    roofs_now: &mut dyn FnMut() -> Option<calibration::RoofsNow>,
) -> Outcome {
    let cases = measure::cases(planned);
    let mut after: Vec<Vec<calibration::RoofsNow>> = (0..cases.len()).map(|_| Vec::new()).collect();
    let got = runner::run_cases(&cases, backends, opts, &mut |ev| {
        if let Event::BlockDone { shape, .. } = &ev {
            if let Some(i) = cases.iter().position(|c| c.shape == *shape) {
                after[i].extend(roofs_now());
            }
        }
        on_event(ev)
    });
    let mut out = Outcome { skipped: got.skipped, interrupted: got.interrupted, ..Outcome::default() };
    for (rec, &ci) in got.records.iter().zip(&got.cases) {
        let roofs = pooled(&after[ci], rec.threads);
        for p in planned.iter().filter(|p| p.spec == cases[ci].spec) {
            let mut r = rec.clone();
            let mut step = p.step.clone();
            step.roofs_after = roofs;
            r.model_step = Some(step);
            out.records.push(r);
            out.cases.push(ci);
        }
    }
    out
}

/// The median over a product's passes of the roofs re-measured after it, at `threads`; `None`
/// without a read figure.
fn pooled(now: &[calibration::RoofsNow], threads: usize) -> Option<RoofsNow> {
    let read: Vec<f64> = now.iter().filter_map(|n| n.read_gbs).collect();
    if read.is_empty() {
        return None;
    }
    let fma: Vec<f64> = now.iter().filter_map(|n| nearest_peak(&n.fma, threads)).map(|(_, g)| g).collect();
    let dot: Vec<f64> = now.iter().filter_map(|n| nearest_peak(&n.dot, threads)).map(|(_, g)| g).collect();
    let tile: Vec<f64> = now.iter().filter_map(|n| nearest_peak(&n.tile, threads)).map(|(_, g)| g).collect();
    Some(RoofsNow {
        read_gbs: median(&read),
        fma_gflops: if fma.is_empty() { 0.0 } else { median(&fma) },
        dot_gflops: (!dot.is_empty()).then(|| median(&dot)),
        tile_gflops: (!tile.is_empty()).then(|| median(&tile)),
    })
}
