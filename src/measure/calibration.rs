//! Local peaks the projections scale by: the FMA compute peak (GFLOP/s per thread count), a
//! STREAM-like memory bandwidth (copy, scale, add, triad) and the read ceiling (the best of the
//! read microbenchmarks of [`super::read_bw`] — the GEMV ceiling). Each figure is the best of
//! several trials: interference only ever slows a trial down, so the best one is the closest to
//! what the hardware can do.
//!
//! Bytes follow STREAM's convention (copy/scale move 2 words per element, add/triad 3; write
//! allocation is not counted).

use super::fma;
use super::read_bw::{self, ReadProbe, ReadVariant};
use crate::kernels::cpu::is_tile_compute;
use crate::results::{Calibration, ComputePeak, ReadVariantGbs, Stream, ThreadPeak};
use std::time::{Duration, Instant};

/// How hard to calibrate.
#[derive(Debug, Clone)]
pub struct CalibrationConfig {
    /// Thread counts for the FMA peak.
    pub thread_counts: Vec<usize>,
    /// Threads for the bandwidth kernels.
    pub threads: usize,
    /// Target time of one FMA trial.
    pub fma_trial: Duration,
    /// Elements (f64) per STREAM array; should be several times the last-level cache.
    pub stream_len: usize,
    pub trials: usize,
    /// Bytes of the read-ceiling buffer; `None`: 4× the last-level cache, at least 64 MiB.
    pub read_bytes: Option<u64>,
    /// Passes over the read buffer per timed trial, on a 128 MiB buffer (a larger one takes
    /// proportionally fewer, at least one: [`ReadProbe::scaled_passes`]).
    pub read_passes: usize,
}

impl CalibrationConfig {
    /// The thorough calibration of a normal run (about 2–4 s).
    pub fn full(threads: usize) -> Self {
        CalibrationConfig {
            thread_counts: thread_ladder(threads),
            threads,
            fma_trial: Duration::from_millis(100),
            stream_len: 1 << 24, // 128 MiB per array
            trials: 5,
            read_bytes: None,
            read_passes: 8,
        }
    }

    /// A rough calibration for `--quick` runs and tests (well under a second).
    pub fn quick(threads: usize) -> Self {
        CalibrationConfig {
            thread_counts: thread_ladder(threads),
            threads,
            fma_trial: Duration::from_millis(20),
            stream_len: 1 << 21, // 16 MiB per array
            trials: 2,
            read_bytes: None,
            read_passes: 2,
        }
    }
}

/// 1, 2, 4, ... up to `max`, and `max` itself.
pub fn thread_ladder(max: usize) -> Vec<usize> {
    let max = max.max(1);
    let mut v: Vec<usize> =
        std::iter::successors(Some(1usize), |t| Some(t * 2)).take_while(|&t| t < max).collect();
    v.push(max);
    v
}

pub fn calibrate(cfg: &CalibrationConfig) -> Calibration {
    let fma_peak_gflops: Vec<ThreadPeak> =
        cfg.thread_counts.iter().map(|&t| ThreadPeak { threads: t, gflops: fma_peak(t, cfg) }).collect();
    // Every compute unit's roof, named as the records name the units that ran them.
    let fma_unit = format!("f32-fma {}", crate::kernels::cpu::Isa::detect());
    let mut compute_peaks: Vec<ComputePeak> = fma_peak_gflops
        .iter()
        .map(|p| ComputePeak { unit: fma_unit.clone(), threads: p.threads, gflops: p.gflops })
        .collect();
    if let Some(unit) = crate::kernels::cpu::DotUnit::detect() {
        for &t in &cfg.thread_counts {
            if let Some(gflops) = dot_peak(t, cfg) {
                compute_peaks.push(ComputePeak { unit: format!("bf16-dot {unit}"), threads: t, gflops });
            }
        }
        // The tile-matrix unit the dot path's GEMMs run on, where there is one.
        if let Some(tiles) = crate::kernels::cpu::TileUnit::detect() {
            for &t in &cfg.thread_counts {
                if let Some(gflops) = tile_peak(t, cfg) {
                    compute_peaks.push(ComputePeak { unit: format!("bf16-dot {tiles}"), threads: t, gflops });
                }
            }
        }
    }
    let stream_gbs = stream(cfg);
    let mut cal = Calibration {
        fma_peak_gflops,
        stream_gbs,
        threads: cfg.threads,
        compute_peaks,
        ..Default::default()
    };
    read_ceiling(&mut cal, cfg);
    cal
}

/// The read buffer `cfg` asks for on this machine.
pub fn read_buffer_bytes(cfg: &CalibrationConfig) -> u64 {
    cfg.read_bytes.unwrap_or_else(|| read_bw::buffer_bytes(read_bw::llc_bytes(), 64 << 20))
}

/// Measure every read variant and store the ceiling (the best) in `cal`: `read_gbs`,
/// `read_variant`, `read_variants`, `read_gbs_range`, `read_buffer_bytes`, `llc_bytes`,
/// `read_pinned`.
pub fn read_ceiling(cal: &mut Calibration, cfg: &CalibrationConfig) {
    let probe = ReadProbe::new(read_buffer_bytes(cfg), cfg.threads);
    let r = probe.measure(&read_bw::variants(), cfg.trials, probe.scaled_passes(cfg.read_passes));
    let best = r.best().cloned();
    cal.read_gbs = best.as_ref().map_or(0.0, |b| b.gbs);
    cal.read_variant = best.map(|b| b.variant.name()).unwrap_or_default();
    cal.read_variants =
        r.variants.iter().map(|v| ReadVariantGbs { variant: v.variant.name(), gbs: v.gbs }).collect();
    cal.read_gbs_range = Some([cal.read_gbs, cal.read_gbs]);
    cal.read_buffer_bytes = probe.bytes();
    cal.llc_bytes = read_bw::llc_bytes();
    cal.read_pinned = r.pinned;
}

/// A probe for [`remeasure`] shaped like the one `cfg` calibrated with (allocate it once and
/// keep it between blocks of records).
pub fn read_probe(cfg: &CalibrationConfig) -> ReadProbe {
    ReadProbe::new(read_buffer_bytes(cfg), cfg.threads)
}

/// Re-measure the ceilings between blocks of records: the FMA peaks ([`remeasure_fma`]), the BF16
/// dot-product and tile-unit peaks where the CPU has the units, and the
/// read ceiling with the winning variant only, 2 trials of 4 passes on a 128 MiB buffer (about
/// 0.1 s; a larger buffer takes fewer passes). Widens `cal.read_gbs_range` to include the new
/// figure, raises `cal.read_gbs` if the ceiling was beaten (it is a ceiling: the best ever
/// seen), and counts the re-measurement. Returns the new figure, `None` when `cal` has no
/// winning variant (a calibration from before the key existed).
pub fn remeasure(cal: &mut Calibration, probe: &ReadProbe) -> Option<f64> {
    remeasure_now(cal, probe, &[]).read_gbs
}

/// What one re-measurement found ([`remeasure_now`]): not the best seen, this moment's figures.
#[derive(Debug, Clone, Default)]
pub struct RoofsNow {
    /// Read ceiling (the calibration's winning variant), GB/s; `None` without one.
    pub read_gbs: Option<f64>,
    /// FMA peak per calibrated thread count.
    pub fma: Vec<ThreadPeak>,
    /// BF16 dot-product peak per calibrated thread count (empty where the CPU has no units).
    pub dot: Vec<ThreadPeak>,
    /// BF16 tile-matrix unit (AMX) peak per calibrated thread count (empty without one).
    pub tile: Vec<ThreadPeak>,
}

/// [`remeasure`], returning what this re-measurement itself found (not the best seen): the read
/// figure, the FMA peak and the dot-product peaks per calibrated thread count — those in `at`
/// where it names some (a model step's products all run at one thread count; the peak loops were
/// 17 % of its profile on a host with three units, half of them at a count no product used).
pub fn remeasure_now(cal: &mut Calibration, probe: &ReadProbe, at: &[usize]) -> RoofsNow {
    let fma = remeasure_fma_at(cal, at);
    let dot = remeasure_unit(cal, at, is_dot_compute, dot_peak);
    let tile = remeasure_unit(cal, at, is_tile_compute, tile_peak);
    let variant = ReadVariant::parse(&cal.read_variant).filter(|v| v.isa.available());
    let gbs = variant.and_then(|v| probe.measure(&[v], 2, probe.scaled_passes(4)).best().map(|b| b.gbs));
    if let Some(gbs) = gbs {
        note_remeasure(cal, gbs);
    }
    RoofsNow { read_gbs: gbs, fma, dot, tile }
}

/// A short trial (50 ms, one) at `threads`: what a re-measurement between records affords.
fn remeasure_cfg(threads: usize) -> CalibrationConfig {
    CalibrationConfig { fma_trial: Duration::from_millis(50), trials: 1, ..CalibrationConfig::quick(threads) }
}

/// Re-measure the FMA peak at every calibrated thread count (one 50 ms trial each) and raise
/// the calibrated figures, and the f32-fma compute roofs, where they were beaten: a dip while
/// calibrating (on a VM, the other vCPU descheduled for a moment) must not leave a "peak" that
/// the records then beat. A peak is the best ever seen, like the read ceiling.
/// Returns what it measured at each thread count.
pub fn remeasure_fma(cal: &mut Calibration) -> Vec<ThreadPeak> {
    remeasure_fma_at(cal, &[])
}

/// [`remeasure_fma`] at the thread counts in `at` (every calibrated one when it is empty).
fn remeasure_fma_at(cal: &mut Calibration, at: &[usize]) -> Vec<ThreadPeak> {
    let mut fresh = Vec::new();
    for i in 0..cal.fma_peak_gflops.len() {
        let threads = cal.fma_peak_gflops[i].threads;
        if !named(at, threads) {
            continue;
        }
        let gflops = fma_peak(threads, &remeasure_cfg(threads));
        note_fma_peak(cal, threads, gflops);
        fresh.push(ThreadPeak { threads, gflops });
    }
    fresh
}

/// Whether a re-measurement restricted to the thread counts `at` (none: all) takes `threads`.
fn named(at: &[usize], threads: usize) -> bool {
    at.is_empty() || at.contains(&threads)
}

/// A vector dot-product unit's roof (`bf16-dot ...`, not the tile unit's).
fn is_dot_compute(unit: &str) -> bool {
    unit.starts_with("bf16-dot") && !is_tile_compute(unit)
}

/// Re-measure every entry of `compute_peaks` whose unit `which` accepts with `peak`, at the
/// thread counts in `at` (all when empty), raising the entry where it was beaten; returns what
/// this re-measurement found.
fn remeasure_unit(
    cal: &mut Calibration,
    at: &[usize],
    which: impl Fn(&str) -> bool,
    peak: impl Fn(usize, &CalibrationConfig) -> Option<f64>,
) -> Vec<ThreadPeak> {
    let mut fresh = Vec::new();
    for i in 0..cal.compute_peaks.len() {
        let threads = cal.compute_peaks[i].threads;
        if !which(&cal.compute_peaks[i].unit) || !named(at, threads) {
            continue;
        }
        let Some(gflops) = peak(threads, &remeasure_cfg(threads)) else { continue };
        if gflops.is_finite() && gflops > 0.0 {
            cal.compute_peaks[i].gflops = cal.compute_peaks[i].gflops.max(gflops);
            fresh.push(ThreadPeak { threads, gflops });
        }
    }
    fresh
}

/// Fold one re-measured FMA peak at `threads` into `cal` (see [`remeasure_fma`]).
pub fn note_fma_peak(cal: &mut Calibration, threads: usize, gflops: f64) {
    if !(gflops.is_finite() && gflops > 0.0) {
        return;
    }
    for p in cal.fma_peak_gflops.iter_mut().filter(|p| p.threads == threads) {
        p.gflops = p.gflops.max(gflops);
    }
    for p in cal.compute_peaks.iter_mut().filter(|p| p.threads == threads && p.unit.starts_with("f32-fma")) {
        p.gflops = p.gflops.max(gflops);
    }
}

/// Fold one re-measured read figure into `cal` (see [`remeasure`]).
pub fn note_remeasure(cal: &mut Calibration, gbs: f64) {
    if !(gbs.is_finite() && gbs > 0.0) {
        return;
    }
    let [lo, hi] = cal.read_gbs_range.unwrap_or([gbs, gbs]);
    cal.read_gbs_range = Some([lo.min(gbs), hi.max(gbs)]);
    cal.read_gbs = cal.read_gbs.max(gbs);
    cal.read_remeasures += 1;
}

/// GFLOP/s of `threads` threads each running the FMA loop, best of `cfg.trials`.
pub fn fma_peak(threads: usize, cfg: &CalibrationConfig) -> f64 {
    peak(threads, cfg, |iters| {
        let r = fma::run(iters);
        (r.flops, r.checksum)
    })
}

/// GFLOP/s of `threads` threads each running the tile-matrix unit's loop fed from L1
/// ([`crate::kernels::cpu::tile_loop`]), best of `cfg.trials`; `None` without the unit.
pub fn tile_peak(threads: usize, cfg: &CalibrationConfig) -> Option<f64> {
    crate::kernels::cpu::tile_loop(1)?;
    Some(peak(threads, cfg, |iters| crate::kernels::cpu::tile_loop(iters).unwrap_or((0.0, 0.0))))
}

/// GFLOP/s of `threads` threads each running the register-only BF16 dot-product loop
/// (`vdpbf16ps` / `BFDOT`), best of `cfg.trials`; `None` without the units.
pub fn dot_peak(threads: usize, cfg: &CalibrationConfig) -> Option<f64> {
    crate::kernels::cpu::dot_loop(1)?;
    Some(peak(threads, cfg, |iters| crate::kernels::cpu::dot_loop(iters).unwrap_or((0.0, 0.0))))
}

/// FMA peak in GFLOP/s for about `seconds` of one trial (the kernel bench's ceiling).
pub fn fma_peak_gflops(threads: usize, seconds: f64) -> f64 {
    let cfg = CalibrationConfig {
        fma_trial: Duration::from_secs_f64(seconds),
        trials: 1,
        ..CalibrationConfig::quick(threads)
    };
    fma_peak(threads, &cfg)
}

/// One register-only loop (`run(iters)` → flops, checksum) on `threads` threads, sized so one
/// trial takes about `cfg.fma_trial`; GFLOP/s of the best of `cfg.trials`.
fn peak(threads: usize, cfg: &CalibrationConfig, run: impl Fn(u64) -> (f64, f32) + Sync) -> f64 {
    let probe = 10_000u64;
    let t0 = Instant::now();
    std::hint::black_box(run(probe));
    let per_iter = t0.elapsed().as_secs_f64().max(1e-9) / probe as f64;
    let iters = ((cfg.fma_trial.as_secs_f64() / per_iter) as u64).clamp(probe, 1 << 34);
    let mut best = 0f64;
    for _ in 0..cfg.trials.max(1) {
        let t0 = Instant::now();
        let flops: f64 = std::thread::scope(|s| {
            let run = &run;
            let handles: Vec<_> = (0..threads.max(1)).map(|_| s.spawn(move || run(iters))).collect();
            handles.into_iter().map(|h| std::hint::black_box(h.join().expect("peak thread")).0).sum()
        });
        best = best.max(flops / t0.elapsed().as_secs_f64() / 1e9);
    }
    best
}

/// Run `f` over matching chunks of the arrays on `threads` threads. All three arrays must have
/// the same length (a kernel that reads one input passes it twice): chunks are zipped, so a
/// shorter array would silently skip the work.
fn par3<F>(threads: usize, a: &mut [f64], b: &[f64], c: &[f64], f: F)
where
    F: Fn(&mut [f64], &[f64], &[f64]) + Sync,
{
    assert!(a.len() == b.len() && b.len() == c.len(), "par3: arrays of different lengths");
    let chunk = a.len().div_ceil(threads.max(1)).max(1);
    std::thread::scope(|s| {
        for ((a, b), c) in a.chunks_mut(chunk).zip(b.chunks(chunk)).zip(c.chunks(chunk)) {
            let f = &f;
            s.spawn(move || f(a, b, c));
        }
    });
}

/// STREAM copy/scale/add/triad in GB/s, best of `cfg.trials`.
pub fn stream(cfg: &CalibrationConfig) -> Stream {
    let n = cfg.stream_len.max(1024);
    let t = cfg.threads.max(1);
    let (mut a, mut b, mut c) = (vec![0f64; n], vec![0f64; n], vec![0f64; n]);
    a.fill(1.0);
    b.fill(2.0);
    c.fill(0.5);
    let q = std::hint::black_box(3.0f64);
    let words = (n * 8) as f64;
    let mut best = Stream::default();
    let timed = |f: &mut dyn FnMut()| {
        let t0 = Instant::now();
        f();
        t0.elapsed().as_secs_f64().max(1e-12)
    };
    for _ in 0..cfg.trials.max(1) {
        let s = timed(&mut || par3(t, &mut c, &a, &a, |c, a, _| c.copy_from_slice(a)));
        best.copy = best.copy.max(2.0 * words / s / 1e9);
        let s = timed(&mut || {
            par3(t, &mut b, &c, &c, |b, c, _| b.iter_mut().zip(c).for_each(|(b, c)| *b = q * c))
        });
        best.scale = best.scale.max(2.0 * words / s / 1e9);
        let s = timed(&mut || {
            par3(t, &mut c, &a, &b, |c, a, b| {
                for ((c, a), b) in c.iter_mut().zip(a).zip(b) {
                    *c = a + b;
                }
            })
        });
        best.add = best.add.max(3.0 * words / s / 1e9);
        let s = timed(&mut || {
            par3(t, &mut a, &b, &c, |a, b, c| {
                for ((a, b), c) in a.iter_mut().zip(b).zip(c) {
                    *a = b + q * c;
                }
            })
        });
        best.triad = best.triad.max(3.0 * words / s / 1e9);
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ladder() {
        assert_eq!(thread_ladder(1), vec![1]);
        assert_eq!(thread_ladder(2), vec![1, 2]);
        assert_eq!(thread_ladder(6), vec![1, 2, 4, 6]);
        assert_eq!(thread_ladder(0), vec![1]);
    }

    #[test]
    fn calibration_produces_sane_numbers() {
        let mut cfg = CalibrationConfig::quick(1);
        cfg.stream_len = 1 << 16;
        cfg.read_bytes = Some(1 << 20);
        cfg.fma_trial = Duration::from_millis(5);
        let c = calibrate(&cfg);
        assert_eq!(c.fma_peak_gflops.len(), 1);
        let g = c.fma_peak_gflops[0].gflops;
        // Sanity, not a target: any machine does more than 0.01 and less than 100k GFLOP/s per core.
        assert!(g > 0.01 && g < 1e5, "{g}");
        // Cache-resident arrays: fast, but no CPU moves 5 TB/s per core. A kernel that skipped
        // its work (as copy and scale once did) shows up as an absurd figure here.
        for v in [c.stream_gbs.copy, c.stream_gbs.scale, c.stream_gbs.add, c.stream_gbs.triad, c.read_gbs] {
            assert!(v.is_finite() && v > 0.0 && v < 5000.0, "{c:?}");
        }
    }

    #[test]
    fn calibration_records_the_read_variants() {
        let mut cfg = CalibrationConfig::quick(2);
        cfg.read_bytes = Some(1 << 20);
        let mut cal = Calibration::default();
        read_ceiling(&mut cal, &cfg);
        assert_eq!(cal.read_variants.len(), read_bw::variants().len());
        let best = cal.read_variants.iter().map(|v| v.gbs).fold(0.0, f64::max);
        assert_eq!(cal.read_gbs, best);
        assert!(cal.read_variants.iter().any(|v| v.variant == cal.read_variant && v.gbs == best));
        assert_eq!(cal.read_gbs_range, Some([best, best]));
        assert!(cal.read_buffer_bytes >= 1 << 20 && cal.read_buffer_bytes < 2 << 20);
        // A re-measurement widens the range; the ceiling only rises.
        let probe = read_probe(&cfg);
        let g = remeasure(&mut cal, &probe).unwrap();
        let [lo, hi] = cal.read_gbs_range.unwrap();
        assert!(lo <= g && g <= hi && lo <= best && hi >= best && cal.read_gbs == hi, "{cal:?}");
        assert_eq!(cal.read_remeasures, 1);
    }

    #[test]
    fn remeasurements_widen_the_range() {
        let mut cal =
            Calibration { read_gbs: 40.0, read_gbs_range: Some([40.0, 40.0]), ..Default::default() };
        note_remeasure(&mut cal, 35.0);
        note_remeasure(&mut cal, f64::NAN);
        note_remeasure(&mut cal, 42.0);
        assert_eq!(cal.read_gbs_range, Some([35.0, 42.0]));
        assert_eq!(cal.read_gbs, 42.0);
        assert_eq!(cal.read_remeasures, 2);
        // No winning variant (an old calibration): nothing to re-measure.
        let mut old = Calibration { read_gbs: 30.0, ..Default::default() };
        assert_eq!(remeasure(&mut old, &ReadProbe::new(1 << 16, 1)), None);
    }

    #[test]
    fn a_beaten_fma_peak_is_raised_never_lowered() {
        let mut cal = Calibration {
            fma_peak_gflops: vec![
                ThreadPeak { threads: 1, gflops: 90.0 },
                ThreadPeak { threads: 2, gflops: 96.0 },
            ],
            compute_peaks: vec![
                ComputePeak { unit: "f32-fma avx2+fma".into(), threads: 2, gflops: 96.0 },
                ComputePeak { unit: "bf16-dot avx512_bf16".into(), threads: 2, gflops: 300.0 },
            ],
            ..Default::default()
        };
        note_fma_peak(&mut cal, 2, 180.0);
        note_fma_peak(&mut cal, 1, 80.0);
        note_fma_peak(&mut cal, 2, f64::NAN);
        let peaks: Vec<f64> = cal.fma_peak_gflops.iter().map(|p| p.gflops).collect();
        assert_eq!(peaks, [90.0, 180.0]);
        let roofs: Vec<f64> = cal.compute_peaks.iter().map(|p| p.gflops).collect();
        assert_eq!(roofs, [180.0, 300.0]);
        // The real loop raises nothing above what it measures, and measures something.
        remeasure_fma(&mut cal);
        assert!(cal.fma_peak_gflops.iter().all(|p| p.gflops >= 80.0));
    }

    #[test]
    fn a_remeasurement_at_named_thread_counts_measures_only_those() {
        let peaks = vec![ThreadPeak { threads: 1, gflops: 1.0 }, ThreadPeak { threads: 2, gflops: 1.0 }];
        let mut cal = Calibration {
            fma_peak_gflops: peaks.clone(),
            // The vector and tile units' roofs, where this CPU has them, at both counts too.
            compute_peaks: ["f32-fma avx2+fma", "bf16-dot avx512_bf16", "bf16-dot amx_bf16"]
                .iter()
                .flat_map(|u| {
                    peaks.iter().map(|p| ComputePeak { unit: u.to_string(), threads: p.threads, gflops: 1.0 })
                })
                .collect(),
            ..Default::default()
        };
        let probe = ReadProbe::new(1 << 16, 1);
        let now = remeasure_now(&mut cal, &probe, &[2]);
        assert_eq!(now.fma.iter().map(|p| p.threads).collect::<Vec<_>>(), [2]);
        assert!(now.dot.iter().chain(&now.tile).all(|p| p.threads == 2));
        // No winning variant here: no read figure.
        assert_eq!(now.read_gbs, None);
        let all = remeasure_now(&mut cal, &probe, &[]);
        assert_eq!(all.fma.iter().map(|p| p.threads).collect::<Vec<_>>(), [1, 2]);
    }
}
