//! Native CPU backend: BLIS-style GEMM and streaming GEMV for every storage format, f32
//! accumulation, f32 output.
//!
//! Goals: run FP32/BF16/FP16/E4M3/E5M2 products close enough to the machine's peak that a
//! comparison between formats measures the formats, not a weak kernel; and never store a decoded
//! copy of the weights — the weights stay in their format, as in inference.
//!
//! - GEMM ([`gemm`]): pack → microkernel → driver. The formats differ only in the decode step of
//!   packing ([`pack`], generic over [`Element`]); the microkernel sees f32 panels, so GEMM pays
//!   decode O((m + n)·k) per run and compute O(m·n·k). Packing happens in every run (the weights
//!   are held as codes, not as a pre-decoded f32 copy).
//! - GEMV ([`gemv`]): memory-bound; W is streamed once from its codes and decoded in registers
//!   (shift-and-rebias, no tables), four rows at a time; threads split the rows. Skinny GEMMs
//!   (m ≤ [`gemv::SKINNY_M`]: decode batches, GQA groups over a KV cache, a routed expert's
//!   tokens in a prefill) run the same kernel
//!   once per activation row on each group of rows while it sits in L1, reading W once.
//!   The row kernel is written once ([`gemv::rows_simd`]) over a 16-lane vector layer per ISA
//!   ([`gemv::Lanes16`]: zero, splat, load x, decode 16 codes, fma, store, prefetch), as the dot
//!   path is over `DotVec`; `x86.rs` and `neon.rs` supply the layers and the target features.
//! - Two compute paths, chosen per problem and named in each record's `compute`: `f32-fma <isa>`
//!   (above; f32 activations always) and `bf16-dot <unit>` ([`dot`]): when activations and
//!   weights are all BF16/E4M3/E5M2 and the CPU has BF16 dot-product units ([`DotUnit`]:
//!   AVX512_BF16, FEAT_BF16; `CHIPBENCH_NO_BF16_DOT=1` turns the path off), codes are decoded
//!   exactly to BF16, multiplied pairwise on the units with f32 accumulation, and the block
//!   scales applied to f32 partial sums at K-block boundaries (DeepGEMM's promotion). Where the
//!   CPU also has a BF16 tile-matrix unit ([`TileUnit`]: AMX-BF16; `CHIPBENCH_NO_AMX=1` turns it
//!   off), the dot path's GEMMs (more than [`gemv::SKINNY_M`] rows) run their tiles on it
//!   (`bf16-dot amx_bf16`; `amx.rs` holds the `unsafe`, [`dot::tiles`] the twin).
//! - Runtime dispatch ([`Isa`]): AVX-512F, AVX2+FMA+F16C, NEON (aarch64), or portable Rust.
//!   All `unsafe` is in `x86.rs` and `neon.rs`; the portable twins compute the same FMA sequence
//!   and are tested to give the same bits (on aarch64 under qemu, see docs/cpu.md).
//! - Threads: a private rayon pool of `threads` workers. Nothing splits the K loop of an output
//!   element, so results are bit-identical for every thread count.
//!
//! Scales (f32 path). Block scales (per-tensor, DeepSeek 1×128 / 128×128, MX-32, UE8M0) are applied
//! differently by the two ops, each where it is cheapest:
//! - GEMV applies the weight scale once per K block into the f32 accumulator
//!   (`total = fma(partial, scale, total)`), as DeepGEMM does, because the weights are decoded
//!   in registers and multiplying every element by its scale would cost one more op per weight.
//! - GEMM folds each scale into the operand while packing (decode, then × scale). Both operands
//!   are f32 after packing anyway, so the scale costs one multiply per *packed* element —
//!   O((m + n)·k) — whereas applying `sa·sw` per 128-deep K block into the accumulator costs
//!   O(m·n·k / 128) multiplies, a C-tile round trip every 128 steps and a K block tied to the
//!   scale block. Both are exact up to one f32 rounding of the scaled operand (relative 2^-24,
//!   far inside the validation bound); folding is never slower, so GEMM folds.

#[cfg(target_arch = "x86_64")]
mod amx;
pub(crate) mod dot;
mod gemm;
mod gemv;
mod isa;
#[cfg(target_arch = "aarch64")]
mod neon;
#[cfg(target_arch = "aarch64")]
mod neon_bf16;
mod pack;
#[cfg(target_arch = "x86_64")]
mod x86;
#[cfg(target_arch = "x86_64")]
mod x86_bf16;

pub use dot::{DotUnit, TileUnit};
pub use isa::Isa;

use super::{Backend, BufferBytes, Capability, DeviceInfo, Op, Prepared, Problem, Support};
use crate::formats::Format;
use crate::{Error, Result};

/// The rayon pool the kernels run on (none when it could not be built: then they run serially).
pub(crate) struct Pool {
    pool: Option<rayon::ThreadPool>,
    threads: usize,
}

impl Pool {
    fn new(threads: usize) -> Pool {
        // A private pool even for one thread, so a run never spills onto rayon's global pool.
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("chipbench-cpu-{i}"))
            .start_handler(|i| {
                crate::affinity::pin_current_thread(i);
            })
            .build()
            .ok();
        Pool { pool, threads }
    }

    pub(crate) fn threads(&self) -> usize {
        self.threads
    }

    pub(crate) fn install<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        match &self.pool {
            Some(p) => p.install(f),
            None => f(),
        }
    }
}

/// The native CPU backend. `threads = 0` means all cores.
pub struct CpuBackend {
    pool: Pool,
    isa: Isa,
    /// The BF16 dot-product unit for low-precision activations; `None`: the f32 FMA path.
    dot: Option<DotUnit>,
    /// The BF16 tile-matrix unit that runs the dot path's GEMMs (`None`: the vector unit does).
    tiles: Option<TileUnit>,
}

impl CpuBackend {
    pub fn new(threads: usize) -> Self {
        let threads =
            if threads == 0 { std::thread::available_parallelism().map_or(1, |n| n.get()) } else { threads };
        let dot = DotUnit::detect();
        let tiles = dot.and(TileUnit::detect());
        CpuBackend { pool: Pool::new(threads), isa: Isa::detect(), dot, tiles }
    }

    /// Force an instruction-set level (for tests and comparisons). Fails if this CPU lacks it.
    pub fn with_isa(threads: usize, isa: Isa) -> Result<Self> {
        let available = Isa::available();
        if !available.contains(&isa) {
            let allowed: Vec<&str> = available.iter().map(|i| i.name()).collect();
            return Err(Error::invalid("isa", isa.name(), &allowed.join(", ")));
        }
        Ok(CpuBackend { isa, ..Self::new(threads) })
    }

    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// Force the dot-product unit (`None`: every product on the f32 FMA path). `Portable` runs
    /// the dot path's portable twin, so the path is tested on a CPU without the units. Fails if
    /// this CPU lacks the unit.
    pub fn with_dot(mut self, unit: Option<DotUnit>) -> Result<Self> {
        self.dot = dot::Unit::check(unit)?;
        Ok(self)
    }

    pub fn dot(&self) -> Option<DotUnit> {
        self.dot
    }

    /// Force the tile-matrix unit of the dot path's GEMMs (`None`: they run on the vector unit).
    /// `Portable` runs its twin. Fails if this CPU lacks the unit.
    pub fn with_tiles(mut self, unit: Option<TileUnit>) -> Result<Self> {
        self.tiles = dot::Unit::check(unit)?;
        Ok(self)
    }

    pub fn tiles(&self) -> Option<TileUnit> {
        self.tiles
    }

    /// The units a product with these operand formats and `m` activation rows runs on here, e.g.
    /// `f32-fma avx2+fma`, `bf16-dot avx512_bf16` or, for a GEMM on AMX, `bf16-dot amx_bf16`
    /// (the `compute` key of a record).
    pub fn compute_label(&self, act: Format, weights: Format, m: usize) -> String {
        match (self.dot, self.tiles) {
            (Some(_), Some(t)) if dot::eligible(act, weights) && m > gemv::SKINNY_M => {
                format!("bf16-dot {t}")
            }
            (Some(u), _) if dot::eligible(act, weights) => format!("bf16-dot {u}"),
            _ => format!("f32-fma {}", self.isa),
        }
    }
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

impl Backend for CpuBackend {
    fn name(&self) -> &'static str {
        "cpu"
    }
    fn device(&self) -> DeviceInfo {
        DeviceInfo {
            name: cpu_model(),
            kind: "cpu".into(),
            features: vec![
                format!("isa={}", self.isa),
                format!("bf16-dot={}", self.dot.map_or("none", DotUnit::name)),
                format!(
                    "bf16-tiles={}",
                    self.tiles.filter(|_| self.dot.is_some()).map_or("none", TileUnit::name)
                ),
            ],
            ..Default::default()
        }
    }
    fn threads(&self) -> usize {
        self.pool.threads()
    }
    fn capabilities(&self) -> Vec<Capability> {
        [Op::Gemm, Op::Gemv]
            .into_iter()
            .flat_map(|op| {
                Format::ALL.into_iter().map(move |format| Capability { op, format, support: native(format) })
            })
            .collect()
    }
    fn support(&self, p: &Problem) -> Support {
        native(p.format())
    }
    fn prepare<'a>(&'a self, problem: &'a Problem) -> Result<Box<dyn Prepared + 'a>> {
        let (m, n, k) = (problem.m(), problem.n(), problem.k());
        let dot = self.dot.filter(|_| dot::eligible(problem.a.format(), problem.w.format()));
        let kind = if let Some(unit) = dot {
            if (1..=gemv::SKINNY_M).contains(&m) {
                Kind::DotGemv(dot::DotGemv::new(unit, &problem.a, &problem.w))
            } else {
                Kind::DotGemm(dot::DotGemm::new(
                    unit,
                    self.tiles,
                    &problem.a,
                    &problem.w,
                    self.pool.threads(),
                ))
            }
        } else if (1..=gemv::SKINNY_M).contains(&m) {
            Kind::Gemv(gemv::GemvWork::new(&problem.a, &problem.w))
        } else {
            let plan = gemm::GemmPlan::new(self.isa, m, n, self.pool.threads());
            let work = plan.work(k, self.pool.threads());
            Kind::Gemm { plan, work }
        };
        let compute = match &kind {
            Kind::DotGemm(d) => format!("bf16-dot {}", d.unit_name()),
            _ => self.compute_label(problem.a.format(), problem.w.format(), m),
        };
        Ok(Box::new(CpuPrepared { backend: self, problem, out: vec![0f32; m * n], kind, compute }))
    }
}

fn native(format: Format) -> Support {
    let _ = format; // every format has its own decode step in the same kernels
    Support::Native
}

enum Kind {
    Gemm { plan: gemm::GemmPlan, work: gemm::GemmWork },
    Gemv(gemv::GemvWork),
    DotGemm(dot::DotGemm),
    DotGemv(dot::DotGemv),
}

struct CpuPrepared<'a> {
    backend: &'a CpuBackend,
    problem: &'a Problem,
    out: Vec<f32>,
    kind: Kind,
    compute: String,
}

impl Prepared for CpuPrepared<'_> {
    fn run(&mut self) -> Result<Option<f64>> {
        let (p, b) = (self.problem, self.backend);
        match &mut self.kind {
            Kind::Gemm { plan, work } => gemm::run(&p.a, &p.w, plan, work, &mut self.out, &b.pool),
            Kind::Gemv(work) => gemv::run(&p.a, &p.w, b.isa, work, &mut self.out, &b.pool),
            Kind::DotGemm(d) => d.run(&p.a, &p.w, &mut self.out, &b.pool),
            Kind::DotGemv(d) => d.run(&p.a, &p.w, &mut self.out, &b.pool),
        }
        Ok(None)
    }
    fn output(&mut self) -> Result<Vec<f32>> {
        Ok(self.out.clone())
    }
    fn compute(&self) -> String {
        self.compute.clone()
    }
    fn buffer_bytes(&self) -> BufferBytes {
        let (a, w) = (self.problem.a.logical_bytes(), self.problem.w.logical_bytes());
        let workspace = match &self.kind {
            Kind::Gemm { plan, work } => work.bytes(plan),
            Kind::Gemv(work) => work.bytes(),
            Kind::DotGemm(d) => d.workspace_bytes(),
            Kind::DotGemv(d) => d.workspace_bytes(),
        };
        BufferBytes {
            weights: w.codes,
            // As held: f32, or one byte per E8M0 scale.
            scales: self.problem.a.scales.held_bytes() + self.problem.w.scales.held_bytes(),
            activations: a.codes,
            outputs: (self.out.len() * 4) as u64,
            workspace,
        }
    }
}

/// The register-only BF16 dot-product loop of this CPU's unit (12 chains × `iters` steps):
/// (flops, checksum), or `None` without the units. The calibration times it.
/// Whether a product with activations `act` and weights `weights` runs on the BF16 dot-product
/// units where the CPU has them (both operands BF16 or FP8).
pub fn dot_eligible(act: Format, weights: Format) -> bool {
    dot::eligible(act, weights)
}

/// The loop of this CPU's BF16 tile-matrix unit, fed from L1 as a GEMM feeds it (four C tiles,
/// four tile loads and four tile products per step, `iters` steps): (flops, checksum), or `None`
/// without the unit. The calibration times it.
pub fn tile_loop(iters: u64) -> Option<(f64, f32)> {
    #[cfg(target_arch = "x86_64")]
    return amx::tile_loop(iters);
    #[allow(unreachable_code)]
    {
        let _ = iters;
        None
    }
}

/// Whether a record's `compute` (or a calibrated roof's unit) is a tile-matrix unit's:
/// `bf16-dot amx_bf16`, `bf16-dot amx-portable`.
pub fn is_tile_compute(label: &str) -> bool {
    label.starts_with("bf16-dot amx")
}

pub fn dot_loop(iters: u64) -> Option<(f64, f32)> {
    #[cfg(target_arch = "x86_64")]
    return x86_bf16::dot_loop(iters);
    #[cfg(target_arch = "aarch64")]
    return neon_bf16::dot_loop(iters);
    #[allow(unreachable_code)]
    {
        let _ = iters;
        None
    }
}

#[cfg(test)]
mod tests;
