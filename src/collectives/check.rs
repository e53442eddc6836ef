//! What each rank must hold after a collective, and the check of what it got.
//!
//! Inputs are known functions of (rank, index) ([`input_value`]), so every rank can rebuild what
//! any other rank sent. Two checks, chunk by chunk (nothing the size of the whole op is kept):
//! - bytes: moved chunks (all-gather, all-to-all, any payload) must equal the sender's encoding
//!   bit for bit — FP8 codes and scales round-trip exactly. Decode-reduce-encode results must equal
//!   the same reduction redone locally (f32 accumulation in rank order, then encoding). MPI's own
//!   f32 sum may add in any order, so it gets no byte check.
//! - values: the decoded output against the f64 sum of the known values, within a bound made of
//!   the rounding the payload allows: one encoding per input, f32 accumulation, one encoding of
//!   the sum, each relative to the magnitude of its scale tile.

use super::wire::{self, ChunkBytes, TILE};
use super::{input_magnitude, input_value, inputs, Layout, Op};
use crate::formats::Format;
use crate::results::ErrorStats;

/// Where one output chunk comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `chunk` inputs of `rank` starting at `start`, moved unchanged.
    Input { rank: usize, start: usize },
    /// The sum over all ranks of the inputs starting at `start`.
    Reduced { start: usize },
}

/// The chunks `rank` holds after `op`, in output order.
pub fn output_chunks(op: Op, layout: &Layout, rank: usize) -> Vec<Source> {
    let (n, c) = (layout.ranks, layout.chunk);
    match op {
        Op::AllToAll => (0..n).map(|s| Source::Input { rank: s, start: rank * c }).collect(),
        Op::AllGather => (0..n).map(|s| Source::Input { rank: s, start: 0 }).collect(),
        Op::ReduceScatter => vec![Source::Reduced { start: rank * c }],
        Op::AllReduce => (0..n).map(|j| Source::Reduced { start: j * c }).collect(),
    }
}

/// True when `op` on `format` uses MPI's own f32 `MPI_SUM` (order not fixed) rather than
/// decode-reduce-encode.
pub fn native_reduction(op: Op, format: Format) -> bool {
    format == Format::F32 && matches!(op, Op::AllReduce | Op::ReduceScatter)
}

/// The chunks `rank` sends, laid end to end: one chunk per destination for all-to-all and the
/// reductions, its own chunk for all-gather.
pub fn send_chunks(op: Op, format: Format, layout: &Layout, rank: usize) -> Vec<u8> {
    let c = layout.chunk;
    match op {
        Op::AllGather => wire::encode(format, &inputs(rank, 0, c)),
        _ => (0..layout.ranks).flat_map(|d| wire::encode(format, &inputs(rank, d * c, c))).collect(),
    }
}

/// The decode-reduce-encode result for the chunk starting at `start`, redone from every rank's
/// known inputs exactly as the owner computes it.
pub fn reduced_chunk(format: Format, layout: &Layout, start: usize) -> Vec<u8> {
    let c = layout.chunk;
    let received: Vec<u8> =
        (0..layout.ranks).flat_map(|s| wire::encode(format, &inputs(s, start, c))).collect();
    let (mut acc, mut scratch) = (vec![0f32; c], vec![0f32; c]);
    wire::sum_chunks(format, &received, &mut acc, &mut scratch);
    wire::encode(format, &acc)
}

/// Outcome of checking one rank's output.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub valid: bool,
    /// Empty when valid; otherwise the first violation, in words.
    pub reason: String,
    pub error: ErrorStats,
}

/// Running max |error|, max |reference| and DeepGEMM's `diff` sums.
#[derive(Default)]
struct Stats {
    max_abs: f64,
    max_ref: f64,
    xy: f64,
    xxyy: f64,
}

impl Stats {
    fn add(&mut self, got: f64, want: f64) {
        let d = (got - want).abs();
        self.max_abs = if d.is_nan() || self.max_abs.is_nan() { f64::NAN } else { self.max_abs.max(d) };
        self.max_ref = self.max_ref.max(want.abs());
        self.xy += got * want;
        self.xxyy += got * got + want * want;
    }
    fn finish(&self) -> ErrorStats {
        let diff = if self.xxyy == 0.0 { 0.0 } else { 1.0 - 2.0 * self.xy / self.xxyy };
        ErrorStats {
            max_abs: self.max_abs,
            max_rel: self.max_abs / self.max_ref.max(f64::MIN_POSITIVE),
            diff,
        }
    }
}

/// Per element of the chunk of `rank` starting at `start`: the largest input magnitude in its
/// scale tile (its own magnitude when the payload has no scales).
fn tile_bounds(format: Format, rank: usize, start: usize, len: usize) -> Vec<f64> {
    let own: Vec<f64> = (start..start + len).map(|i| input_magnitude(rank, i) as f64).collect();
    if !format.is_fp8() {
        return own;
    }
    own.chunks(TILE)
        .flat_map(|t| std::iter::repeat_n(t.iter().cloned().fold(0.0, f64::max), t.len()))
        .collect()
}

/// Check the output of `op` on `rank` (`output`: the chunks laid end to end) against the known
/// inputs.
pub fn verify(op: Op, format: Format, layout: &Layout, rank: usize, output: &[u8]) -> Verdict {
    let (n, c) = (layout.ranks, layout.chunk);
    let w = ChunkBytes::of(format, c).total();
    let sources = output_chunks(op, layout, rank);
    let mut stats = Stats::default();
    let mut reason = String::new();
    if output.len() != sources.len() * w {
        reason = format!("output has {} bytes, expected {}", output.len(), sources.len() * w);
        return Verdict { valid: false, reason, error: stats.finish() };
    }
    let u = format.unit_roundoff();
    let f32_sum = n as f64 * f32::EPSILON as f64;
    // Absolute floor for unscaled formats: the subnormal spacing (scaled FP8 stays relative).
    let floor = if format.is_fp8() { 0.0 } else { (n + 1) as f64 * format.min_subnormal() as f64 };
    let mut got = vec![0f32; c];
    for (k, source) in sources.iter().enumerate() {
        let bytes = &output[k * w..(k + 1) * w];
        let (want_bytes, exact, bound): (Option<Vec<u8>>, Vec<f64>, Vec<f64>) = match *source {
            Source::Input { rank: s, start } => {
                let values = inputs(s, start, c);
                let bound = tile_bounds(format, s, start, c).iter().map(|m| u * m + floor).collect();
                let exact = values.iter().map(|&v| v as f64).collect();
                (Some(wire::encode(format, &values)), exact, bound)
            }
            Source::Reduced { start } => {
                let mut exact = vec![0f64; c];
                let mut mags = vec![0f64; c];
                for s in 0..n {
                    let tb = tile_bounds(format, s, start, c);
                    for i in 0..c {
                        exact[i] += input_value(s, start + i) as f64;
                        mags[i] += tb[i];
                    }
                }
                let per_mag = if native_reduction(op, format) { f32_sum } else { 2.0 * u + f32_sum };
                let bound = mags.iter().map(|m| per_mag * m + floor).collect();
                let want = (!native_reduction(op, format)).then(|| reduced_chunk(format, layout, start));
                (want, exact, bound)
            }
        };
        if let Some(want) = want_bytes {
            if let Some(b) = (0..w).find(|&b| bytes[b] != want[b]) {
                if reason.is_empty() {
                    reason = format!(
                        "chunk {k} ({source:?}): byte {b} is 0x{:02x}, the sender's encoding has 0x{:02x}",
                        bytes[b], want[b]
                    );
                }
            }
        }
        wire::decode(format, bytes, &mut got);
        for i in 0..c {
            let (g, e) = (got[i] as f64, exact[i]);
            stats.add(g, e);
            let within = (g - e).abs() <= bound[i]; // false for NaN
            if !within && reason.is_empty() {
                reason = format!(
                    "chunk {k} ({source:?}) element {i}: got {g}, the known values sum to {e} (bound {:.3e})",
                    bound[i]
                );
            }
        }
    }
    Verdict { valid: reason.is_empty(), reason, error: stats.finish() }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Simulate an op without MPI: what each rank would receive, built from the send buffers.
    fn simulate(op: Op, format: Format, layout: &Layout, rank: usize) -> Vec<u8> {
        let w = ChunkBytes::of(format, layout.chunk).total();
        let sends: Vec<Vec<u8>> = (0..layout.ranks).map(|r| send_chunks(op, format, layout, r)).collect();
        match op {
            Op::AllGather => sends.concat(),
            Op::AllToAll => sends.iter().flat_map(|s| s[rank * w..(rank + 1) * w].to_vec()).collect(),
            Op::ReduceScatter => reduced_chunk(format, layout, rank * layout.chunk),
            Op::AllReduce => {
                (0..layout.ranks).flat_map(|j| reduced_chunk(format, layout, j * layout.chunk)).collect()
            }
        }
    }

    #[test]
    fn simulated_ops_verify_and_corruption_is_caught() {
        for ranks in [1, 2, 3] {
            let layout = Layout::new(4 * 129 * ranks as u64 + 4, ranks).unwrap();
            for op in Op::ALL {
                for format in Format::ALL {
                    for rank in 0..ranks {
                        let mut out = simulate(op, format, &layout, rank);
                        let v = verify(op, format, &layout, rank, &out);
                        assert!(v.valid, "{op} {format} n={ranks} rank {rank}: {}", v.reason);
                        assert!(v.error.max_rel < 0.5, "{op} {format}: {:?}", v.error);
                        // A flipped bit in the last byte (an FP8 scale, or a code) must be caught.
                        *out.last_mut().unwrap() ^= 0x40;
                        let bad = verify(op, format, &layout, rank, &out);
                        assert!(!bad.valid, "{op} {format} n={ranks}: corruption not caught");
                        out.pop();
                        assert!(!verify(op, format, &layout, rank, &out).valid);
                    }
                }
            }
        }
    }

    #[test]
    fn wrong_sender_is_caught() {
        let layout = Layout::new(4096, 2).unwrap();
        // Rank 1 claims to hold rank 0's all-to-all output.
        let out = simulate(Op::AllToAll, Format::E4M3, &layout, 0);
        assert!(!verify(Op::AllToAll, Format::E4M3, &layout, 1, &out).valid);
    }

    #[test]
    fn decode_reduce_encode_is_close_to_the_exact_sum() {
        let layout = Layout::new(4096, 3).unwrap();
        for format in [Format::BF16, Format::E4M3] {
            let out = simulate(Op::AllReduce, format, &layout, 0);
            let v = verify(Op::AllReduce, format, &layout, 0, &out);
            assert!(v.valid, "{}", v.reason);
            assert!(v.error.max_abs > 0.0, "{format}: low precision should round somewhere");
            assert!(v.error.diff < 1e-2, "{format}: {:?}", v.error);
        }
    }
}
