//! SVG plot of the accumulation sweep: relative error vs K on log–log axes, one panel per
//! (distribution, accumulator), one line per promotion interval N_C (solid: max, dashed: mean).
//! Plain f32 accumulation without promotion is drawn in grey in every panel as the floor.

use super::accumulation::{Accumulator, Promotion};
use super::sweep::{Dist, Point};
use crate::formats::Scaling;
use crate::{Error, Result};
use plotters::prelude::*;
use std::path::Path;

const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(214, 39, 40),
    RGBColor(140, 86, 75),
];

fn series(points: &[&Point], f: impl Fn(&Point) -> f64) -> Vec<(f64, f64)> {
    let mut v: Vec<(f64, f64)> =
        points.iter().map(|p| (p.k as f64, f(p))).filter(|&(_, y)| y > 0.0 && y.is_finite()).collect();
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    v
}

fn uniq<T: PartialEq + Copy>(it: impl Iterator<Item = T>) -> Vec<T> {
    let mut v = Vec::new();
    for x in it {
        if !v.contains(&x) {
            v.push(x);
        }
    }
    v
}

/// Write the plot for one scaling to `path`.
pub fn write_svg(path: &Path, points: &[Point], scaling: Scaling, title: &str) -> Result<()> {
    let pts: Vec<&Point> = points.iter().filter(|p| p.scaling == scaling).collect();
    let dists: Vec<Dist> = uniq(pts.iter().map(|p| p.dist));
    let accs: Vec<Accumulator> =
        uniq(pts.iter().map(|p| p.accumulator).filter(|a| *a != Accumulator::NativeF32));
    let proms: Vec<Promotion> = uniq(pts.iter().map(|p| p.promotion));
    if dists.is_empty() || accs.is_empty() {
        return Err(Error::invalid("plot", "no points", "a sweep with at least one limited accumulator"));
    }
    let (kmin, kmax) = pts.iter().fold((f64::MAX, 0f64), |(a, b), p| (a.min(p.k as f64), b.max(p.k as f64)));
    let ys: Vec<f64> =
        pts.iter().flat_map(|p| [p.max_rel, p.mean_rel]).filter(|y| *y > 0.0 && y.is_finite()).collect();
    let ymin = ys.iter().cloned().fold(f64::MAX, f64::min).max(1e-12) / 2.0;
    // Capped: plotters walks every decade of a log axis, and an overflowing sum's error is off
    // any useful scale anyway.
    let ymax = (ys.iter().cloned().fold(0f64, f64::max).max(ymin * 10.0) * 2.0).min(1e30);
    let err = |e: String| Error::Other(format!("plot {}: {e}", path.display()));

    let (w, h) = (420 * accs.len() as u32 + 40, 340 * dists.len() as u32 + 60);
    let root = SVGBackend::new(path, (w, h)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let root = root.titled(title, ("sans-serif", 18)).map_err(|e| err(e.to_string()))?;
    let panels = root.split_evenly((dists.len(), accs.len()));
    for (i, area) in panels.iter().enumerate() {
        let (dist, acc) = (dists[i / accs.len()], accs[i % accs.len()]);
        let mut chart = ChartBuilder::on(area)
            .caption(format!("{dist}, accumulator {}", acc.label()), ("sans-serif", 15))
            .margin(8)
            .x_label_area_size(32)
            .y_label_area_size(56)
            .build_cartesian_2d((kmin..kmax).log_scale().base(2.0), (ymin..ymax).log_scale())
            .map_err(|e| err(e.to_string()))?;
        chart
            .configure_mesh()
            .x_desc("K")
            .y_desc("|error| / RMS(ref)")
            .x_label_formatter(&|x| format!("{}", x.round() as u64))
            .y_label_formatter(&|y| format!("{y:.0e}"))
            .draw()
            .map_err(|e| err(e.to_string()))?;
        let floor: Vec<&Point> = pts
            .iter()
            .copied()
            .filter(|p| {
                p.dist == dist && p.accumulator == Accumulator::NativeF32 && p.promotion == Promotion::Never
            })
            .collect();
        if !floor.is_empty() {
            chart
                .draw_series(LineSeries::new(
                    series(&floor, |p| p.max_rel),
                    RGBColor(150, 150, 150).stroke_width(2),
                ))
                .map_err(|e| err(e.to_string()))?
                .label("f32, no promotion (max)")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], RGBColor(150, 150, 150)));
        }
        for (pi, &prom) in proms.iter().enumerate() {
            let color = COLORS[pi % COLORS.len()];
            let mine: Vec<&Point> = pts
                .iter()
                .copied()
                .filter(|p| p.dist == dist && p.accumulator == acc && p.promotion == prom)
                .collect();
            let max = series(&mine, |p| p.max_rel);
            chart
                .draw_series(LineSeries::new(max.clone(), color.stroke_width(2)))
                .map_err(|e| err(e.to_string()))?
                .label(format!("N_C = {prom}"))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
            chart
                .draw_series(max.iter().map(|&c| Circle::new(c, 3, color.filled())))
                .map_err(|e| err(e.to_string()))?;
            chart
                .draw_series(DashedLineSeries::new(
                    series(&mine, |p| p.mean_rel),
                    5,
                    4,
                    color.stroke_width(1),
                ))
                .map_err(|e| err(e.to_string()))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font(("sans-serif", 11))
            .draw()
            .map_err(|e| err(e.to_string()))?;
    }
    root.present().map_err(|e| err(e.to_string()))?;
    Ok(())
}
