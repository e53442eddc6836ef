//! Native CPU kernels: GEMM and GEMV in every format, then a report of the targets.
//!
//! Criterion part: the matrix (ops × formats × shapes) is declared once in `CASES` and the cases
//! are generated from it; sample size 10 and short measurement times keep it to seconds.
//! Report part: on the same machine in the same run, measures the FMA peak (register-only FMA
//! loop), a STREAM-like read bandwidth, FP32 GEMM at n = 1024/2048 against candle's F32 matmul
//! (all cores both), every format's GEMM against FP32, and GEMV weights/s with W ≥ 4× the
//! last-level cache. Every timed output is first checked against an f64 reference on sampled
//! elements with the validation bound; a failed check aborts the report.
//! Last, decode batches (skinny GEMMs of m ≤ `SKINNY_M` rows) against m separate GEMVs.
//! `CHIPBENCH_BENCH_FULL=1` adds n = 4096; `CHIPBENCH_BENCH_REPORT=0` skips the report.

use chipbench::formats::scaling::Role;
use chipbench::formats::{Format, QuantizedMatrix, Scaling};
use chipbench::kernels::cpu::CpuBackend;
use chipbench::kernels::{Backend, Op, Problem};
use chipbench::measure::calibration::fma_peak_gflops;
use chipbench::measure::inputs::{random_matrix, Dist, ProblemSpec};
use chipbench::measure::read_bw;
use chipbench::project::check::median;
use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Interleaved rounds of the cold GEMV table (each round: every format, best of 3 calls).
const GEMV_ROUNDS: usize = 21;

/// The criterion matrix: (op, m, n, k) × every format (FP8 per-tensor scaled).
const CASES: &[(Op, usize, usize, usize)] =
    &[(Op::Gemm, 256, 256, 256), (Op::Gemm, 512, 512, 512), (Op::Gemv, 1, 4096, 4096)];

fn scaling_for(format: Format) -> Scaling {
    if format.is_fp8() {
        Scaling::PER_TENSOR
    } else {
        Scaling::NONE
    }
}

fn kernels(c: &mut Criterion) {
    let backend = CpuBackend::new(0);
    for &(op, m, n, k) in CASES {
        let mut group = c.benchmark_group(format!("cpu/{op}/{m}x{n}x{k}"));
        group
            .sample_size(10)
            .warm_up_time(Duration::from_millis(200))
            .measurement_time(Duration::from_millis(600));
        for format in Format::ALL {
            let p = ProblemSpec::new(op, m, n, k, format, scaling_for(format)).build().unwrap();
            check(&p, &backend.compute(&p).unwrap(), "criterion case");
            let mut prepared = backend.prepare(&p).unwrap();
            match op {
                Op::Gemm => group.throughput(Throughput::Elements(p.flops() as u64)),
                Op::Gemv => group.throughput(Throughput::Bytes(p.w.logical_bytes().total)),
            };
            group.bench_function(BenchmarkId::from_parameter(format), |b| b.iter(|| prepared.run().unwrap()));
        }
        group.finish();
    }
}

/// Check sampled output elements against f64 with the validation bound `2 (k + 16) 2^-24 Σ|a·w|`.
fn check(p: &Problem, out: &[f32], what: &str) {
    let (m, n, k) = (p.m(), p.n(), p.k());
    assert_eq!(out.len(), m * n, "{what}: output size");
    let (a, w) = (p.a.dequantize_f64(), p.w.dequantize_f64());
    let gamma = 2.0 * (k as f64 + 16.0) * 2f64.powi(-24);
    for s in 0..64usize {
        let (i, j) = ((s * 7919) % m, (s * 104_729 + 13) % n);
        let (mut r, mut abs) = (0f64, 0f64);
        for t in 0..k {
            let prod = a[i * k + t] * w[j * k + t];
            r += prod;
            abs += prod.abs();
        }
        let d = (out[i * n + j] as f64 - r).abs();
        assert!(
            d <= gamma * abs + 1e-30,
            "{what}: C[{i}][{j}] = {} but f64 says {r} (bound {})",
            out[i * n + j],
            gamma * abs
        );
    }
}

/// Best (minimum) seconds of `reps` runs after one warm-up: the machine is shared, so the
/// fastest run is the one least disturbed by other processes (used for every kernel alike).
fn time(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut t: Vec<f64> = (0..reps)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[0]
}

/// Per-round timings of several problems measured side by side: `rounds[r][i]` is the best of 3
/// calls of problem `i` in round `r`, the problems taking turns within each round; `ceiling[r]`
/// the read ceiling measured in round `r` too, when a probe was given.
struct Interleaved {
    rounds: Vec<Vec<f64>>,
    ceiling: Vec<f64>,
}

impl Interleaved {
    /// Every problem prepared and validated first, then timed in `rounds` interleaved rounds;
    /// with `probe`, each round ends with one read-ceiling measurement of that variant, so the
    /// ceiling is a best of as many rounds, in the same minutes, as the kernels it bounds.
    fn measure(
        backend: &CpuBackend,
        problems: &[Problem],
        what: &str,
        rounds: usize,
        probe: Option<(&read_bw::ReadProbe, read_bw::ReadVariant)>,
    ) -> Interleaved {
        let mut prepared: Vec<_> = problems
            .iter()
            .map(|p| {
                let mut prepared = backend.prepare(p).unwrap();
                prepared.run().unwrap();
                check(p, &prepared.output().unwrap(), &format!("{what} {} m={}", p.format(), p.m()));
                prepared
            })
            .collect();
        let mut ceiling = Vec::new();
        let rounds = (0..rounds)
            .map(|_| {
                let times = prepared
                    .iter_mut()
                    .map(|prepared| {
                        time(3, || {
                            prepared.run().unwrap();
                        })
                    })
                    .collect();
                if let Some((probe, variant)) = probe {
                    ceiling.extend(probe.measure(&[variant], 1, 2).best().map(|v| v.gbs));
                }
                times
            })
            .collect();
        Interleaved { rounds, ceiling }
    }

    /// Seconds per call of problem `i`: its best round.
    fn best(&self, i: usize) -> f64 {
        self.rounds.iter().map(|r| r[i]).fold(f64::INFINITY, f64::min)
    }

    /// How many times faster problem `i` runs than problem `base`: the median over rounds of the
    /// ratio within each round. The two were timed a few milliseconds apart in every round, so a
    /// drift of the machine's bandwidth between rounds (this VM's moves by ±30 % within minutes)
    /// cancels in each ratio, where the ratio of two best-of times would pair the base's fastest
    /// moment with `i`'s fastest, taken in different rounds.
    fn speedup(&self, i: usize, base: usize) -> f64 {
        median(&self.rounds.iter().map(|t| t[base] / t[i]).collect::<Vec<_>>())
    }

    /// The lowest and highest per-round speedup of `i` over `base` (the spread behind the median).
    fn speedup_range(&self, i: usize, base: usize) -> (f64, f64) {
        self.rounds
            .iter()
            .map(|t| t[base] / t[i])
            .fold((f64::INFINITY, 0f64), |(lo, hi), v| (lo.min(v), hi.max(v)))
    }
}

/// The last-level cache (the library's sysfs reader; 32 MiB when it cannot tell).
fn llc_bytes() -> usize {
    read_bw::llc_bytes().map_or(32 << 20, |b| b as usize)
}

/// The buffer the read ceiling is measured on (≥ 4× the LLC).
fn read_probe(threads: usize, llc: usize) -> read_bw::ReadProbe {
    read_bw::ReadProbe::new(read_bw::buffer_bytes(Some(llc as u64), 256 << 20), threads)
}

/// The read ceiling the runner uses: the best of the library's read microbenchmarks (several
/// streams per thread, SIMD loads, prefetch, pinned workers) on a buffer ≥ 4× the LLC, with the
/// variant that won.
fn read_bandwidth(probe: &read_bw::ReadProbe) -> (f64, Option<read_bw::ReadVariant>) {
    probe.measure(&read_bw::variants(), 3, 4).best().map_or((0.0, None), |v| (v.gbs, Some(v.variant)))
}

fn gemm_problem(n: usize, format: Format) -> Problem {
    ProblemSpec::new(Op::Gemm, n, n, n, format, scaling_for(format)).with_seed(n as u64).build().unwrap()
}

/// GFLOP/s of our GEMM (validated first).
fn our_gemm(backend: &CpuBackend, p: &Problem, reps: usize) -> f64 {
    let mut prepared = backend.prepare(p).unwrap();
    prepared.run().unwrap();
    check(p, &prepared.output().unwrap(), &format!("cpu gemm {}", p.format()));
    p.flops()
        / time(reps, || {
            prepared.run().unwrap();
        })
        / 1e9
}

/// GFLOP/s of candle's F32 matmul on the same (f32) problem, W given as k×n contiguous.
fn candle_gemm(p: &Problem, reps: usize) -> f64 {
    use candle_core::{Device, Tensor};
    let (m, n, k) = (p.m(), p.n(), p.k());
    let a = Tensor::from_vec(p.a.dequantize(), (m, k), &Device::Cpu).unwrap();
    let w = Tensor::from_vec(p.w.dequantize(), (n, k), &Device::Cpu).unwrap();
    let wt = w.t().unwrap().contiguous().unwrap();
    let out: Vec<f32> = a.matmul(&wt).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    check(p, &out, "candle matmul");
    p.flops()
        / time(reps, || {
            black_box(a.matmul(&wt).unwrap());
        })
        / 1e9
}

fn report() {
    let backend = CpuBackend::new(0);
    let threads = backend.threads();
    let full = std::env::var("CHIPBENCH_BENCH_FULL").is_ok_and(|v| v == "1");
    let llc = llc_bytes();
    println!("\n== chipbench cpu kernels report: {} threads, isa {} ==", threads, backend.isa());
    // Best of several FMA-peak measurements, spread over the report (see `time`).
    let mut peak = fma_peak_gflops(threads, 0.3);
    let probe = read_probe(threads, llc);
    let (bw, variant) = read_bandwidth(&probe);
    println!(
        "FMA peak (register-only loop): {peak:.1} GFLOP/s; read ceiling (best read microbenchmark): {bw:.1} GB/s; LLC {} MiB",
        llc >> 20
    );

    let mut gemm_rows: Vec<(usize, String, f64, Option<f64>, f64)> = Vec::new();
    let sizes: &[usize] = if full { &[1024, 2048, 4096] } else { &[1024, 2048] };
    for &n in sizes {
        let reps = if n >= 4096 { 3 } else { 7 };
        let f32p = gemm_problem(n, Format::F32);
        let ours = our_gemm(&backend, &f32p, reps);
        let candle = candle_gemm(&f32p, reps);
        drop(f32p);
        gemm_rows.push((n, "f32".into(), ours, Some(candle), ours));
        gemm_rows.push((n, "candle".into(), candle, None, ours));
        for format in [Format::BF16, Format::F16, Format::E4M3, Format::E5M2] {
            let g = our_gemm(&backend, &gemm_problem(n, format), reps);
            gemm_rows.push((n, format.to_string(), g, None, ours));
        }
        peak = peak.max(fma_peak_gflops(threads, 0.3));
    }
    peak = peak.max(fma_peak_gflops(threads, 0.3));
    println!("FMA peak, best of {} measurements: {peak:.1} GFLOP/s", sizes.len() + 2);
    println!(
        "\n{:>6} {:>6} {:>10} {:>9} {:>10} {:>9}",
        "n", "format", "GFLOP/s", "/ peak", "/ candle", "/ own f32"
    );
    for (n, name, g, candle, f32_own) in gemm_rows {
        let vs_candle = candle.map_or(String::new(), |c| format!("{:.2}x", g / c));
        let vs_own = if name == "candle" { String::new() } else { format!("{:.2}x", g / f32_own) };
        println!("{n:>6} {name:>6} {g:>10.1} {:>8.1}% {vs_candle:>10} {vs_own:>9}", 100.0 * g / peak);
    }

    // GEMV with the weights of the smallest format (FP8) already ≥ 4× LLC.
    let k = 8192;
    let n = (4 * llc).div_ceil(k).next_multiple_of(1024);
    println!("\nGEMV {n}×{k} (FP8 weights {} MiB ≥ 4× LLC), FP8 per-tensor scaled", (n * k) >> 20);
    // The ceiling again just before the table (this VM's bandwidth moves within minutes; the
    // GEMM tables took some), and once in every round of the table: the best of all is kept, a
    // best of as many tries as the GEMVs get (a ceiling the GEMVs beat bounds nothing).
    let (bw_again, variant_again) = read_bandwidth(&probe);
    println!(
        "{:>6} {:>10} {:>11} {:>8} {:>10} {:>9} {:>13}",
        "format", "MiB", "Gweights/s", "GB/s", "/ read bw", "/ f32", "rounds range"
    );
    println!(
        "(Gweights/s and GB/s: each format's best round; / f32: the median over {GEMV_ROUNDS} rounds of \
         the speedup within each round, the formats taking turns)"
    );
    let values = random_matrix(n, k, 7, Dist::Gaussian);
    let x = random_matrix(1, k, 8, Dist::Gaussian);
    let a = QuantizedMatrix::quantize(&x, 1, k, Format::F32, Scaling::NONE, Role::Activations).unwrap();
    // Every format prepared and validated first, then timed in interleaved rounds (best of 3
    // per round, best round kept), so a drift of the machine's bandwidth hits all formats alike.
    let problems: Vec<Problem> = Format::ALL
        .iter()
        .map(|&format| {
            let w =
                QuantizedMatrix::quantize(&values, n, k, format, scaling_for(format), Role::Weights).unwrap();
            Problem::new(Op::Gemv, a.clone(), w).unwrap()
        })
        .collect();
    drop(values);
    let round_probe = variant_again.or(variant).map(|v| (&probe, v));
    let timed = Interleaved::measure(&backend, &problems, "cpu gemv", GEMV_ROUNDS, round_probe);
    let bw_rounds = timed.ceiling.iter().copied().fold(0f64, f64::max);
    let bw = bw.max(bw_again).max(bw_rounds);
    for (i, p) in problems.iter().enumerate() {
        let best = timed.best(i);
        let gbs = p.w.logical_bytes().total as f64 / best / 1e9;
        let (lo, hi) = timed.speedup_range(i, 0);
        println!(
            "{:>6} {:>10} {:>11.2} {gbs:>8.1} {:>9.1}% {:>8.2}x {:>13}",
            p.format(),
            p.w.logical_bytes().total >> 20,
            (n * k) as f64 / best / 1e9,
            100.0 * gbs / bw,
            timed.speedup(i, 0),
            format!("{lo:.2}–{hi:.2}")
        );
    }
    println!(
        "read ceiling: {bw_again:.1} GB/s just before the table, best of its {} rounds {bw_rounds:.1}; \
         / read bw divides by the best of all, {bw:.1} GB/s",
        timed.ceiling.len()
    );
    println!(
        "targets: GEMM f32 ≥ 90% peak, ≥ 1.0x candle; formats ≥ 0.9x own f32; GEMV bf16/f32 and \
         f16/f32 ≥ 1.85x (weights/s, cold), fp8/f32 ≥ 2.5x; f32 GEMV ≥ 85% of the read ceiling"
    );
    lowp_report(&backend, threads, peak, n, k);
    skinny_report(&backend);
}

/// Skinny products (a decode batch of m ≤ `SKINNY_M` activation rows) run the GEMV kernel once
/// per row on L1-resident row groups, reading W once: what a batch of m costs against m GEMVs.
fn skinny_report(backend: &CpuBackend) {
    let (n, k) = (16384, 4096);
    println!(
        "\nDecode batches on W {n}×{k} (skinny GEMMs, m ≤ {}; BF16 128 MiB, E4M3 64 MiB)",
        chipbench::kernels::SKINNY_M
    );
    println!("{:>6} {:>4} {:>10} {:>12} {:>15}", "format", "m", "ms", "/ m GEMVs", "row-weights/s");
    let values = random_matrix(n, k, 11, Dist::Gaussian);
    for (format, scaling) in [(Format::BF16, Scaling::NONE), (Format::E4M3, Scaling::DEEPSEEK)] {
        let w = QuantizedMatrix::quantize(&values, n, k, format, scaling, Role::Weights).unwrap();
        let ms = [1, 2, 4, 8, 16];
        let problems: Vec<Problem> = ms
            .iter()
            .map(|&m| {
                let x = random_matrix(m, k, 12 + m as u64, Dist::Gaussian);
                let a = QuantizedMatrix::quantize(&x, m, k, Format::F32, Scaling::NONE, Role::Activations)
                    .unwrap();
                Problem::new(if m == 1 { Op::Gemv } else { Op::Gemm }, a, w.clone()).unwrap()
            })
            .collect();
        let timed = Interleaved::measure(backend, &problems, "cpu skinny", 3, None);
        for (i, &m) in ms.iter().enumerate() {
            let best = timed.best(i);
            println!(
                "{format:>6} {m:>4} {:>10.2} {:>11.2}x {:>11.2} G/s",
                best * 1e3,
                1.0 / (m as f64 * timed.speedup(i, 0)),
                (m * n * k) as f64 / best / 1e9
            );
        }
    }
}

/// Low-precision activations: the GEMMs of the default suite in f32 and with BF16/E4M3/E5M2
/// activations (DeepSeek scaling for FP8), on the BF16 dot-product units where the CPU has them
/// (the `compute` column says which units ran), and the GEMV weights/s of BF16 against FP8.
fn lowp_report(backend: &CpuBackend, threads: usize, fma_peak: f64, gemv_n: usize, gemv_k: usize) {
    use chipbench::measure::calibration::{dot_peak, tile_peak, CalibrationConfig};
    // Best of five 300 ms trials: one trial read 381 GFLOP/s on Zen 4 where PyTorch's BF16 GEMM
    // ran at 428 in the same minutes; another run's single trial read 437.
    let cfg = CalibrationConfig {
        fma_trial: Duration::from_millis(300),
        trials: 5,
        ..CalibrationConfig::quick(threads)
    };
    let dot = dot_peak(threads, &cfg);
    let roof = dot.unwrap_or(fma_peak);
    match dot {
        Some(g) => println!("\nBF16 dot-product peak (register-only loop): {g:.1} GFLOP/s"),
        None => println!("\nBF16 dot-product units: absent on this CPU (or CHIPBENCH_NO_BF16_DOT=1): low-precision activations run on f32 FMAs"),
    }
    let tile = dot.and_then(|_| tile_peak(threads, &cfg)).filter(|_| backend.tiles().is_some());
    if let Some(g) = tile {
        println!("BF16 tile-matrix unit (AMX) roof (tile loop fed from L1): {g:.1} GFLOP/s: the GEMMs below run on it");
    }
    println!(
        "{:>16} {:>12} {:>10} {:>8} {:>8} {:>8}  compute",
        "m×n×k", "format (a)", "GFLOP/s", "/ roof", "/ f32", "/ bf16"
    );
    for (m, n, k) in [(2048, 2048, 2048), (256, 2048, 7168)] {
        let (mut f32_rate, mut bf16_rate) = (0.0, 0.0);
        for format in [Format::F32, Format::BF16, Format::E4M3, Format::E5M2] {
            let scaling = if format.is_fp8() { Scaling::DEEPSEEK } else { Scaling::NONE };
            let p = ProblemSpec::new(Op::Gemm, m, n, k, format, scaling)
                .with_act_format(format)
                .with_seed(3)
                .build()
                .unwrap();
            let compute = backend.prepare(&p).unwrap().compute();
            let g = our_gemm(backend, &p, 5);
            if format == Format::F32 {
                f32_rate = g;
            }
            if format == Format::BF16 {
                bf16_rate = g;
            }
            let vs_bf16 = if bf16_rate > 0.0 { format!("{:.2}x", g / bf16_rate) } else { "-".into() };
            let roof_here = match tile {
                Some(g) if chipbench::kernels::cpu::is_tile_compute(&compute) => g,
                _ if compute.starts_with("bf16-dot") => roof,
                _ => fma_peak,
            };
            println!(
                "{:>16} {:>12} {g:>10.1} {:>7.1}% {:>7.2}x {vs_bf16:>8}  {compute}",
                format!("{m}×{n}×{k}"),
                format!("{format} ({format})"),
                100.0 * g / roof_here,
                g / f32_rate
            );
        }
    }
    let (n, k) = (gemv_n, gemv_k);
    let values = random_matrix(n, k, 7, Dist::Gaussian);
    let x = random_matrix(1, k, 8, Dist::Gaussian);
    let mut bf16_rate = 0.0;
    for format in [Format::BF16, Format::E4M3] {
        let scaling = if format.is_fp8() { Scaling::DEEPSEEK } else { Scaling::NONE };
        let a = QuantizedMatrix::quantize(&x, 1, k, format, scaling, Role::Activations).unwrap();
        let w = QuantizedMatrix::quantize(&values, n, k, format, scaling, Role::Weights).unwrap();
        let p = Problem::new(Op::Gemv, a, w).unwrap();
        let mut prepared = backend.prepare(&p).unwrap();
        prepared.run().unwrap();
        check(&p, &prepared.output().unwrap(), &format!("cpu gemv {format} (a={format})"));
        let s = time(7, || {
            prepared.run().unwrap();
        });
        let rate = (n * k) as f64 / s / 1e9;
        if format == Format::BF16 {
            bf16_rate = rate;
        }
        println!(
            "GEMV {n}×{k} {format} (a={format}): {rate:.2} Gweights/s, {:.2}x bf16  {}",
            rate / bf16_rate,
            prepared.compute()
        );
    }
    println!("targets (CPU with BF16 dot units): bf16 ≥ 1.8x f32 and ≥ 85% dot peak; fp8 ≥ 0.9x bf16; fp8 GEMV ≥ 1.8x bf16 weights/s");
}

criterion_group!(benches, kernels);

fn main() {
    benches();
    // CHIPBENCH_BENCH_REPORT=0 skips the report (e.g. to profile one criterion case).
    if std::env::var("CHIPBENCH_BENCH_REPORT").map_or(true, |v| v != "0") {
        report();
    }
    Criterion::default().configure_from_args().final_summary();
}
