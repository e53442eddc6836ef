//! SVG bar charts for the merged report: grouped bars (throughput, memory, GEMV bandwidth against
//! the measured ceiling). The roofline comes from `project::roofline_plot`.
//!
//! Why SVG through plotters' string backend: the charts are text, so they diff in git, render on
//! any code host next to the Markdown, and tests can parse them as XML and find every series.
//! Output depends only on the input numbers (no timestamps, no fonts read from the system).

use plotters::prelude::*;

const SIZE: (u32, u32) = (960, 520);

/// Colour `i` of the one palette every chart of the project draws from. A report assigns each
/// backend (host + backend) one index and passes it to every chart, so a backend keeps its
/// colour across all the SVGs of the report.
pub fn palette(i: usize) -> RGBAColor {
    Palette99::pick(i).to_rgba()
}

/// One coloured series of a bar chart: a value per category (`None` leaves a gap).
#[derive(Debug, Clone, PartialEq)]
pub struct BarSeries {
    pub name: String,
    pub values: Vec<Option<f64>>,
    /// Palette index; `None`: by position among the series.
    pub color: Option<usize>,
}

/// A labelled horizontal reference line (a measured ceiling).
#[derive(Debug, Clone, PartialEq)]
pub struct RefLine {
    pub name: String,
    pub value: f64,
    /// Palette index; `None`: after the series' positions.
    pub color: Option<usize>,
}

/// Grouped bars: one cluster per category, one bar per series inside it.
pub fn bar_chart(
    title: &str,
    y_label: &str,
    categories: &[String],
    series: &[BarSeries],
    lines: &[RefLine],
) -> Result<String, String> {
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let ymax = series
            .iter()
            .flat_map(|s| s.values.iter().flatten().copied())
            .chain(lines.iter().map(|l| l.value))
            .fold(0f64, f64::max);
        let ymax = if ymax > 0.0 { ymax * 1.15 } else { 1.0 };
        let nc = categories.len().max(1);
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(72)
            .build_cartesian_2d(-0.5f64..(nc as f64 - 0.5), 0f64..ymax)
            .map_err(err)?;
        let cats = categories.to_vec();
        let label = move |x: &f64| {
            let i = x.round();
            if (x - i).abs() < 1e-6 && i >= 0.0 {
                cats.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        };
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(nc)
            .x_label_formatter(&label)
            .y_desc(y_label)
            .draw()
            .map_err(err)?;
        let ns = series.len().max(1);
        let width = 0.8 / ns as f64;
        for (j, s) in series.iter().enumerate() {
            let color = palette(s.color.unwrap_or(j));
            let bars = s.values.iter().enumerate().filter_map(|(i, v)| {
                v.map(|v| {
                    let x0 = i as f64 - 0.4 + j as f64 * width;
                    Rectangle::new([(x0, 0.0), (x0 + width * 0.92, v)], color.filled())
                })
            });
            chart
                .draw_series(bars)
                .map_err(err)?
                .label(s.name.clone())
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
        }
        for (j, l) in lines.iter().enumerate() {
            let color = palette(l.color.unwrap_or(ns + j));
            let style = ShapeStyle { color, filled: false, stroke_width: 2 };
            chart
                .draw_series(LineSeries::new([(-0.5, l.value), (nc as f64 - 0.5, l.value)], style))
                .map_err(err)?
                .label(l.name.clone())
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 14, y)], style));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(buf)
}

fn err<E: std::fmt::Display>(e: E) -> String {
    format!("plot: {e}")
}
