//! Timing: warm-up, then samples until a time budget, summarised as median / min / max / count.
//!
//! The median is the headline number because a shared machine produces one-sided outliers
//! (preemption only ever makes a run slower); min and max show the spread. A kernel that reports
//! its own device time (GPU timestamp queries) is timed by that; otherwise the wall clock around
//! the call is the timer. The method used is returned so every record says which it was.

use crate::results::Time;
use crate::Result;
use std::time::{Duration, Instant};

/// How long and how often to sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimerConfig {
    /// Warm-up runs before sampling (at least one: caches, page faults, lazy init).
    pub warmup_runs: usize,
    /// Keep warming up until this much time has passed (after `warmup_runs`).
    pub warmup: Duration,
    /// Sample until this much time has passed ...
    pub budget: Duration,
    /// ... but take at least this many samples ...
    pub min_samples: usize,
    /// ... and never more than this many.
    pub max_samples: usize,
}

impl Default for TimerConfig {
    fn default() -> Self {
        TimerConfig {
            warmup_runs: 1,
            warmup: Duration::from_millis(200),
            budget: Duration::from_secs(1),
            min_samples: 5,
            max_samples: 10_000,
        }
    }
}

/// The statistics of one timed kernel and how they were taken.
#[derive(Debug, Clone, PartialEq)]
pub struct Timing {
    pub time: Time,
    /// "wall-clock" or "timestamp-query".
    pub method: &'static str,
}

/// Median, min and max of `samples` (seconds). Empty input gives zeros.
pub fn summarize(samples: &[f64]) -> Time {
    if samples.is_empty() {
        return Time::default();
    }
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    let median = if n % 2 == 1 { s[n / 2] } else { 0.5 * (s[n / 2 - 1] + s[n / 2]) };
    Time { median_s: median, min_s: s[0], max_s: s[n - 1], samples: n }
}

/// Time `run`, which executes the workload once and returns its device time when it has one.
pub fn time<F>(config: &TimerConfig, mut run: F) -> Result<Timing>
where
    F: FnMut() -> Result<Option<f64>>,
{
    let start = Instant::now();
    let mut warm = 0;
    while warm < config.warmup_runs.max(1) || start.elapsed() < config.warmup {
        run()?;
        warm += 1;
    }
    let mut samples = Vec::new();
    let mut device_timed = 0usize;
    let start = Instant::now();
    let max = config.max_samples.max(1);
    while samples.len() < max
        && (samples.len() < config.min_samples.max(1) || start.elapsed() < config.budget)
    {
        let t0 = Instant::now();
        let device = run()?;
        let wall = t0.elapsed().as_secs_f64();
        match device {
            Some(d) if d.is_finite() && d > 0.0 => {
                device_timed += 1;
                samples.push(d);
            }
            _ => samples.push(wall),
        }
    }
    let method = if device_timed == samples.len() {
        "timestamp-query"
    } else if device_timed == 0 {
        "wall-clock"
    } else {
        "mixed"
    };
    Ok(Timing { time: summarize(&samples), method })
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

    #[test]
    fn device_time_is_preferred_and_named() {
        let cfg = TimerConfig {
            warmup_runs: 1,
            warmup: Duration::ZERO,
            budget: Duration::ZERO,
            min_samples: 7,
            max_samples: 7,
        };
        let t = time(&cfg, || Ok(Some(0.25))).unwrap();
        assert_eq!(t.method, "timestamp-query");
        assert_eq!(t.time.samples, 7);
        assert_eq!(t.time.median_s, 0.25);
        let t = time(&cfg, || Ok(None)).unwrap();
        assert_eq!(t.method, "wall-clock");
    }

    #[test]
    fn errors_propagate() {
        let cfg = TimerConfig::default();
        let r = time(&cfg, || Err(crate::Error::Other("boom".into())));
        assert!(r.is_err());
    }
}
