//! The backend suite on the wgpu GPU backend (lavapipe in CI), plus what is GPU-specific: the
//! adapter list, the buffer limit error, the F16 label and every FP8/F16/BF16 code decoded on the
//! device.
//!
//! Where no adapter exists the tests print why and pass, except in CI (`CI` set), where a
//! missing adapter is a failure: CI installs lavapipe precisely so these tests run.
mod common;

use chipbench::formats::scaling::{Codes, Role};
use chipbench::formats::{Element, Format, QuantizedMatrix, Scaling};
use chipbench::kernels::wgpu::{list_adapters, Tile, WgpuBackend, WgpuOptions};
use chipbench::kernels::{Backend, Op, Problem, Support};
use chipbench::measure::inputs::ProblemSpec;
use chipbench::measure::validate::{validate, Reference};

fn open(options: WgpuOptions) -> Option<WgpuBackend> {
    match WgpuBackend::with_options(None, options) {
        Ok(b) if std::env::var_os("CI").is_some() && b.device().api == "Gl" => {
            panic!(
                "CI must run the wgpu tests on lavapipe (Vulkan), but Vulkan fell back to GL: {:?}",
                b.device()
            )
        }
        Ok(b) => Some(b),
        Err(e) if std::env::var_os("CI").is_some() => {
            panic!("CI must run the wgpu tests (lavapipe), but no adapter opened: {e}")
        }
        Err(e) => {
            println!(
                "SKIPPED: wgpu tests need a GPU adapter (install Mesa's Vulkan drivers for lavapipe): {e}"
            );
            None
        }
    }
}

backend_suite!(|| open(WgpuOptions::default()).map(|b| Box::new(b) as Box<dyn chipbench::kernels::Backend>));

#[test]
fn adapters_are_listed_with_api_and_driver() {
    let Some(b) = open(WgpuOptions::default()) else { return };
    let list = list_adapters();
    assert!(!list.is_empty(), "a backend opened but no adapter is listed");
    for a in &list {
        assert!(!a.name.is_empty() && !a.kind.is_empty(), "{a:?}");
        assert!(["Vulkan", "Metal", "Dx12", "Gl", "WebGpu", "Noop"].contains(&a.api.as_str()), "{a:?}");
    }
    let used = b.device();
    assert!(list.iter().any(|a| a.name == used.name && a.api == used.api), "{used:?} not in {list:?}");
    println!("adapters: {list:#?}");
}

#[test]
fn a_buffer_over_the_device_limit_is_a_one_line_error() {
    let Some(b) = open(WgpuOptions { max_buffer_bytes: Some(1 << 20), ..Default::default() }) else { return };
    // 600 × 600 f32 weights: 1.44 MB > 1 MiB.
    let p = ProblemSpec::new(Op::Gemv, 1, 600, 600, Format::F32, Scaling::NONE).build().unwrap();
    let e = match b.prepare(&p) {
        Ok(_) => panic!("a 1.44 MB buffer passed a 1 MiB limit"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("max_storage_buffer_binding_size") && e.contains("weights"), "{e}");
    assert!(!e.contains('\n'), "{e}");
    // The same backend still runs what fits.
    let p = ProblemSpec::new(Op::Gemv, 1, 100, 600, Format::F32, Scaling::NONE).build().unwrap();
    assert_eq!(b.compute(&p).unwrap().len(), 100);
}

#[test]
fn f16_is_native_with_shader_f16_and_labelled_emulated_without() {
    let Some(native) = open(WgpuOptions::default()) else { return };
    let Some(emulated) = open(WgpuOptions { no_shader_f16: true, ..Default::default() }) else { return };
    let p = ProblemSpec::new(Op::Gemm, 5, 7, 9, Format::F16, Scaling::NONE).build().unwrap();
    match emulated.support(&p) {
        Support::Emulated(why) => assert!(why.contains("unpack2x16float"), "{why}"),
        s => panic!("F16 without SHADER_F16 must be labelled emulated, got {s:?}"),
    }
    let expected = if native.native_f16() { Support::Native } else { emulated.support(&p) };
    assert_eq!(native.support(&p), expected);
    println!("adapter SHADER_F16: {}", native.native_f16());
    // The emulated path is correct too (the suite runs whichever path the adapter has).
    for f in [Format::F16, Format::BF16] {
        for (op, m, n, k) in [(Op::Gemm, 33, 65, 257), (Op::Gemv, 1, 67, 1031)] {
            let p =
                ProblemSpec::new(op, m, n, k, Format::F16, Scaling::NONE).with_act_format(f).build().unwrap();
            let v = validate(&emulated.compute(&p).unwrap(), &Reference::compute(&p), 0.0);
            assert!(v.valid, "emulated f16 {op} a={f}: {}", v.reason);
        }
    }
}

/// `C = [1] · Wᵀ` with W a column of every code of the format: the output is each code's value,
/// decoded on the device; it must match the CPU codec bit for bit (NaN as NaN, ±inf, subnormals).
/// With F16 activations an FP8 or F16 GEMM runs on the cooperative-matrix path where the device
/// has it (codes decoded to f16 in workgroup memory, multiplied on tensor cores).
fn every_code_decodes_exactly<E: Element>(
    b: &WgpuBackend,
    codes: Vec<E>,
    wrap: fn(Vec<E>) -> Codes,
    act: Format,
) {
    let n = codes.len();
    let expected: Vec<f32> = codes.iter().map(|c| c.decode()).collect();
    let a = QuantizedMatrix::quantize(&[1.0], 1, 1, act, Scaling::NONE, Role::Activations).unwrap();
    let w = QuantizedMatrix {
        rows: n,
        cols: 1,
        codes: wrap(codes),
        scaling: Scaling::NONE,
        block: Scaling::NONE.block(Role::Weights, n, 1),
        scales: vec![1.0].into(),
    };
    let format = w.format();
    for op in [Op::Gemv, Op::Gemm] {
        let p = Problem::new(op, a.clone(), w.clone()).unwrap();
        let out = b.compute(&p).unwrap();
        for (i, (&o, &e)) in out.iter().zip(&expected).enumerate() {
            // WGSL lets a device flush f32 subnormals to zero in arithmetic, and NVIDIA's Vulkan
            // driver does (an H100 returned 0 for the BF16 code 0x0001); every other code, and
            // every FP8/F16 code (all f32-normal), must match exactly (±0 compare equal: the
            // accumulator starts at +0).
            let flushed = e.is_subnormal() && o == 0.0;
            let same = (o.is_nan() && e.is_nan()) || o == e || flushed;
            assert!(same, "{op} {format} code {i:#x}: device {o:e}, codec {e:e}");
        }
    }
}

#[test]
fn every_fp8_f16_bf16_code_decodes_exactly_on_the_device() {
    use chipbench::formats::{E4m3, E5m2};
    use half::{bf16, f16};
    for options in [WgpuOptions::default(), WgpuOptions { no_shader_f16: true, ..Default::default() }] {
        let Some(b) = open(options) else { return };
        for act in [Format::F32, Format::F16] {
            every_code_decodes_exactly(&b, (0..=255u8).map(E4m3).collect(), Codes::E4M3, act);
            every_code_decodes_exactly(&b, (0..=255u8).map(E5m2).collect(), Codes::E5M2, act);
            every_code_decodes_exactly(&b, (0..=u16::MAX).map(f16::from_bits).collect(), Codes::F16, act);
        }
        every_code_decodes_exactly(
            &b,
            (0..=u16::MAX).map(bf16::from_bits).collect(),
            Codes::BF16,
            Format::F32,
        );
    }
}

/// Both tilings, and GEMV rows long enough for the unrolled loop (4 loads per thread for FP8,
/// 2 for 16-bit formats) to run on 256 threads and leave a ragged tail.
#[test]
fn both_tilings_match_the_reference() {
    for tile in [Tile::SMALL, Tile::LARGE] {
        let Some(b) = open(WgpuOptions { tile: Some(tile), ..Default::default() }) else { return };
        let cases =
            [(Format::F32, Scaling::NONE), (Format::F16, Scaling::NONE), (Format::E4M3, Scaling::DEEPSEEK)];
        for (format, scaling) in cases {
            for (op, m, n, k) in
                [(Op::Gemm, 130, 131, 257), (Op::Gemm, 1, 129, 33), (Op::Gemv, 1, 5, 4 * 1024 + 4 * 37 + 1)]
            {
                let p = ProblemSpec::new(op, m, n, k, format, scaling).build().unwrap();
                let v = validate(&b.compute(&p).unwrap(), &Reference::compute(&p), 0.0);
                assert!(v.valid, "{tile:?} {op} {format} {m}×{n}×{k}: {}", v.reason);
            }
        }
    }
}

/// Every (activation, weight) pair the cooperative-matrix path takes, with each kind of scale
/// look-up (none, per-tensor, DeepSeek 1×128/128×128 blocks promoted every 128 along K, MX 1×32),
/// at odd shapes with a ragged K tail, against the f64 reference. Where the adapter lists a
/// 16×16×16 f16→f32 configuration these run on tensor cores (asserted through `compute`); on
/// lavapipe they run the shader f32 kernels and say so.
#[test]
fn coop_matrix_formats_match_the_reference() {
    let Some(b) = open(WgpuOptions::default()) else { return };
    let path = b.device().coop_matrix_path;
    println!("cooperative-matrix path: {path}");
    assert!(path.starts_with("on: ") || path.starts_with("off: "), "{path}");
    assert_eq!(path.starts_with("on: "), b.coop_matrix().is_ok());
    let cases = [
        (Format::F16, Format::F16, Scaling::NONE),
        (Format::F16, Format::E4M3, Scaling::DEEPSEEK),
        (Format::E4M3, Format::E4M3, Scaling::DEEPSEEK),
        (Format::E5M2, Format::E5M2, Scaling::MX32),
        (Format::F16, Format::E5M2, Scaling::PER_TENSOR),
    ];
    for (act, w, scaling) in cases {
        for (m, n, k) in [(1, 17, 33), (70, 67, 300)] {
            let p = ProblemSpec::new(Op::Gemm, m, n, k, w, scaling).with_act_format(act).build().unwrap();
            let mut prepared = b.prepare(&p).unwrap();
            prepared.run().unwrap();
            let label = format!("a={act} w={w} {scaling} {m}×{n}×{k}");
            let expected =
                if b.coop_matrix().is_ok() { "coop-matrix 16x16x16 f16->f32" } else { "shader f32 fma" };
            assert_eq!(prepared.compute(), expected, "{label}");
            let v = validate(&prepared.output().unwrap(), &Reference::compute(&p), b.output_roundoff(&p));
            assert!(v.valid, "{label} on {}: {}", prepared.compute(), v.reason);
        }
    }
}

/// BF16, F32 and GEMV never take the path, and turning it off says so.
#[test]
fn the_shader_kernels_run_where_the_path_does_not_apply() {
    let Some(b) = open(WgpuOptions::default()) else { return };
    let shader = |b: &WgpuBackend, op, act, w| {
        let p = ProblemSpec::new(op, 3, 5, 40, w, Scaling::NONE).with_act_format(act).build().unwrap();
        let mut prepared = b.prepare(&p).unwrap();
        prepared.run().unwrap();
        prepared.compute()
    };
    assert_eq!(shader(&b, Op::Gemm, Format::BF16, Format::BF16), "shader f32 fma");
    assert_eq!(shader(&b, Op::Gemm, Format::F32, Format::F16), "shader f32 fma");
    assert_eq!(shader(&b, Op::Gemv, Format::F16, Format::F16), "shader f32 fma");
    let Some(off) = open(WgpuOptions { no_coop_matrix: true, ..Default::default() }) else { return };
    assert_eq!(off.device().coop_matrix_path, "off: turned off by the caller (no_coop_matrix)");
    assert!(off.coop_matrix().is_err());
    assert_eq!(shader(&off, Op::Gemm, Format::F16, Format::F16), "shader f32 fma");
}

#[test]
fn runs_report_their_timing_method_and_buffers() {
    let Some(b) = open(WgpuOptions::default()) else { return };
    let p = ProblemSpec::new(Op::Gemv, 1, 256, 512, Format::E4M3, Scaling::PER_TENSOR).build().unwrap();
    let mut prepared = b.prepare(&p).unwrap();
    let t = prepared.run().unwrap();
    assert_eq!(t.is_some(), b.has_timestamps());
    assert_eq!(prepared.timing_method(), if b.has_timestamps() { "timestamp-query" } else { "wall-clock" });
    if let Some(s) = t {
        assert!(s > 0.0 && s < 10.0, "device time {s} s");
    }
    // FP8 weights on the device: one byte per code, a quarter of f32.
    let bytes = prepared.buffer_bytes();
    assert_eq!(bytes.weights, 256 * 512);
    let f32p = ProblemSpec::new(Op::Gemv, 1, 256, 512, Format::F32, Scaling::NONE).build().unwrap();
    assert_eq!(b.prepare(&f32p).unwrap().buffer_bytes().weights, 4 * 256 * 512);
}

/// Sanity throughput on whatever adapter is present (not a test of speed: run by hand with
/// `cargo test --release --test backend_wgpu -- --ignored --nocapture`).
#[test]
#[ignore]
fn measure_throughput() {
    // GEMM_N: square GEMM size; GEMV_N: square GEMV size; TILES: GEMM tilings to compare,
    // e.g. `8x8x4,8x8x8` (tm × tn per thread, K groups per tile step); default: the adapter's.
    let env =
        |name: &str, default: usize| std::env::var(name).ok().and_then(|s| s.parse().ok()).unwrap_or(default);
    let tiles: Vec<Option<Tile>> = match std::env::var("TILES") {
        Ok(list) => list
            .split(',')
            .map(|t| {
                let v: Vec<u32> = t.split('x').map(|x| x.parse().expect("TILES: tmxtnxkg")).collect();
                Some(Tile { tm: v[0], tn: v[1], kg: v[2], gemv_threads: 256 })
            })
            .collect(),
        Err(_) => vec![None],
    };
    for tile in tiles {
        let Some(b) = open(WgpuOptions { tile, ..Default::default() }) else { return };
        println!(
            "adapter: {:?}; tile {tile:?}; timing: {}",
            b.device(),
            if b.has_timestamps() { "timestamp-query" } else { "wall" }
        );
        let median = |p: &Problem, reps: usize| -> f64 {
            let mut prepared = b.prepare(p).unwrap();
            prepared.run().unwrap();
            let v = validate(&prepared.output().unwrap(), &Reference::compute(p), 0.0);
            assert!(v.valid, "{}", v.reason);
            let mut t: Vec<f64> = (0..reps)
                .map(|_| {
                    let start = std::time::Instant::now();
                    let dev = prepared.run().unwrap();
                    dev.unwrap_or_else(|| start.elapsed().as_secs_f64())
                })
                .collect();
            t.sort_by(f64::total_cmp);
            t[t.len() / 2]
        };
        let size = env("GEMM_N", 512);
        for format in [Format::F32, Format::F16, Format::E4M3] {
            let scaling = if format.is_fp8() { Scaling::DEEPSEEK } else { Scaling::NONE };
            let p = ProblemSpec::new(Op::Gemm, size, size, size, format, scaling).build().unwrap();
            let s = median(&p, 7);
            println!("GEMM {format} {size}³: {:.3} ms, {:.2} GFLOP/s", s * 1e3, p.flops() / s / 1e9);
        }
        let n = env("GEMV_N", 4096);
        for format in Format::ALL {
            let scaling = if format.is_fp8() { Scaling::PER_TENSOR } else { Scaling::NONE };
            let p = ProblemSpec::new(Op::Gemv, 1, n, n, format, scaling).build().unwrap();
            let s = median(&p, 21);
            println!(
                "GEMV {format} {n}×{n}: {:.3} ms, {:.2} G weights/s, {:.2} GB/s of weights",
                s * 1e3,
                (n * n) as f64 / s / 1e9,
                (n * n * format.bytes()) as f64 / s / 1e9
            );
        }
    }
}
