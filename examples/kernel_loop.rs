//! Run one CPU kernel in a loop, nothing else: a target for `perf record` / `perf stat`.
//!
//! `cargo run --release --example kernel_loop -- gemm f32 2048 [seconds] [threads]`
//! (`gemv` takes n = k = the size). Prints the rate once at the end.

use chipbench::formats::Format;
use chipbench::formats::Scaling;
use chipbench::kernels::cpu::CpuBackend;
use chipbench::kernels::{Backend, Op};
use chipbench::measure::inputs::ProblemSpec;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: &str| args.get(i).cloned().unwrap_or_else(|| default.to_string());
    let op = if arg(0, "gemm") == "gemv" { Op::Gemv } else { Op::Gemm };
    let format: Format = arg(1, "f32").parse().expect("format");
    let size: usize = arg(2, "2048").parse().expect("size");
    let seconds: f64 = arg(3, "5").parse().expect("seconds");
    let threads: usize = arg(4, "0").parse().expect("threads");
    let m = if op == Op::Gemv { 1 } else { size };
    let scaling = if format.is_fp8() { Scaling::PER_TENSOR } else { Scaling::NONE };
    let p = ProblemSpec::new(op, m, size, size, format, scaling).build().expect("problem");
    let backend = CpuBackend::new(threads);
    let mut prepared = backend.prepare(&p).expect("prepare");
    let start = Instant::now();
    let mut runs = 0u64;
    while start.elapsed().as_secs_f64() < seconds {
        prepared.run().expect("run");
        runs += 1;
    }
    let s = start.elapsed().as_secs_f64() / runs as f64;
    println!(
        "{op} {format} {m}×{size}×{size}: {runs} runs, {:.3} ms, {:.1} GFLOP/s",
        s * 1e3,
        p.flops() / s / 1e9
    );
}
