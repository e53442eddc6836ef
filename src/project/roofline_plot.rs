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

/// Render the plot as an SVG document.
pub fn render_svg(plot: &RooflinePlot) -> Result<String> {
    let xs = plot.series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
    let ridges = plot.ceilings.iter().map(|c| c.peak_gflops / c.bandwidth_gbs);
    let all_x: Vec<f64> = xs.chain(ridges).filter(|x| x.is_finite() && *x > 0.0).collect();
    let ys = plot.series.iter().flat_map(|s| s.points.iter().map(|p| p.1));
    let all_y: Vec<f64> =
        ys.chain(plot.ceilings.iter().map(|c| c.peak_gflops)).filter(|y| y.is_finite() && *y > 0.0).collect();
    if all_x.is_empty() || all_y.is_empty() {
        return Err(Error::Other("roofline plot: no positive points or ceilings to draw".into()));
    }
    let x0 = all_x.iter().cloned().fold(f64::INFINITY, f64::min) / 2.0;
    let x1 = all_x.iter().cloned().fold(0.0, f64::max) * 2.0;
    let y1 = all_y.iter().cloned().fold(0.0, f64::max) * 2.0;
    let y0 = all_y
        .iter()
        .cloned()
        .fold(f64::INFINITY, f64::min)
        .min(plot.ceilings.iter().map(|c| c.bandwidth_gbs * x0).fold(f64::INFINITY, f64::min))
        / 2.0;
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
        for (i, c) in plot.ceilings.iter().enumerate() {
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
                .draw_series(s.points.iter().map(|&p| Circle::new(p, 4, color.filled())))
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
