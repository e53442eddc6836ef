//! `chipbench project --chip ID [--results FILE]`: each measured record here, projected onto a
//! chip by the roofline. `--chip local` projects onto this machine (from the run's calibration)
//! and reports the error of the method per op × format. `--roofline-svg FILE` writes the
//! arithmetic-intensity plot of the run with its measured ridge points.

use crate::profiles;
use crate::project::check::{check_local, projectable};
use crate::project::roofline::project;
use crate::project::text::{secs, sig3, table};
use crate::project::{ridge, roofline_plot};
use crate::results::{write_atomic, Run};
use crate::{Error, Result};
use std::path::{Path, PathBuf};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Chip id or alias (see `chipbench chips`), or `local` for this machine.
    #[arg(long)]
    pub chip: String,
    /// Results file (default: the newest results/*.json).
    #[arg(long)]
    pub results: Option<PathBuf>,
    /// Also write an SVG roofline of the run's GEMM/GEMV points with the measured ridge.
    #[arg(long)]
    pub roofline_svg: Option<PathBuf>,
    /// Overwrite an existing SVG.
    #[arg(long)]
    pub force: bool,
    /// Directory with chips/ profiles (default: the embedded ones).
    #[arg(long)]
    pub config_dir: Option<PathBuf>,
}

/// The most recently modified `*.json` in `dir`.
pub fn newest_results(dir: &Path) -> Result<PathBuf> {
    let rd = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    rd.filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .max()
        .map(|(_, p)| p)
        .ok_or_else(|| {
            Error::config(
                dir,
                "results",
                "no *.json results file; run `chipbench run` or pass --results FILE",
            )
        })
}

pub fn exec(args: Args) -> Result<()> {
    let path = match &args.results {
        Some(p) => p.clone(),
        None => newest_results(Path::new("results"))?,
    };
    let run = Run::load(&path)?;
    println!("results: {} (run {}, {} records)", path.display(), run.run_id, run.records.len());
    if args.chip.eq_ignore_ascii_case("local") {
        print!("{}", local_report(&run)?);
    } else {
        let chips = profiles::chips_in(args.config_dir.as_deref())?;
        let chip = profiles::find_chip(&chips, &args.chip)?;
        print!("{}", chip_report(&run, chip)?);
    }
    if let Some(svg_path) = &args.roofline_svg {
        let series = ridge::locate(&run.records);
        for s in &series {
            println!(
                "ridge {} {}: measured {:.1} FLOP/B (best {:.1} GFLOP/s, best {:.1} GB/s); 90 % of best reached at {}",
                s.backend,
                s.format,
                s.measured_ridge,
                s.measured_peak_gflops,
                s.measured_bw_gbs,
                s.knee.map(|k| format!("{k:.1} FLOP/B")).unwrap_or("-".into())
            );
        }
        if let Some(r) = run.calibration.as_ref().and_then(|c| ridge::calibration_ridge(c, c.threads)) {
            println!("ridge from calibration (FMA peak / read bandwidth): {r:.1} FLOP/B");
        }
        let plot =
            ridge::plot_data(&format!("roofline, run {}", run.run_id), &series, run.calibration.as_ref());
        let svg = roofline_plot::render_svg(&plot)?;
        write_atomic(svg_path, svg.as_bytes(), args.force)?;
        println!("wrote {}", svg_path.display());
    }
    Ok(())
}

fn fmt_scaling(r: &crate::results::Record) -> String {
    if r.scaling.is_empty() || r.scaling == "none" {
        r.format.clone()
    } else {
        format!("{} {}", r.format, r.scaling)
    }
}

fn shape(r: &crate::results::Record) -> String {
    format!("{}x{}x{}", r.m, r.n, r.k)
}

/// Measured here vs projected on `chip`, one row per record.
pub fn chip_report(run: &Run, chip: &profiles::Chip) -> Result<String> {
    let mut rows = Vec::new();
    let mut skipped = 0;
    for r in run.records.iter().filter(|r| projectable(r)) {
        match project(r, chip) {
            Ok(p) => rows.push(vec![
                r.backend.clone(),
                r.op.clone(),
                fmt_scaling(r),
                shape(r),
                secs(r.time.median_s),
                secs(p.time_s),
                format!("{}x", sig3(r.time.median_s / p.time_s)),
                p.bound.to_string(),
                p.peak.label.clone(),
            ]),
            Err(_) => skipped += 1,
        }
    }
    if rows.is_empty() {
        // Surface the first reason (e.g. no sourced bandwidth for this chip).
        let first = run.records.iter().find(|r| projectable(r));
        return Err(match first {
            Some(r) => project(r, chip).err().unwrap_or_else(|| Error::Other("nothing projected".into())),
            None => Error::config("results", "records", "no valid gemm/gemv records to project"),
        });
    }
    let mut out = format!(
        "projected onto {} ({}): time = max(FLOPs / peak, bytes / {} TB/s)\n",
        chip.name,
        chip.id,
        chip.memory_bw_bytes_s().map(|b| sig3(b / 1e12)).unwrap_or("?".into())
    );
    out += &table(
        &[
            "backend",
            "op",
            "format",
            "m x n x k",
            "measured here",
            "projected there",
            "speedup",
            "bound",
            "peak used",
        ],
        &rows,
    );
    if skipped > 0 {
        out += &format!("{skipped} records not projected (no sourced peak for their format)\n");
    }
    Ok(out)
}

/// Projection onto this machine vs measured, with errors per op × format.
pub fn local_report(run: &Run) -> Result<String> {
    let check = check_local(run)?;
    let rows: Vec<Vec<String>> = check
        .rows
        .iter()
        .map(|c| {
            let r = &run.records[c.index];
            vec![
                r.backend.clone(),
                r.op.clone(),
                fmt_scaling(r),
                shape(r),
                r.threads.to_string(),
                secs(c.measured_s),
                secs(c.projected_s),
                format!("{:+.0} %", c.error * 100.0),
                c.bound.to_string(),
            ]
        })
        .collect();
    let mut out = String::from(
        "projection onto this machine (peak = measured FMA peak for every format, bandwidth = measured read \
         bandwidth); error = projected / measured - 1\n",
    );
    out += &table(
        &["backend", "op", "format", "m x n x k", "threads", "measured", "projected", "error", "bound"],
        &rows,
    );
    let groups: Vec<Vec<String>> = check
        .groups
        .iter()
        .map(|g| {
            vec![
                g.op.clone(),
                g.format.clone(),
                g.count.to_string(),
                format!("{:+.0} %", g.median_error * 100.0),
                format!("{:.0} %", g.median_abs_error * 100.0),
            ]
        })
        .collect();
    out += "\n";
    out += &table(&["op", "format", "records", "median error", "median |error|"], &groups);
    out += &format!(
        "median |error| over {} records: {:.0} % (target 15 %); negative = the roofline predicts less time than \
         measured\n",
        check.rows.len(),
        check.median_abs_error * 100.0
    );
    Ok(out)
}
