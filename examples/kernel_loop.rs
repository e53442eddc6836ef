//! Run one CPU kernel in a loop, nothing else: a target for `perf record` / `perf stat`.
//!
//! `cargo run --release --example kernel_loop -- gemm f32 2048 [seconds] [threads] [copies] [scaling] [act]`
//! (`gemv` takes n = k = the size; SIZE may also be `MxNxK`, e.g. `128x768x4096`, the shape of a
//! model-step slice; `scaling` is any `--scaling` value, FP8 only, per-tensor by default, `-` for
//! the default; `act` is the activations' format, f32 by default: bf16, e4m3 or e5m2 with a weight
//! format of those three runs the BF16 dot-product path where the CPU has it). Prints the rate
//! once at the end: the mean over the loop and the median call, and which compute units ran.
//!
//! `copies` > 1 rotates the calls through that many copies of the problem: an independent probe
//! of what a cold-weights GEMV reaches (the runner's rotation is checked against it), written
//! without the runner or its timer — a plain loop and one clock read at each end.

use chipbench::formats::Format;
use chipbench::formats::Scaling;
use chipbench::kernels::cpu::CpuBackend;
use chipbench::kernels::{Backend, Op};
use chipbench::measure::inputs::ProblemSpec;
use chipbench::measure::memory::{check_fits, mem_available_bytes};
use std::time::Instant;

/// Bad arguments end in one line naming the argument and what it allows, not a panic.
fn fail(what: &str) -> ! {
    eprintln!(
        "kernel_loop: {what}; usage: kernel_loop gemm|gemv f32|bf16|f16|e4m3|e5m2 SIZE [SECONDS] [THREADS] [COPIES] [SCALING|-] [ACT]"
    );
    std::process::exit(2)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: &str| args.get(i).cloned().unwrap_or_else(|| default.to_string());
    let op = match arg(0, "gemm").as_str() {
        "gemm" => Op::Gemm,
        "gemv" => Op::Gemv,
        other => fail(&format!("op {other:?}: allowed gemm, gemv")),
    };
    let format: Format = arg(1, "f32").parse().unwrap_or_else(|e| fail(&format!("format: {e}")));
    let dims: Vec<usize> = arg(2, "2048")
        .split('x')
        .map(|d| d.parse().unwrap_or_else(|_| fail("SIZE: a positive integer or MxNxK")))
        .collect();
    let seconds: f64 = arg(3, "5").parse().unwrap_or_else(|_| fail("SECONDS: a number"));
    let threads: usize = arg(4, "0").parse().unwrap_or_else(|_| fail("THREADS: an integer (0 = all cores)"));
    let copies: usize = match arg(5, "1").parse() {
        Ok(c) if (1..=256).contains(&c) => c,
        _ => fail("COPIES: an integer in 1..=256"),
    };
    let (m, n, k) = match (op, &dims[..]) {
        (Op::Gemv, &[s]) => (1, s, s),
        (_, &[s]) => (s, s, s),
        (Op::Gemv, &[m, _, _]) if m != 1 => fail("SIZE: a GEMV has M = 1 (1xNxK, or one integer)"),
        (_, &[m, n, k]) => (m, n, k),
        _ => fail("SIZE: one integer or MxNxK"),
    };
    let scaling = match args.get(6).filter(|s| *s != "-") {
        None if format.is_fp8() => Scaling::PER_TENSOR,
        None => Scaling::NONE,
        Some(_) if !format.is_fp8() => fail("SCALING: only FP8 formats take a scaling"),
        Some(s) => s.parse().unwrap_or_else(|e| fail(&format!("SCALING: {e}"))),
    };
    let act: Format = arg(7, "f32").parse().unwrap_or_else(|e| fail(&format!("ACT: {e}")));
    let spec = ProblemSpec::new(op, m, n, k, format, scaling).with_act_format(act);
    // The same refusal `chipbench run` makes: zero, absurd or too large for memory, before allocating.
    check_fits("kernel_loop", &spec, copies, mem_available_bytes()).unwrap_or_else(|e| fail(&e.to_string()));
    let p = spec.build().unwrap_or_else(|e| fail(&e.to_string()));
    let problems: Vec<_> = (0..copies).map(|_| p.clone()).collect();
    let backend = CpuBackend::new(threads);
    let mut prepared: Vec<_> =
        problems.iter().map(|q| backend.prepare(q).unwrap_or_else(|e| fail(&e.to_string()))).collect();
    for q in prepared.iter_mut() {
        q.run().unwrap_or_else(|e| fail(&e.to_string()));
    }
    // One clock read per call too, so the median can be compared with the runner's (which
    // reports medians); the mean over the whole loop stays the first figure.
    let start = Instant::now();
    let mut calls: Vec<f64> = Vec::new();
    while start.elapsed().as_secs_f64() < seconds {
        let t0 = Instant::now();
        prepared[calls.len() % copies].run().unwrap_or_else(|e| fail(&e.to_string()));
        calls.push(t0.elapsed().as_secs_f64());
    }
    let runs = calls.len();
    let s = start.elapsed().as_secs_f64() / runs as f64;
    calls.sort_by(f64::total_cmp);
    let median = if runs % 2 == 1 { calls[runs / 2] } else { (calls[runs / 2 - 1] + calls[runs / 2]) / 2.0 };
    println!(
        "{op} {format} (a={act}) {m}×{n}×{k} ({copies} cop{}): {runs} runs, mean {:.3} ms, {:.1} GFLOP/s, {:.2} Gweights/s; median {:.3} ms, {:.2} Gweights/s; {}",
        if copies == 1 { "y" } else { "ies" },
        s * 1e3,
        p.flops() / s / 1e9,
        (n * k) as f64 / s / 1e9,
        median * 1e3,
        (n * k) as f64 / median / 1e9,
        prepared[0].compute()
    );
}
