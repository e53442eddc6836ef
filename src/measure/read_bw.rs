//! The read ceiling: how many bytes per second this machine's cores can read from memory, the
//! bound every memory-bound GEMV record is checked against.
//!
//! Why several variants: no single loop reaches the hardware's limit on every CPU. One plain
//! stream per thread leaves DRAM pages and hardware prefetchers idle that several streams keep
//! busy; software prefetch helps some cores and hurts others; the vector width matters on
//! some. So the ceiling is the best of independent microbenchmarks ([`variants`]): 1–8 streams
//! per thread, unrolled SIMD loads (AVX-512 or AVX2 on x86, NEON on aarch64) and their portable
//! twin, with and without software prefetch. None of them shares code with the GEMV kernels it
//! bounds, so a kernel cannot set its own ceiling.
//!
//! How it is timed: the buffer is at least 4× the last-level cache ([`llc_bytes`]), so no pass
//! finds it in cache; the worker threads are spawned and pinned (one per allowed CPU, where the
//! OS allows) before any timing; one trial is many passes over the whole buffer, timed by the
//! workers themselves from the first one's start to the last one's end (`span_seconds`);
//! each variant keeps its best trial (interference only ever slows a trial down).

use super::read_simd::{sum_streams, Isa};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::Instant;

/// One read microbenchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadVariant {
    pub isa: Isa,
    /// Independent streams each thread reads (its share of the buffer cut into this many parts).
    pub streams: usize,
    /// Software prefetch distance in bytes ahead of each stream (0: none).
    pub prefetch_bytes: usize,
}

impl ReadVariant {
    /// E.g. `avx2-4s-pf1024`, `portable-1s`.
    pub fn name(&self) -> String {
        let pf = if self.prefetch_bytes > 0 { format!("-pf{}", self.prefetch_bytes) } else { String::new() };
        format!("{}-{}s{pf}", self.isa.name(), self.streams)
    }

    /// The variant a [`ReadVariant::name`] describes (for [`ReadProbe`] on a loaded calibration).
    pub fn parse(name: &str) -> Option<ReadVariant> {
        let mut it = name.split('-');
        let isa = match it.next()? {
            "portable" => Isa::Portable,
            "avx2" => Isa::Avx2,
            "avx512" => Isa::Avx512,
            "neon" => Isa::Neon,
            _ => return None,
        };
        let streams = it.next()?.strip_suffix('s')?.parse().ok().filter(|s| *s > 0)?;
        let prefetch_bytes = match it.next() {
            Some(pf) => pf.strip_prefix("pf")?.parse().ok()?,
            None => 0,
        };
        if it.next().is_some() {
            return None;
        }
        Some(ReadVariant { isa, streams, prefetch_bytes })
    }
}

/// Every variant this CPU can run: the portable loop (1 and 4 streams), and per SIMD ISA
/// 1, 2, 4 and 8 streams, plus 2 and 4 streams with software prefetch (not on NEON).
pub fn variants() -> Vec<ReadVariant> {
    let v = |isa, streams, prefetch_bytes| ReadVariant { isa, streams, prefetch_bytes };
    let mut out = vec![v(Isa::Portable, 1, 0), v(Isa::Portable, 4, 0)];
    for isa in Isa::simd() {
        out.extend([1, 2, 4, 8].map(|s| v(isa, s, 0)));
        if isa != Isa::Neon {
            out.extend([v(isa, 2, 1024), v(isa, 4, 2048)]);
        }
    }
    out
}

/// Size of the last-level cache of CPU 0 in bytes, from
/// `/sys/devices/system/cpu/cpu0/cache/index*/{level,type,size}`; `None` where unknown.
pub fn llc_bytes() -> Option<u64> {
    let dir = std::fs::read_dir("/sys/devices/system/cpu/cpu0/cache").ok()?;
    let mut entries = Vec::new();
    for e in dir.flatten() {
        if !e.file_name().to_string_lossy().starts_with("index") {
            continue;
        }
        let read = |f: &str| std::fs::read_to_string(e.path().join(f)).ok();
        if let (Some(l), Some(t), Some(s)) = (read("level"), read("type"), read("size")) {
            entries.push((l, t, s));
        }
    }
    llc_of(entries.iter().map(|(l, t, s)| (l.as_str(), t.as_str(), s.as_str())))
}

/// The largest data or unified cache of the highest level among `(level, type, size)` texts.
pub fn llc_of<'a>(entries: impl IntoIterator<Item = (&'a str, &'a str, &'a str)>) -> Option<u64> {
    entries
        .into_iter()
        .filter(|(_, t, _)| matches!(t.trim(), "Unified" | "Data"))
        .filter_map(|(l, _, s)| Some((l.trim().parse::<u32>().ok()?, parse_cache_size(s)?)))
        .max()
        .map(|(_, size)| size)
}

/// `32768K`, `32M`, `512` (bytes) → bytes.
pub fn parse_cache_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mult) = match s.chars().last()? {
        'K' | 'k' => (&s[..s.len() - 1], 1u64 << 10),
        'M' | 'm' => (&s[..s.len() - 1], 1 << 20),
        'G' | 'g' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.trim().parse::<u64>().ok()?.checked_mul(mult).filter(|b| *b > 0)
}

/// Buffer for a read ceiling: 4× the LLC, at least `min_bytes` (256 MiB where the LLC is
/// unknown).
pub fn buffer_bytes(llc: Option<u64>, min_bytes: u64) -> u64 {
    llc.map_or(256 << 20, |l| 4 * l).max(min_bytes)
}

/// Best GB/s of one variant.
#[derive(Debug, Clone, PartialEq)]
pub struct VariantResult {
    pub variant: ReadVariant,
    pub gbs: f64,
}

/// What a set of trials found.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadResult {
    /// Per variant, in [`variants`] order.
    pub variants: Vec<VariantResult>,
    /// Whether every worker thread was pinned to its own CPU.
    pub pinned: bool,
    /// Checksum of everything read (keeps the loads alive; equal across identical passes).
    pub checksum: f64,
}

impl ReadResult {
    /// The winning variant and its GB/s.
    pub fn best(&self) -> Option<&VariantResult> {
        self.variants.iter().max_by(|a, b| a.gbs.total_cmp(&b.gbs))
    }
}

/// The buffer size the read pass counts were set for ([`scaled_passes`]).
pub const PASS_SCALE_BYTES: u64 = 128 << 20;

/// Passes over a buffer of `bytes` that read what `passes` passes over [`PASS_SCALE_BYTES`]
/// read (at least one, at most `passes`): a trial takes about as long whatever the cache the
/// buffer is sized to. The pass counts were set on a 128 MiB buffer (4× a 32 MiB L3); a 480 MiB
/// L3 makes the buffer 1920 MiB, where 8 passes × 5 trials × 14 variants read 1 TiB (38 s of a
/// 50 s calibration), and each re-measurement between products read 15 GiB.
pub fn scaled_passes(bytes: u64, passes: usize) -> usize {
    ((passes as u64 * PASS_SCALE_BYTES) / bytes.max(1)).clamp(1, passes.max(1) as u64) as usize
}

/// A buffer to read and the threads to read it with: built once, measured as often as needed
/// (the runner re-measures between blocks of records without paying for the allocation again).
pub struct ReadProbe {
    buf: Vec<f64>,
    threads: usize,
}

impl ReadProbe {
    /// A buffer of `bytes` (rounded down to whole blocks per thread and stream), filled with
    /// small integers so every page is resident before any timing.
    pub fn new(bytes: u64, threads: usize) -> ReadProbe {
        let n = ((bytes / 8) as usize).max(1024);
        let buf = (0..n).map(|i| (i % 7) as f64).collect();
        ReadProbe { buf, threads: threads.max(1) }
    }

    pub fn bytes(&self) -> u64 {
        (self.buf.len() * 8) as u64
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Passes over this buffer that read what `passes` passes over [`PASS_SCALE_BYTES`] read
    /// ([`scaled_passes`]).
    pub fn scaled_passes(&self, passes: usize) -> usize {
        scaled_passes(self.bytes(), passes)
    }

    /// Best GB/s of each variant over `trials` trials of `passes` passes each, on persistent
    /// pinned worker threads spawned before the first timer starts.
    pub fn measure(&self, variants: &[ReadVariant], trials: usize, passes: usize) -> ReadResult {
        let t = self.threads;
        let chunk = self.buf.len().div_ceil(t);
        let chunks: Vec<&[f64]> = self.buf.chunks(chunk).collect();
        let cpus = crate::affinity::allowed_cores();
        let start = Barrier::new(chunks.len() + 1);
        let done = Barrier::new(chunks.len() + 1);
        let job: Mutex<Option<ReadVariant>> = Mutex::new(None);
        let stop = AtomicBool::new(false);
        let sums = Mutex::new(0f64);
        let spans: Mutex<Vec<(Instant, Instant)>> = Mutex::new(Vec::with_capacity(chunks.len()));
        let pinned_all = AtomicBool::new(cpus.len() >= chunks.len());
        let mut results: Vec<VariantResult> =
            variants.iter().map(|&variant| VariantResult { variant, gbs: 0.0 }).collect();
        std::thread::scope(|s| {
            for (i, part) in chunks.iter().enumerate() {
                let (start, done, job, stop, sums, spans, cpus, pinned_all) =
                    (&start, &done, &job, &stop, &sums, &spans, &cpus, &pinned_all);
                s.spawn(move || {
                    if cpus.len() >= 2 && !crate::affinity::pin_to_cpu(cpus[i % cpus.len()]) {
                        pinned_all.store(false, Ordering::Relaxed);
                    }
                    loop {
                        start.wait();
                        if stop.load(Ordering::Acquire) {
                            break;
                        }
                        let v = job.lock().expect("read job").expect("job set before start");
                        let per = part.len() / v.streams;
                        let streams: Vec<&[f64]> =
                            (0..v.streams).map(|k| &part[k * per..(k + 1) * per]).collect();
                        let rest = &part[per * v.streams..];
                        let mut sum = 0.0;
                        let began = Instant::now();
                        for _ in 0..passes.max(1) {
                            sum += sum_streams(v.isa, &streams, v.prefetch_bytes / 8);
                            sum += rest.iter().sum::<f64>();
                        }
                        let ended = Instant::now();
                        *sums.lock().expect("read sums") += std::hint::black_box(sum);
                        spans.lock().expect("read spans").push((began, ended));
                        done.wait();
                    }
                });
            }
            let bytes = (self.buf.len() * 8 * passes.max(1)) as f64;
            for _ in 0..trials.max(1) {
                for r in results.iter_mut() {
                    *job.lock().expect("read job") = Some(r.variant);
                    spans.lock().expect("read spans").clear();
                    start.wait();
                    done.wait();
                    let s = span_seconds(&spans.lock().expect("read spans"));
                    r.gbs = r.gbs.max(bytes / s / 1e9);
                }
            }
            stop.store(true, Ordering::Release);
            start.wait();
        });
        let checksum = sums.into_inner().expect("read sums");
        ReadResult { variants: results, pinned: pinned_all.into_inner() && cpus.len() >= 2, checksum }
    }
}

/// Seconds from the first worker's start to the last worker's end of one trial.
///
/// The workers time themselves: a timer read by the coordinating thread after the start
/// barrier can run late by a whole trial. With every CPU busy with a pinned worker, the
/// coordinator waking from the barrier may get no CPU until a worker finishes, so its
/// `t0` came after most of the reading (on a 2-vCPU guest one trial in ten read 200 to
/// 75 000 GB/s that way, and the "best" trial was inflated).
fn span_seconds(spans: &[(Instant, Instant)]) -> f64 {
    let first = spans.iter().map(|s| s.0).min();
    let last = spans.iter().map(|s| s.1).max();
    match (first, last) {
        (Some(a), Some(b)) => b.saturating_duration_since(a).as_secs_f64().max(1e-9),
        _ => 1e-9,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_scale_down_with_the_buffer() {
        // Set for 128 MiB; a 4x-LLC buffer of 1920 MiB reads once per trial, a small one as set.
        let mib = |m: u64| m << 20;
        assert_eq!(scaled_passes(mib(128), 8), 8);
        assert_eq!(scaled_passes(mib(64), 8), 8);
        assert_eq!(scaled_passes(mib(256), 8), 4);
        assert_eq!(scaled_passes(mib(512), 4), 1);
        assert_eq!(scaled_passes(mib(1920), 8), 1);
        assert_eq!(scaled_passes(mib(1920), 0), 1);
        assert_eq!(ReadProbe::new(1 << 20, 1).scaled_passes(4), 4);
    }

    #[test]
    fn reads_cache_sizes() {
        assert_eq!(parse_cache_size("32768K\n"), Some(32 << 20));
        assert_eq!(parse_cache_size("32M"), Some(32 << 20));
        assert_eq!(parse_cache_size("4096"), Some(4096));
        assert_eq!(parse_cache_size("x"), None);
        assert_eq!(parse_cache_size("0K"), None);
        let zen3 = [
            ("1\n", "Data\n", "32K\n"),
            ("1\n", "Instruction\n", "32K\n"),
            ("2\n", "Unified\n", "512K\n"),
            ("3\n", "Unified\n", "32768K\n"),
        ];
        assert_eq!(llc_of(zen3), Some(32 << 20));
        assert_eq!(llc_of([("1", "Instruction", "64K")]), None);
        assert_eq!(buffer_bytes(Some(32 << 20), 0), 128 << 20);
        assert_eq!(buffer_bytes(None, 0), 256 << 20);
        assert_eq!(buffer_bytes(Some(1 << 20), 64 << 20), 64 << 20);
        if let Some(l) = llc_bytes() {
            assert!(l >= 1 << 10, "{l}");
        }
    }

    #[test]
    fn variant_names_round_trip() {
        let all = variants();
        assert!(all.len() >= 2 && all.iter().all(|v| v.isa.available()));
        for v in all {
            assert_eq!(ReadVariant::parse(&v.name()), Some(v), "{}", v.name());
        }
        assert_eq!(ReadVariant::parse("avx2-4s-pf2048").map(|v| v.prefetch_bytes), Some(2048));
        for bad in ["", "avx2", "avx2-0s", "sse-1s", "avx2-4s-x", "avx2-4s-pf1-y"] {
            assert_eq!(ReadVariant::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_trial_spans_the_first_start_to_the_last_end() {
        let t = Instant::now();
        let at = |ms: u64| t + std::time::Duration::from_millis(ms);
        // The second worker starts 2 ms late and ends last; the first ends first.
        let s = span_seconds(&[(at(0), at(10)), (at(2), at(14))]);
        assert!((s - 0.014).abs() < 1e-9, "{s}");
        assert!(span_seconds(&[]) > 0.0);
    }

    #[test]
    fn every_variant_reads_every_byte() {
        // 3 threads over an odd-sized buffer: chunks, streams and tails all uneven. The checksum
        // of each trial is the exact sum of the buffer times the passes.
        let probe = ReadProbe::new(8 * 10_007, 3);
        let exact: f64 = probe.buf.iter().sum();
        for v in variants() {
            let r = probe.measure(&[v], 2, 3);
            assert_eq!(r.checksum, exact * 6.0, "{}", v.name());
            let g = r.variants[0].gbs;
            assert!(g.is_finite() && g > 0.0 && g < 1e5, "{} {g}", v.name());
        }
    }
}
