//! Arithmetic-intensity analysis of a GEMM sweep (m = 1 up to square): where the measured
//! performance stops growing with intensity (the measured ridge point) versus where the
//! calibration's ceilings cross (the theoretical ridge).
//!
//! Measured ceilings: the compute ceiling is the best GFLOP/s any point of the series reached;
//! the bandwidth ceiling is the best bytes/s (GFLOP/s ÷ intensity) any point reached. The
//! measured ridge is their ratio, in FLOP/byte.

use super::check::projectable;
use super::roofline::calibration_peak;
use super::roofline_plot::{Ceiling, PlotSeries, RooflinePlot};
use crate::results::{Calibration, Record};

/// One measured point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    /// FLOP per byte moved (2mnk / bytes.total).
    pub intensity: f64,
    pub gflops: f64,
}

/// The points of one backend × format, sorted by intensity, with the located ridge.
#[derive(Debug, Clone, PartialEq)]
pub struct RidgeSeries {
    pub backend: String,
    pub format: String,
    pub points: Vec<Point>,
    pub measured_peak_gflops: f64,
    pub measured_bw_gbs: f64,
    /// `measured_peak_gflops / measured_bw_gbs`, FLOP/byte.
    pub measured_ridge: f64,
    /// Lowest intensity at which the series reached 90 % of its best GFLOP/s.
    pub knee: Option<f64>,
}

fn intensity(r: &Record) -> f64 {
    2.0 * r.m as f64 * r.n as f64 * r.k as f64 / r.bytes.total as f64
}

/// Group valid GEMM/GEMV records by backend × format and locate each series' ridge.
pub fn locate(records: &[Record]) -> Vec<RidgeSeries> {
    let mut keys: Vec<(String, String)> =
        records.iter().filter(|r| projectable(r)).map(|r| (r.backend.clone(), r.format.clone())).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .map(|(backend, format)| {
            let mut points: Vec<Point> = records
                .iter()
                .filter(|r| projectable(r) && r.backend == backend && r.format == format)
                .map(|r| Point {
                    m: r.m,
                    n: r.n,
                    k: r.k,
                    intensity: intensity(r),
                    gflops: 2.0 * r.m as f64 * r.n as f64 * r.k as f64 / r.time.median_s / 1e9,
                })
                .collect();
            points.sort_by(|a, b| a.intensity.total_cmp(&b.intensity));
            let peak = points.iter().map(|p| p.gflops).fold(0.0, f64::max);
            let bw = points.iter().map(|p| p.gflops / p.intensity).fold(0.0, f64::max);
            let knee = points.iter().find(|p| p.gflops >= 0.9 * peak).map(|p| p.intensity);
            RidgeSeries {
                backend,
                format,
                points,
                measured_peak_gflops: peak,
                measured_bw_gbs: bw,
                measured_ridge: peak / bw,
                knee,
            }
        })
        .collect()
}

/// The calibration's ridge (FMA peak at `threads` ÷ read bandwidth), FLOP/byte.
pub fn calibration_ridge(cal: &Calibration, threads: usize) -> Option<f64> {
    let (_, peak) = calibration_peak(cal, threads)?;
    (cal.read_gbs > 0.0).then(|| peak / cal.read_gbs)
}

/// The plot data: calibration ceiling, each series' measured ceiling, and the points.
pub fn plot_data(title: &str, series: &[RidgeSeries], cal: Option<&Calibration>) -> RooflinePlot {
    let mut ceilings = Vec::new();
    if let Some(cal) = cal {
        if let Some((t, peak)) = calibration_peak(cal, cal.threads) {
            ceilings.push(Ceiling {
                name: format!(
                    "calibration: FMA {peak:.0} GFLOP/s ({t} threads), read {:.1} GB/s",
                    cal.read_gbs
                ),
                peak_gflops: peak,
                bandwidth_gbs: cal.read_gbs,
                color: Some(0),
            });
        }
    }
    // A series and its measured ceiling share a colour (index 0 is the calibration's).
    for (j, s) in series.iter().enumerate() {
        ceilings.push(Ceiling {
            name: format!("measured {} {}: ridge {:.1} FLOP/B", s.backend, s.format, s.measured_ridge),
            peak_gflops: s.measured_peak_gflops,
            bandwidth_gbs: s.measured_bw_gbs,
            color: Some(1 + j),
        });
    }
    RooflinePlot {
        title: title.to_string(),
        ceilings,
        series: series
            .iter()
            .enumerate()
            .map(|(j, s)| PlotSeries {
                name: format!("{} {}", s.backend, s.format),
                points: s.points.iter().map(|p| (p.intensity, p.gflops)).collect(),
                color: Some(1 + j),
            })
            .collect(),
    }
}
