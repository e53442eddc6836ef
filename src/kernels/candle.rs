//! candle-core as the peer backend: what a Rust user gets from the most used tensor crate.
//!
//! - F32, F16, BF16 with activations of the same format: candle's own matmul (its BF16 matmul
//!   widens to f32 and narrows the output back to bf16; F16 runs the gemm crate's f16 kernel).
//!   A 16-bit output is rounded, so validation widens its bound by that format's unit roundoff.
//! - E4M3: the codes become a candle `F8E4M3` tensor, candle's own `to_dtype(F32)` decodes them
//!   on every run, scales are applied with a broadcast multiply, then an f32 matmul. That is
//!   candle's naive FP8 path, and it is the point of comparison (labelled emulated).
//! - E5M2: candle has no such dtype; chipbench decodes the codes to f32 and candle multiplies
//!   (labelled emulated).
//! - Mixed activation/weight formats: both operands converted to f32 by candle, then f32 matmul.

use super::{Backend, BufferBytes, Capability, DeviceInfo, Op, Prepared, Problem, Support};
use crate::formats::scaling::{Codes, Scheme};
use crate::formats::{Format, QuantizedMatrix};
use crate::{Error, Result};
use candle_core::{DType, Device, Tensor};

/// The candle CPU backend. `threads = 0` means all cores.
pub struct CandleBackend {
    threads: usize,
    pool: rayon::ThreadPool,
}

impl CandleBackend {
    pub fn new(threads: usize) -> Self {
        let threads =
            if threads == 0 { std::thread::available_parallelism().map_or(1, |n| n.get()) } else { threads };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .start_handler(|i| {
                crate::affinity::pin_current_thread(i);
            })
            .build()
            .expect("rayon pool");
        CandleBackend { threads, pool }
    }
}

fn candle_err(e: candle_core::Error) -> Error {
    // candle errors can span lines (backtraces): keep the first.
    Error::device("candle", e.to_string().lines().next().unwrap_or("error").to_string())
}

/// How candle gets an operand to the matmul dtype.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Path {
    /// Tensor in its own dtype, used as is.
    Native(DType),
    /// candle's own conversion to f32 on every run (F8E4M3, or a 16-bit operand in a mixed pair).
    CandleConvert,
    /// chipbench decodes to f32 once (E5M2: no candle dtype).
    Decoded,
}

fn dtype(format: Format) -> Option<DType> {
    match format {
        Format::F32 => Some(DType::F32),
        Format::BF16 => Some(DType::BF16),
        Format::F16 => Some(DType::F16),
        Format::E4M3 => Some(DType::F8E4M3),
        Format::E5M2 => None,
    }
}

fn paths(p: &Problem) -> (Path, Path) {
    let (fa, fw) = (p.a.format(), p.w.format());
    let same = fa == fw && !fa.is_fp8();
    let path = |f: Format| match dtype(f) {
        Some(d) if same => Path::Native(d),
        Some(DType::F32) => Path::Native(DType::F32),
        Some(_) => Path::CandleConvert,
        None => Path::Decoded,
    };
    (path(fa), path(fw))
}

/// The operand as a candle tensor in its stored dtype (decoded f32 for E5M2), plus the
/// per-element scale tensor when the matrix has scales.
fn upload(q: &QuantizedMatrix, device: &Device) -> Result<(Tensor, Scales)> {
    let shape = (q.rows, q.cols);
    let t = match &q.codes {
        Codes::F32(v) => Tensor::from_slice(v, shape, device),
        Codes::BF16(v) => Tensor::from_slice(v, shape, device),
        Codes::F16(v) => Tensor::from_slice(v, shape, device),
        Codes::E4M3(v) => {
            // candle's F8E4M3 storage type comes from the `float8` crate; the bits are ours.
            let f8: Vec<float8::F8E4M3> = v.iter().map(|c| float8::F8E4M3::from_bits(c.0)).collect();
            Tensor::from_vec(f8, shape, device)
        }
        Codes::E5M2(_) => Tensor::from_vec(q.codes.decode(), shape, device),
    }
    .map_err(candle_err)?;
    let scales = match q.scaling.scheme {
        Scheme::None => Scales::None,
        Scheme::PerTensor => Scales::Scalar(q.scales.get(0) as f64),
        // candle has no block-scaled op: expand the block scales to one per element (naive).
        Scheme::DeepSeek | Scheme::Mx32 => {
            let s: Vec<f32> = (0..q.rows * q.cols).map(|i| q.scale_at(i / q.cols, i % q.cols)).collect();
            Scales::Full(Tensor::from_vec(s, shape, device).map_err(candle_err)?)
        }
    };
    Ok((t, scales))
}

/// Scales as candle applies them.
enum Scales {
    None,
    Scalar(f64),
    Full(Tensor),
}

impl Scales {
    fn bytes(&self) -> u64 {
        match self {
            Scales::None => 0,
            Scales::Scalar(_) => 4,
            Scales::Full(t) => tensor_bytes(t),
        }
    }
}

/// The operand as the matmul input: candle's conversion (timed, it is part of candle's path)
/// and the scale multiply.
fn to_matmul_input(t: &Tensor, scales: &Scales, path: Path) -> candle_core::Result<Tensor> {
    let t = match path {
        Path::Native(_) | Path::Decoded => t.clone(),
        Path::CandleConvert => t.to_dtype(DType::F32)?,
    };
    match scales {
        Scales::None => Ok(t),
        Scales::Scalar(s) => t.affine(*s, 0.0),
        Scales::Full(s) => t.mul(s),
    }
}

struct CandlePrepared<'a> {
    backend: &'a CandleBackend,
    a: (Tensor, Scales, Path),
    w: (Tensor, Scales, Path),
    out: Option<Tensor>,
    bytes: BufferBytes,
}

impl Prepared for CandlePrepared<'_> {
    fn run(&mut self) -> Result<Option<f64>> {
        let (a, w) = (&self.a, &self.w);
        let out = self
            .backend
            .pool
            .install(|| -> candle_core::Result<Tensor> {
                let a = to_matmul_input(&a.0, &a.1, a.2)?;
                let w = to_matmul_input(&w.0, &w.1, w.2)?;
                a.matmul(&w.t()?)
            })
            .map_err(candle_err)?;
        self.out = Some(out);
        Ok(None)
    }

    fn output(&mut self) -> Result<Vec<f32>> {
        let out = self.out.as_ref().ok_or_else(|| Error::device("candle", "output() before run()"))?;
        out.to_dtype(DType::F32)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(candle_err)
    }

    fn buffer_bytes(&self) -> BufferBytes {
        self.bytes
    }

    fn compute(&self) -> String {
        // candle's CPU matmul multiplies in the dtype both operands share after conversion.
        match (self.a.2, self.w.2) {
            (Path::Native(a), Path::Native(w)) if a == w => format!("candle {} matmul", a.as_str()),
            _ => "candle f32 matmul".into(),
        }
    }
}

fn tensor_bytes(t: &Tensor) -> u64 {
    (t.elem_count() * t.dtype().size_in_bytes()) as u64
}

impl Backend for CandleBackend {
    fn name(&self) -> &'static str {
        "candle"
    }

    fn device(&self) -> DeviceInfo {
        DeviceInfo { name: "candle-core CPU".into(), kind: "cpu".into(), ..Default::default() }
    }

    fn threads(&self) -> usize {
        self.threads
    }

    fn capabilities(&self) -> Vec<Capability> {
        let mut caps = Vec::new();
        for op in [Op::Gemm, Op::Gemv] {
            for format in Format::ALL {
                let support = match format {
                    Format::F32 | Format::BF16 | Format::F16 => Support::Native,
                    Format::E4M3 => {
                        Support::Emulated("candle F8E4M3 to_dtype(f32) on every run, then f32 matmul".into())
                    }
                    Format::E5M2 => {
                        Support::Emulated("no E5M2 dtype in candle: decoded by chipbench, f32 matmul".into())
                    }
                };
                caps.push(Capability { op, format, support });
            }
        }
        caps
    }

    fn support(&self, p: &Problem) -> Support {
        match paths(p) {
            (Path::Native(_), Path::Native(_)) => Support::Native,
            (_, Path::Decoded) | (Path::Decoded, _) => {
                Support::Emulated("E5M2 decoded by chipbench (no candle dtype), candle f32 matmul".into())
            }
            _ => Support::Emulated(format!(
                "candle to_dtype(f32) of {}/{} on every run, then f32 matmul",
                p.a.format(),
                p.w.format()
            )),
        }
    }

    fn output_roundoff(&self, p: &Problem) -> f64 {
        match paths(p) {
            (Path::Native(DType::BF16), _) => Format::BF16.unit_roundoff(),
            (Path::Native(DType::F16), _) => Format::F16.unit_roundoff(),
            _ => 0.0,
        }
    }

    /// candle's F16 matmul (the gemm crate) accumulates each depth block of K in f32 but writes
    /// the f16 output after every block (a few hundred K, cache-dependent), so an output is
    /// rounded to f16 once per block: measured, its RMS error grows with K past one rounding
    /// (1.25 f16 roundoffs at K = 8192, GEMM 64²). Counted here as one rounding per 128 K, an
    /// upper estimate of the block count.
    fn output_partial_roundings(&self, p: &Problem) -> usize {
        match paths(p) {
            (Path::Native(DType::F16), _) => p.k().div_ceil(128).saturating_sub(1),
            _ => 0,
        }
    }

    fn prepare<'a>(&'a self, p: &'a Problem) -> Result<Box<dyn Prepared + 'a>> {
        let device = Device::Cpu;
        let (pa, pw) = paths(p);
        let (a, sa) = upload(&p.a, &device)?;
        let (w, sw) = upload(&p.w, &device)?;
        let scale_bytes = sa.bytes() + sw.bytes();
        let out_elem = match pa {
            Path::Native(d) => d.size_in_bytes(),
            _ => 4,
        };
        let bytes = BufferBytes {
            weights: tensor_bytes(&w),
            scales: scale_bytes,
            activations: tensor_bytes(&a),
            outputs: (p.m() * p.n() * out_elem) as u64,
            workspace: 0,
        };
        Ok(Box::new(CandlePrepared { backend: self, a: (a, sa, pa), w: (w, sw, pw), out: None, bytes }))
    }
}
