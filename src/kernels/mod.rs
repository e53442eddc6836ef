//! Backends and the one trait they share.
//!
//! A [`Problem`] is `C[m×n] = A[m×k] · Wᵀ` with activations `A` (`m × k`) and weights `W`
//! (`n × k`, out × in, as a Linear layer and DeepGEMM's NT layout store them), so K runs along the
//! rows of both operands and every block-scaling scheme runs along K. GEMV is the `m = 1` case,
//! `y = W · x`, the memory-bound decode step of LLM inference. Accumulation is always f32.
//!
//! A backend *prepares* a problem once (packing, device upload) and then *runs* it many times,
//! so timing measures the kernel, not the set-up.

pub mod candle;
pub mod cpu;
pub mod registry;
pub mod wgpu;

use crate::formats::{Format, QuantizedMatrix, Scaling};
use crate::Result;
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Gemm,
    Gemv,
}

/// Activation rows up to which a product streams its weights like a GEMV — a decode batch, the
/// query heads of a GQA group against their KV cache, the few tokens a routed expert gets in a
/// prefill: W is read once per call and its per-element cost (read, decode) dominates, so the CPU
/// runs it with its GEMV kernel and the runner rotates its operands past the cache like a GEMV's.
/// 16: where the GEMV kernel, decoding W once per activation row, still beats packing W for the
/// GEMM microkernel in every format (docs/cpu.md).
pub const SKINNY_M: usize = 16;

impl Op {
    /// Whether a product of `m` activation rows streams its weights once per call (a GEMV, or a
    /// GEMM of at most [`SKINNY_M`] rows).
    pub fn streams_weights(self, m: usize) -> bool {
        self == Op::Gemv || m <= SKINNY_M
    }

    pub fn name(self) -> &'static str {
        match self {
            Op::Gemm => "gemm",
            Op::Gemv => "gemv",
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One matrix product to run: `C = A · Wᵀ`.
#[derive(Debug, Clone)]
pub struct Problem {
    pub op: Op,
    /// Activations, `m × k` (`1 × k` for GEMV).
    pub a: QuantizedMatrix,
    /// Weights, `n × k`.
    pub w: QuantizedMatrix,
}

impl Problem {
    pub fn new(op: Op, a: QuantizedMatrix, w: QuantizedMatrix) -> Result<Self> {
        if a.cols != w.cols {
            return Err(crate::Error::Shape(format!(
                "A is {}×{} but W is {}×{}: K differs",
                a.rows, a.cols, w.rows, w.cols
            )));
        }
        if op == Op::Gemv && a.rows != 1 {
            return Err(crate::Error::Shape(format!("GEMV needs m = 1, got m = {}", a.rows)));
        }
        Ok(Problem { op, a, w })
    }
    pub fn m(&self) -> usize {
        self.a.rows
    }
    pub fn n(&self) -> usize {
        self.w.rows
    }
    pub fn k(&self) -> usize {
        self.a.cols
    }
    pub fn flops(&self) -> f64 {
        2.0 * self.m() as f64 * self.n() as f64 * self.k() as f64
    }
    /// The storage format of the weights (the format a record is labelled with).
    pub fn format(&self) -> Format {
        self.w.format()
    }
    pub fn scaling(&self) -> Scaling {
        self.w.scaling
    }

    /// f64 reference on the same quantized inputs: `C[i][j] = Σ_k A[i][k]·W[j][k]`.
    pub fn reference(&self) -> Vec<f64> {
        let (m, n, k) = (self.m(), self.n(), self.k());
        let a = self.a.dequantize_f64();
        let w = self.w.dequantize_f64();
        let mut c = vec![0f64; m * n];
        for i in 0..m {
            let ar = &a[i * k..(i + 1) * k];
            for j in 0..n {
                let wr = &w[j * k..(j + 1) * k];
                c[i * n + j] = ar.iter().zip(wr).map(|(x, y)| x * y).sum();
            }
        }
        c
    }
}

/// How a backend runs an (op, format) pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "support", content = "note")]
pub enum Support {
    /// The backend's own kernel for this format.
    Native,
    /// Runs, but through a conversion or emulation; the string says how (it labels records).
    Emulated(String),
    /// Does not run; the string says why.
    Unsupported(String),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Capability {
    pub op: Op,
    pub format: Format,
    #[serde(flatten)]
    pub support: Support,
}

/// What a backend runs on. Recorded in every result.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeviceInfo {
    /// e.g. the CPU model or the GPU adapter name.
    pub name: String,
    /// "cpu", "discrete-gpu", "integrated-gpu", "virtual-gpu", "software" ...
    pub kind: String,
    /// Graphics API for wgpu adapters (Vulkan, Metal, Dx12, Gl), empty otherwise.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub driver: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<String>,
    /// wgpu: the adapter's cooperative-matrix (tensor-core) configurations as wgpu lists them,
    /// e.g. "16x16x16 f16*f16->f32 subgroup".
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub coop_matrix: Vec<String>,
    /// wgpu: whether GEMMs run on cooperative matrices ("on: ...") or why not ("off: ...").
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub coop_matrix_path: String,
}

/// Bytes of the buffers a prepared kernel actually allocated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BufferBytes {
    pub weights: u64,
    pub scales: u64,
    pub activations: u64,
    pub outputs: u64,
    /// Packing or staging space.
    pub workspace: u64,
}

impl BufferBytes {
    pub fn total(&self) -> u64 {
        self.weights + self.scales + self.activations + self.outputs + self.workspace
    }
}

/// A problem made ready on a backend: inputs packed or uploaded once, run many times.
pub trait Prepared {
    /// Run the kernel once, to completion. Returns the device-measured time in seconds where the
    /// backend has one (GPU timestamp queries), `None` when the caller's wall clock is the timer.
    fn run(&mut self) -> Result<Option<f64>>;
    /// The `m × n` output of the last run, row-major.
    fn output(&mut self) -> Result<Vec<f32>>;
    /// Buffers this prepared problem holds.
    fn buffer_bytes(&self) -> BufferBytes;
    /// "wall-clock" or "timestamp-query".
    fn timing_method(&self) -> &'static str {
        "wall-clock"
    }
    /// The units that run this problem's arithmetic, recorded as the record's `compute`
    /// (e.g. "f32-fma avx2", "bf16-dot avx512_bf16", "shader f32 fma"). Empty when unknown.
    fn compute(&self) -> String {
        String::new()
    }
}

/// A place that runs matrix kernels: the native CPU kernels, candle, or a GPU through wgpu.
pub trait Backend: Send + Sync {
    /// Stable name: "cpu", "candle", "wgpu".
    fn name(&self) -> &'static str;
    fn device(&self) -> DeviceInfo;
    /// Threads the backend uses (1 for a GPU submission thread).
    fn threads(&self) -> usize;
    /// How each op × weight format runs.
    fn capabilities(&self) -> Vec<Capability>;
    /// How this particular problem (formats of A and W, scaling) would run.
    fn support(&self, problem: &Problem) -> Support;
    fn prepare<'a>(&'a self, problem: &'a Problem) -> Result<Box<dyn Prepared + 'a>>;

    /// Unit roundoff of the output this backend returns for `problem` (0 for f32 output; a
    /// backend that returns bf16 results says 2^-8). Validation widens its bound by it.
    fn output_roundoff(&self, _problem: &Problem) -> f64 {
        0.0
    }

    /// How many partial sums of each output, besides the final result, the backend stores in its
    /// output format (a kernel that keeps a 16-bit output between K blocks rounds it once per
    /// block). Validation expects that much more output rounding. 0: rounded once, at the end.
    fn output_partial_roundings(&self, _problem: &Problem) -> usize {
        0
    }

    /// Prepare, run once and return the output (for tests and validation).
    fn compute(&self, problem: &Problem) -> Result<Vec<f32>> {
        let mut p = self.prepare(problem)?;
        p.run()?;
        p.output()
    }
}
