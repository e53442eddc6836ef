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
use crate::project::roofline::nearest_peak;
use crate::results::RoofsNow;
use std::sync::atomic::Ordering;

/// What [`measure`] puts in front of a product's label in `Event::Measuring` (the runner's own
/// labels follow, one per backend).
pub const STEP_LABEL: &str = "step ";

/// Run every distinct slice of `planned` once (validated, then timed, by the suite runner) and
/// return one record per planned product, tagged with its `model_step`. Only one product's
/// operands are alive at a time: the runner builds a case, measures it and drops it.
/// `roofs_now`, called once after each product, re-measures the machine's roofs (the read
/// ceiling, the FMA and BF16 dot-product peaks per thread count); what it returns goes into the product's
/// records as [`crate::results::ModelStep::roofs_after`], at each record's thread count.
pub fn measure(
    planned: &[Planned],
    backends: &[Box<dyn Backend>],
    opts: &RunOptions,
    on_event: &mut dyn FnMut(Event),
    roofs_now: &mut dyn FnMut() -> Option<calibration::RoofsNow>,
) -> Outcome {
    let mut out = Outcome::default();
    for case in measure::cases(planned) {
        if opts.stop.load(Ordering::SeqCst) {
            out.interrupted = true;
            break;
        }
        on_event(Event::Measuring { label: &format!("{STEP_LABEL}{}", case.shape) });
        let got = runner::run_cases(std::slice::from_ref(&case), backends, opts, on_event);
        out.skipped.extend(got.skipped);
        let roofs = if got.records.is_empty() { None } else { roofs_now() };
        for rec in &got.records {
            for p in planned.iter().filter(|p| p.spec == case.spec) {
                let mut r = rec.clone();
                let mut step = p.step.clone();
                step.roofs_after = roofs.as_ref().and_then(|now| {
                    Some(RoofsNow {
                        read_gbs: now.read_gbs?,
                        fma_gflops: nearest_peak(&now.fma, rec.threads).map_or(0.0, |(_, g)| g),
                        dot_gflops: nearest_peak(&now.dot, rec.threads).map(|(_, g)| g),
                    })
                });
                r.model_step = Some(step);
                out.records.push(r);
            }
        }
        if got.interrupted {
            out.interrupted = true;
            break;
        }
    }
    out
}
