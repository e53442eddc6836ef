//! Timing: warm-up, then samples until a time budget, summarised as median / min / max / count.
//!
//! The median is the headline number because a shared machine produces one-sided outliers
//! (preemption only ever makes a run slower); min and max show the spread. A kernel that reports
//! its own device time (GPU timestamp queries) is timed by that; otherwise the wall clock around
//! the call is the timer. The method used is returned so every record says which it was.
//!
//! Batched samples: a sample repeats the call until it lasts at least [`TimerConfig::min_sample`]
//! (1 ms by default) and is divided by the number of calls. A single call of a µs-scale kernel
//! measures mostly the clock read and the thread wake-up; a batch measures the kernel at the rate
//! it sustains. Everything that times a kernel here (records, the per-kernel ceilings of the
//! projection check) goes through [`time`], so records and ceilings are timed the same way.

use crate::results::Time;
use crate::Result;
use rand::{rngs::StdRng, Rng, SeedableRng};
use std::time::{Duration, Instant};

/// How long and how often to sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimerConfig {
    /// Warm-up runs before sampling (at least one: caches, page faults, lazy init), except that
    /// 0 runs with a zero `warmup` means the caller's workload is already warm: no warm-up, and
    /// one call per sample.
    pub warmup_runs: usize,
    /// Keep warming up until this much time has passed (after `warmup_runs`).
    pub warmup: Duration,
    /// Sample until this much time has passed ...
    pub budget: Duration,
    /// ... but take at least this many samples ...
    pub min_samples: usize,
    /// ... and never more than this many.
    pub max_samples: usize,
    /// Shortest sample: calls are repeated inside one sample until it lasts this long.
    pub min_sample: Duration,
}

impl Default for TimerConfig {
    fn default() -> Self {
        TimerConfig {
            warmup_runs: 1,
            warmup: Duration::from_millis(200),
            budget: Duration::from_secs(1),
            min_samples: 5,
            max_samples: 10_000,
            min_sample: MIN_SAMPLE,
        }
    }
}

/// Default shortest sample.
pub const MIN_SAMPLE: Duration = Duration::from_millis(1);

/// The statistics of one timed kernel and how they were taken.
#[derive(Debug, Clone, PartialEq)]
pub struct Timing {
    pub time: Time,
    /// "wall-clock" or "timestamp-query".
    pub method: &'static str,
    /// Every sample, seconds per call, in the order taken.
    pub samples: Vec<f64>,
}

fn median_sorted(s: &[f64]) -> f64 {
    let n = s.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        s[n / 2]
    } else {
        0.5 * (s[n / 2 - 1] + s[n / 2])
    }
}

/// Median, min and max of `samples` (seconds). Empty input gives zeros.
pub fn summarize(samples: &[f64]) -> Time {
    if samples.is_empty() {
        return Time::default();
    }
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    Time { median_s: median_sorted(&s), min_s: s[0], max_s: s[n - 1], samples: n, ..Default::default() }
}

/// 95 % confidence interval of the median of `groups` pooled (one group per repeat of the
/// suite), by a two-level bootstrap: draw the repeats with replacement, then the samples within
/// each drawn repeat, and take the median of the pool; the 2.5th and 97.5th percentiles of 2000
/// such medians. Drawing repeats first carries the drift between repeats (a machine whose
/// bandwidth moves between minutes) into the interval, which a pooled bootstrap would hide.
/// `None` with fewer than 5 samples in all. Deterministic (fixed seed).
pub fn bootstrap_median_ci(groups: &[Vec<f64>]) -> Option<(f64, f64)> {
    let groups: Vec<&Vec<f64>> = groups.iter().filter(|g| !g.is_empty()).collect();
    let total: usize = groups.iter().map(|g| g.len()).sum();
    if total < 5 {
        return None;
    }
    const ROUNDS: usize = 2000;
    let mut rng = StdRng::seed_from_u64(0x5eed);
    let mut medians = Vec::with_capacity(ROUNDS);
    let mut pool = Vec::with_capacity(total);
    for _ in 0..ROUNDS {
        pool.clear();
        for _ in 0..groups.len() {
            let g = groups[rng.random_range(0..groups.len())];
            pool.extend((0..g.len()).map(|_| g[rng.random_range(0..g.len())]));
        }
        pool.sort_by(f64::total_cmp);
        medians.push(median_sorted(&pool));
    }
    medians.sort_by(f64::total_cmp);
    let at = |q: f64| medians[((q * (ROUNDS - 1) as f64).round() as usize).min(ROUNDS - 1)];
    Some((at(0.025), at(0.975)))
}

/// Summary of samples taken over several repeats: median/min/max of the pool, the bootstrap
/// interval of the median, and the number of repeats.
pub fn summarize_repeats(groups: &[Vec<f64>]) -> Time {
    let pool: Vec<f64> = groups.iter().flatten().copied().collect();
    let mut t = summarize(&pool);
    if let Some((lo, hi)) = bootstrap_median_ci(groups) {
        t.ci_low_s = Some(lo);
        t.ci_high_s = Some(hi);
    }
    t.repeats = groups.iter().filter(|g| !g.is_empty()).count();
    t
}

/// Time `run`, which executes the workload once and returns its device time when it has one.
/// Each sample repeats `run` until it lasts `config.min_sample`; the per-call time is recorded.
pub fn time<F>(config: &TimerConfig, mut run: F) -> Result<Timing>
where
    F: FnMut() -> Result<Option<f64>>,
{
    let start = Instant::now();
    let mut warm = 0;
    let mut last_call = f64::INFINITY;
    let already_warm = config.warmup_runs == 0 && config.warmup.is_zero();
    while !already_warm && (warm < config.warmup_runs.max(1) || start.elapsed() < config.warmup) {
        let t0 = Instant::now();
        run()?;
        last_call = t0.elapsed().as_secs_f64();
        warm += 1;
    }
    // Calls per sample from the fastest warm-up call we know of (the last one).
    let target = config.min_sample.as_secs_f64();
    let calls = if target > 0.0 && last_call > 0.0 && last_call.is_finite() {
        ((target / last_call).ceil() as usize).clamp(1, 1_000_000)
    } else {
        1
    };
    let mut samples = Vec::new();
    let mut device_timed = 0usize;
    let start = Instant::now();
    let max = config.max_samples.max(1);
    while samples.len() < max
        && (samples.len() < config.min_samples.max(1) || start.elapsed() < config.budget)
    {
        let t0 = Instant::now();
        let mut device = Some(0.0);
        for _ in 0..calls {
            device = match (device, run()?) {
                (Some(sum), Some(d)) if d.is_finite() && d > 0.0 => Some(sum + d),
                _ => None,
            };
        }
        let wall = t0.elapsed().as_secs_f64();
        match device {
            Some(d) if d > 0.0 => {
                device_timed += 1;
                samples.push(d / calls as f64);
            }
            _ => samples.push(wall / calls as f64),
        }
    }
    let method = if device_timed == samples.len() {
        "timestamp-query"
    } else if device_timed == 0 {
        "wall-clock"
    } else {
        "mixed"
    };
    let mut time = summarize(&samples);
    time.calls_per_sample = calls;
    Ok(Timing { time, method, samples })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_statistics() {
        let t = summarize(&[3.0, 1.0, 2.0, 10.0]);
        assert_eq!((t.median_s, t.min_s, t.max_s, t.samples), (2.5, 1.0, 10.0, 4));
        let t = summarize(&[5.0, 1.0, 2.0]);
        assert_eq!(t.median_s, 2.0);
        assert_eq!(summarize(&[]), Time::default());
    }

    fn fixed(samples: usize) -> TimerConfig {
        TimerConfig {
            warmup_runs: 1,
            warmup: Duration::ZERO,
            budget: Duration::ZERO,
            min_samples: samples,
            max_samples: samples,
            min_sample: Duration::ZERO,
        }
    }

    #[test]
    fn device_time_is_preferred_and_named() {
        let t = time(&fixed(7), || Ok(Some(0.25))).unwrap();
        assert_eq!(t.method, "timestamp-query");
        assert_eq!(t.time.samples, 7);
        assert_eq!(t.time.median_s, 0.25);
        let t = time(&fixed(7), || Ok(None)).unwrap();
        assert_eq!(t.method, "wall-clock");
    }

    #[test]
    fn an_already_warm_workload_gets_no_warm_up_run() {
        let mut calls = 0usize;
        let cfg = TimerConfig { warmup_runs: 0, min_sample: Duration::from_millis(1), ..fixed(3) };
        let t = time(&cfg, || {
            calls += 1;
            Ok(Some(1e-5))
        })
        .unwrap();
        assert_eq!((calls, t.time.samples, t.time.calls_per_sample), (3, 3, 1));
        // A warm-up duration alone still warms up.
        calls = 0;
        let cfg = TimerConfig { warmup_runs: 0, warmup: Duration::from_millis(1), ..fixed(3) };
        time(&cfg, || {
            calls += 1;
            Ok(None)
        })
        .unwrap();
        assert!(calls > 3);
    }

    #[test]
    fn short_calls_are_batched_into_one_sample() {
        // A call of ~20 µs: a 2 ms sample holds many of them, and the per-call time stays ~20 µs.
        let cfg = TimerConfig { min_sample: Duration::from_millis(2), ..fixed(5) };
        let mut calls = 0usize;
        let t = time(&cfg, || {
            calls += 1;
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_micros(20) {}
            Ok(None)
        })
        .unwrap();
        assert!(t.time.calls_per_sample >= 10, "{:?}", t.time);
        assert_eq!(calls, 1 + 5 * t.time.calls_per_sample);
        assert!(t.time.median_s >= 19e-6, "{:?}", t.time);
        // Device times are summed over the calls of a sample and divided back.
        let t = time(&TimerConfig { min_sample: Duration::from_millis(1), ..fixed(3) }, || Ok(Some(1e-5)))
            .unwrap();
        assert_eq!(t.method, "timestamp-query");
        assert!((t.time.median_s - 1e-5).abs() < 1e-12, "{:?}", t.time);
    }

    #[test]
    fn bootstrap_interval_contains_the_median_and_widens_with_drift() {
        let steady: Vec<Vec<f64>> =
            (0..3).map(|r| (0..40).map(|i| 1.0 + 0.001 * ((i * 7 + r) % 10) as f64).collect()).collect();
        let t = summarize_repeats(&steady);
        let (lo, hi) = (t.ci_low_s.unwrap(), t.ci_high_s.unwrap());
        assert!(lo <= t.median_s && t.median_s <= hi, "{t:?}");
        assert_eq!(t.repeats, 3);
        assert!(t.ci_half_width_rel().unwrap() < 0.01);
        // One repeat 20 % slower: the two-level bootstrap must widen the interval well past that.
        let mut drift = steady.clone();
        drift[2].iter_mut().for_each(|x| *x *= 1.2);
        let d = summarize_repeats(&drift);
        assert!(d.ci_half_width_rel().unwrap() > 5.0 * t.ci_half_width_rel().unwrap(), "{d:?} vs {t:?}");
        assert_eq!(bootstrap_median_ci(&[vec![1.0, 2.0]]), None);
    }

    #[test]
    fn errors_propagate() {
        let cfg = TimerConfig::default();
        let r = time(&cfg, || Err(crate::Error::Other("boom".into())));
        assert!(r.is_err());
    }
}
