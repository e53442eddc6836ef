//! SVG roofline plot from plain data (log–log: FLOP/byte against GFLOP/s): ceilings as
//! `min(peak, bandwidth · intensity)` lines, measured points over them. Other modules (report,
//! claims) can call [`render_svg`] with their own data.

use crate::report::svg::palette;
use crate::{Error, Result};
use plotters::coord::combinators::IntoLogRange;
use plotters::prelude::*;

/// One roofline: compute ceiling and bandwidth slope.
#[derive(Debug, Clone, PartialEq)]
pub struct Ceiling {
    pub name: String,
    pub peak_gflops: f64,
    pub bandwidth_gbs: f64,
    /// Palette index ([`crate::report::svg::palette`]); `None`: by position.
    pub color: Option<usize>,
}

/// Measured points `(FLOP/byte, GFLOP/s)`.
#[derive(Debug, Clone, PartialEq)]
pub struct PlotSeries {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    /// Palette index ([`crate::report::svg::palette`]); `None`: after the ceilings' positions.
    pub color: Option<usize>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RooflinePlot {
    pub title: String,
    pub ceilings: Vec<Ceiling>,
    pub series: Vec<PlotSeries>,
}

fn err(e: impl std::fmt::Display) -> Error {
    Error::Other(format!("roofline plot: {e}"))
}

/// The widest axis drawn, in decades: plotters walks every decade of a log axis, so a hostile
/// value (1e-300 next to 1e300) would take it minutes; the window keeps the top of the data.
const MAX_DECADES: f64 = 12.0;

/// A log axis `(lo, hi)` around the finite positive `values`, half a factor of two beyond them,
/// at most [`MAX_DECADES`] wide (anchored at the largest value) and inside 1e±300.
fn log_axis(values: &[f64]) -> (f64, f64) {
    let logs = values.iter().filter(|v| v.is_finite() && **v > 0.0).map(|v| v.log10());
    let (lo, hi) = logs.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), l| (lo.min(l), hi.max(l)));
    let hi = (hi + 2f64.log10()).clamp(-299.0, 300.0);
    let lo = (lo - 2f64.log10()).clamp(hi - MAX_DECADES, hi - 0.5);
    (10f64.powf(lo), 10f64.powf(hi))
}

fn inside(p: (f64, f64), x: (f64, f64), y: (f64, f64)) -> bool {
    p.0 >= x.0 && p.0 <= x.1 && p.1 >= y.0 && p.1 <= y.1
}

/// Render the plot as an SVG document. Points outside the drawn window (see [`MAX_DECADES`]) are
/// left out, and a ceiling without a positive finite peak and bandwidth is not drawn.
pub fn render_svg(plot: &RooflinePlot) -> Result<String> {
    let ceilings: Vec<&Ceiling> = plot
        .ceilings
        .iter()
        .filter(|c| [c.peak_gflops, c.bandwidth_gbs].iter().all(|v| v.is_finite() && *v > 0.0))
        .collect();
    let xs = plot.series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
    let ridges = ceilings.iter().map(|c| c.peak_gflops / c.bandwidth_gbs);
    let all_x: Vec<f64> = xs.chain(ridges).filter(|x| x.is_finite() && *x > 0.0).collect();
    let ys = plot.series.iter().flat_map(|s| s.points.iter().map(|p| p.1));
    let all_y: Vec<f64> =
        ys.chain(ceilings.iter().map(|c| c.peak_gflops)).filter(|y| y.is_finite() && *y > 0.0).collect();
    if all_x.is_empty() || all_y.is_empty() {
        return Err(Error::Other("roofline plot: no positive points or ceilings to draw".into()));
    }
    let (x0, x1) = log_axis(&all_x);
    let slope_feet: Vec<f64> = ceilings.iter().map(|c| c.bandwidth_gbs * x0).collect();
    let (y0, y1) = log_axis(&[all_y, slope_feet].concat());
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 600)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(&plot.title, ("sans-serif", 20))
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(70)
            .build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale())
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("arithmetic intensity (FLOP/byte)")
            .y_desc("GFLOP/s")
            .draw()
            .map_err(err)?;
        for (i, c) in ceilings.iter().enumerate() {
            let color = palette(c.color.unwrap_or(i));
            let ridge = c.peak_gflops / c.bandwidth_gbs;
            let line = vec![(x0, c.bandwidth_gbs * x0), (ridge, c.peak_gflops), (x1, c.peak_gflops)];
            chart
                .draw_series(LineSeries::new(line, color.stroke_width(2)))
                .map_err(err)?
                .label(&c.name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        }
        for (i, s) in plot.series.iter().enumerate() {
            let color = palette(s.color.unwrap_or(i + plot.ceilings.len()));
            chart
                .draw_series(
                    s.points
                        .iter()
                        .filter(|&&p| inside(p, (x0, x1), (y0, y1)))
                        .map(|&p| Circle::new(p, 4, color.filled())),
                )
                .map_err(err)?
                .label(&s.name)
                .legend(move |(x, y)| Circle::new((x + 10, y), 4, color.filled()));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plot(points: Vec<(f64, f64)>, peak: f64, bw: f64) -> RooflinePlot {
        RooflinePlot {
            title: "t".into(),
            ceilings: vec![Ceiling { name: "c".into(), peak_gflops: peak, bandwidth_gbs: bw, color: None }],
            series: vec![PlotSeries { name: "s".into(), points, color: None }],
        }
    }

    #[test]
    fn axes_stay_inside_a_bounded_window() {
        let (lo, hi) = log_axis(&[1e-320, 3.0, f64::MAX, f64::NAN, -1.0]);
        assert!(lo.is_finite() && hi.is_finite() && lo > 0.0 && hi <= 1e300, "{lo} {hi}");
        assert!((hi / lo).log10() <= MAX_DECADES + 1e-9);
        let (lo, hi) = log_axis(&[4.0]);
        assert!(lo < 4.0 && hi > 4.0 && (hi / lo).log10() >= 0.5);
    }

    #[test]
    fn hostile_values_render_quickly_and_leave_out_what_is_off_the_axes() {
        let t = std::time::Instant::now();
        let svg =
            render_svg(&plot(vec![(1e-310, 1e308), (2.0, 50.0), (f64::MAX, 1e-300)], 1e308, 1e-310)).unwrap();
        assert!(t.elapsed().as_secs() < 10, "took {:?}", t.elapsed());
        assert!(svg.contains("<svg"));
        // A ceiling with an infinite ridge is skipped, the rest still draws.
        assert!(render_svg(&plot(vec![(2.0, 50.0)], f64::INFINITY, 10.0)).is_ok());
        assert!(render_svg(&plot(vec![(0.0, -1.0)], 0.0, 0.0)).is_err());
    }
}
