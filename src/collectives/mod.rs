//! Collective communication benchmarks: all-reduce, all-gather, reduce-scatter and all-to-all over
//! MPI, with f32, bf16, f16 and FP8 (E4M3/E5M2) payloads.
//!
//! Why: matrix kernels alone cannot show what slower chip-to-chip links cost a training run, nor
//! what DeepSeek-V3 buys by sending MoE dispatch traffic in FP8. So chipbench measures
//! collectives the way the field does — nccl-tests' algorithm bandwidth and bus bandwidth — on
//! MPI, so the same binary runs as 2 processes on a laptop and as many ranks on a cluster.
//!
//! Conventions (documented in docs/collectives.md):
//! - A size names a tensor by its f32 bytes: `64MiB` is 16 Mi elements. Every payload of a size
//!   carries the same elements, so FP8 and BF16 compare like for like. The elements are rounded
//!   down to a multiple of the rank count so every rank owns an equal chunk.
//! - FP8 payloads travel the DeepSeek way: E4M3/E5M2 codes plus one f32 scale per 1×128 tile
//!   (4 scale bytes per 128 elements), each chunk quantized on its own ([`wire`]).
//! - Reductions of bf16/f16/FP8 are decode-reduce-encode: an all-to-all of encoded chunks, f32
//!   accumulation in rank order on the chunk's owner, re-encoding (and, for all-reduce, an
//!   all-gather of the encoded result). f32 reductions use MPI's own `MPI_SUM`.
//! - Time: median over iterations after warm-up of the slowest rank's time per iteration.
//!   `algbw = bytes / time`, `busbw = algbw · factor` with nccl-tests' factors ([`Op::bus_factor`]).
//!
//! The MPI driver ([`bench`]) needs the cargo feature `mpi`; everything else (sizes, factors,
//! payload encoding, expected results, the table) builds and is tested without it.

#[cfg(feature = "mpi")]
pub mod bench;
pub mod check;
pub mod table;
pub mod wire;

use crate::formats::Format;
use crate::{Error, Result};
use std::fmt;
use std::str::FromStr;

/// A collective operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    AllReduce,
    AllGather,
    ReduceScatter,
    AllToAll,
}

impl Op {
    pub const ALL: [Op; 4] = [Op::AllReduce, Op::AllGather, Op::ReduceScatter, Op::AllToAll];
    pub const ALLOWED: &'static str = "all-reduce, all-gather, reduce-scatter, all-to-all, all";

    /// Stable name used on the command line and as the record's `op`.
    pub fn name(self) -> &'static str {
        match self {
            Op::AllReduce => "all-reduce",
            Op::AllGather => "all-gather",
            Op::ReduceScatter => "reduce-scatter",
            Op::AllToAll => "all-to-all",
        }
    }

    /// nccl-tests' bus-bandwidth factor for `ranks` ranks: what each link must carry relative to
    /// the algorithm bandwidth, so busbw is comparable across rank counts and with the link peak.
    /// all-reduce 2(n−1)/n; all-gather, reduce-scatter and all-to-all (n−1)/n.
    pub fn bus_factor(self, ranks: usize) -> f64 {
        if ranks == 0 {
            return 0.0;
        }
        let n = ranks as f64;
        match self {
            Op::AllReduce => 2.0 * (n - 1.0) / n,
            Op::AllGather | Op::ReduceScatter | Op::AllToAll => (n - 1.0) / n,
        }
    }

    /// Parse `--op`: one name or `all`.
    pub fn parse_list(s: &str) -> Result<Vec<Op>> {
        if s.eq_ignore_ascii_case("all") {
            return Ok(Op::ALL.to_vec());
        }
        s.split(',').map(|p| p.trim().parse()).collect()
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Op {
    type Err = Error;
    fn from_str(s: &str) -> Result<Op> {
        let t = s.to_ascii_lowercase().replace('_', "-");
        match t.as_str() {
            "all-reduce" | "allreduce" => Ok(Op::AllReduce),
            "all-gather" | "allgather" => Ok(Op::AllGather),
            "reduce-scatter" | "reducescatter" => Ok(Op::ReduceScatter),
            "all-to-all" | "alltoall" => Ok(Op::AllToAll),
            _ => Err(Error::invalid("--op", s, Op::ALLOWED)),
        }
    }
}

/// Parse `--payload`: a format name, a comma list, or `all` (f32, bf16, f16, e4m3, e5m2).
pub fn parse_payloads(s: &str) -> Result<Vec<Format>> {
    if s.eq_ignore_ascii_case("all") {
        return Ok(Format::ALL.to_vec());
    }
    let mut out: Vec<Format> = Vec::new();
    for p in s.split(',') {
        let f: Format = p
            .trim()
            .parse()
            .map_err(|_| Error::invalid("--payload", p, "f32, bf16, f16, e4m3, e5m2, all"))?;
        if !out.contains(&f) {
            out.push(f);
        }
    }
    Ok(out)
}

const SIZES_ALLOWED: &str =
    "byte counts like 4096, 1KiB, 64MiB, 1GiB, or a range 1KiB..256MiB (powers of 2), comma-separated";

/// Parse one size: a byte count with an optional binary suffix (`K`/`KiB`, `M`/`MiB`, `G`/`GiB`).
pub fn parse_size(s: &str) -> Result<u64> {
    let bad = || Error::invalid("--sizes", s, SIZES_ALLOWED);
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let value: u64 = digits.parse().map_err(|_| bad())?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kib" | "kb" => 10,
        "m" | "mib" | "mb" => 20,
        "g" | "gib" | "gb" => 30,
        _ => return Err(bad()),
    };
    value.checked_mul(1u64 << shift).filter(|&v| v > 0).ok_or_else(bad)
}

/// Parse `--sizes`: comma-separated sizes and ranges `a..b` (a, 2a, 4a, ... up to b inclusive).
/// The result is sorted and free of duplicates.
pub fn parse_sizes(s: &str) -> Result<Vec<u64>> {
    let mut out = Vec::new();
    for part in s.split(',') {
        match part.split_once("..") {
            Some((a, b)) => {
                let (a, b) = (parse_size(a)?, parse_size(b)?);
                if a > b {
                    return Err(Error::invalid("--sizes", part, "a range a..b with a ≤ b"));
                }
                let mut v = a;
                while v <= b {
                    out.push(v);
                    v = match v.checked_mul(2) {
                        Some(x) => x,
                        None => break,
                    };
                }
            }
            None => out.push(parse_size(part)?),
        }
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// Human size: `1KiB`, `64MiB`, or plain bytes when not a whole binary unit.
pub fn format_size(bytes: u64) -> String {
    for (shift, unit) in [(30, "GiB"), (20, "MiB"), (10, "KiB")] {
        if bytes >= 1 << shift && bytes & ((1 << shift) - 1) == 0 {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    format!("{bytes}B")
}

/// How a size splits over the ranks: `chunk` elements per rank (per peer for all-to-all), the
/// op moving `ranks · chunk` elements in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// The requested size, bytes of the tensor in f32.
    pub size: u64,
    pub ranks: usize,
    pub chunk: usize,
}

impl Layout {
    /// `size` bytes of f32 (rounded down to whole elements, then to a multiple of `ranks`).
    pub fn new(size: u64, ranks: usize) -> Result<Layout> {
        let elements = (size / 4) as usize;
        let ranks = ranks.max(1);
        if elements < ranks {
            return Err(Error::invalid(
                "--sizes",
                &format_size(size),
                &format!("at least 4·ranks = {} bytes (one f32 element per rank)", 4 * ranks),
            ));
        }
        Ok(Layout { size, ranks, chunk: elements / ranks })
    }

    /// Elements the op moves: all-reduce's vector, all-gather's output, reduce-scatter's input,
    /// all-to-all's send buffer per rank.
    pub fn elements(&self) -> usize {
        self.ranks * self.chunk
    }
}

/// The known input of rank `rank`, element `i`: a pseudo-random value in (−mag, mag) whose
/// magnitude `mag = 2^e`, e ∈ −4..=4, changes from one 128-element tile to the next, so FP8
/// scales matter. Any rank can regenerate any other rank's input to check what it received.
pub fn input_value(rank: usize, i: usize) -> f32 {
    let mut z = 0x9E37_79B9_7F4A_7C15u64 ^ ((rank as u64) << 40) ^ i as u64;
    // splitmix64 finaliser
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    let unit = ((z >> 40) as f32) / (1u64 << 23) as f32 - 1.0; // [-1, 1)
    unit * input_magnitude(rank, i)
}

/// Bound on |[`input_value`]`(rank, i)`|.
pub fn input_magnitude(rank: usize, i: usize) -> f32 {
    let e = ((i / 128 + rank) % 9) as u32; // 2^(e-4), built from its exponent bits
    f32::from_bits((127 - 4 + e) << 23)
}

/// Inputs `start..start + len` of `rank`.
pub fn inputs(rank: usize, start: usize, len: usize) -> Vec<f32> {
    (start..start + len).map(|i| input_value(rank, i)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_values_are_bounded_and_not_degenerate() {
        let v = inputs(1, 0, 1000);
        for (i, x) in v.iter().enumerate() {
            assert!(x.abs() < input_magnitude(1, i), "{i}: {x}");
        }
        let distinct: std::collections::HashSet<u32> = v.iter().map(|x| x.to_bits()).collect();
        assert!(distinct.len() > 990);
        assert_ne!(inputs(0, 0, 8), inputs(1, 0, 8));
    }

    #[test]
    fn layout_rounds_to_ranks() {
        let l = Layout::new(1024, 3).unwrap();
        assert_eq!((l.chunk, l.elements()), (85, 255));
        assert!(Layout::new(8, 3).is_err());
    }
}
