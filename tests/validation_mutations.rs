//! Validation catches wrong kernels: each backend runs deliberately wrong versions of its own
//! kernels (an operand rounded to bf16, the last K column dropped, two block scales swapped, the
//! scale grid transposed, a weight row off by one; see tests/common/mutations.rs) and validation
//! must refuse every one, while the correct kernel on the same problem passes.
//!
//! wgpu runs on lavapipe where no GPU exists; with no adapter at all the wgpu test prints why and
//! passes, except in CI (`CI` set), where that is a failure.
mod common;

use chipbench::kernels::Backend;
use common::mutations::{check_mutations, Mutation, CASES};

fn check(backend: &dyn Backend) {
    let (refused, within_bound) = check_mutations(backend);
    // Every case that changes under a mutation ran it: at least the operand rounding, the dropped
    // column and the row shift of each case, plus the scale mutations of the blocked cases.
    assert!(refused >= 3 * CASES.len(), "{}: only {refused} wrong kernels ran", backend.name());
    // The point of the statistical check: some of these passed the rigorous bound alone.
    assert!(within_bound > 0, "{}: every mutation already broke the rigorous bound", backend.name());
}

#[test]
fn cpu_refuses_every_wrong_kernel() {
    check(&chipbench::kernels::cpu::CpuBackend::new(0));
}

#[test]
fn candle_refuses_every_wrong_kernel() {
    check(&chipbench::kernels::candle::CandleBackend::new(0));
}

#[test]
fn wgpu_refuses_every_wrong_kernel() {
    match chipbench::kernels::wgpu::WgpuBackend::with_options(None, Default::default()) {
        Ok(b) => check(&b),
        Err(e) if std::env::var_os("CI").is_some() => panic!("CI must run the wgpu tests (lavapipe): {e}"),
        Err(e) => println!("SKIPPED: no wgpu adapter (install Mesa's Vulkan drivers for lavapipe): {e}"),
    }
}

/// Each mutation changes the problem where it should and nothing where it cannot matter.
#[test]
fn mutations_apply_where_they_matter() {
    use chipbench::formats::Format;
    let blocked = CASES.iter().find(|c| c.scaling == "deepseek" && c.n >= 256).unwrap().build();
    for m in Mutation::ALL {
        assert!(m.apply(&blocked).is_some(), "{} changes nothing on a 3×64 DeepSeek grid", m.name());
    }
    let per_tensor = CASES.iter().find(|c| c.scaling == "per-tensor").unwrap().build();
    assert!(Mutation::SwapScales.apply(&per_tensor).is_none());
    assert!(Mutation::TransposeScales.apply(&per_tensor).is_none());
    let both_bf16 = CASES.iter().find(|c| c.format == Format::BF16 && c.act == Format::BF16).unwrap().build();
    assert!(Mutation::RoundToBf16.apply(&both_bf16).is_none());
}
