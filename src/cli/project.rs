//! `chipbench project --chip ID [--results FILE]`: each measured record here, projected onto a
//! chip by the roofline. `--chip local` projects onto this machine (from the run's calibration)
//! and reports the error of the method per op × format. `--roofline-svg FILE` writes the
//! arithmetic-intensity plot of the run with its measured ridge points.

use crate::profiles;
use crate::project::check::{check_local_with, projectable, LocalCheck, Method, VIOLATION_TOLERANCE};
use crate::project::collective::{self, is_collective, HOP_LATENCY_S};
use crate::project::kernel_roofs::{self, LocalRoofs, Statistic};
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
    /// `--chip local`: also score with the CPU kernels' own measured ceilings (a model of the
    /// kernels, measured on their own code: not independent of the records, so never the check).
    #[arg(long)]
    pub kernel_roofs: bool,
    /// Accepted for older scripts: the kernel ceilings are off unless `--kernel-roofs`.
    #[arg(long, hide = true)]
    pub no_kernel_roofs: bool,
    /// `--chip local`: time budget of each kernel-ceiling calibration measurement, ms.
    #[arg(long, default_value_t = 300)]
    pub calibration_ms: u64,
    /// `--chip local`: which time of each record is scored (and measured for the kernel
    /// ceilings): `median` (what the tables report) or `min` (the sample with the least
    /// interference).
    #[arg(long, default_value = "median")]
    pub statistic: String,
    /// Collectives: assumed latency of one ring step on the chip's link, µs.
    #[arg(long, default_value_t = HOP_LATENCY_S * 1e6)]
    pub hop_latency_us: f64,
}

/// The most recently modified `*.json` in `dir` that is a run with something to project (valid
/// GEMM/GEMV or collective records). Newer files that are not (a `study accumulation` run, a
/// foreign JSON) are skipped with a note on stderr naming them, so the file used is never a
/// surprise.
pub fn newest_results(dir: &Path) -> Result<PathBuf> {
    let rd = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut files: Vec<_> = rd
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    files.sort_by(|a, b| b.cmp(a));
    for (_, path) in &files {
        let why = match Run::load(path) {
            Ok(run) if run.records.iter().any(|r| projectable(r) || is_collective(r)) => {
                return Ok(path.clone());
            }
            Ok(run) => format!("run {} has no valid gemm/gemv or collective records", run.run_id),
            Err(e) => e.to_string(),
        };
        eprintln!("chipbench: note: skipped {} ({why})", path.display());
    }
    Err(Error::config(
        dir,
        "results",
        if files.is_empty() {
            "no *.json results file; run `chipbench run` or pass --results FILE"
        } else {
            "no *.json file holds a run with gemm/gemv or collective records; run `chipbench run` or pass --results FILE"
        },
    ))
}

pub fn exec(args: Args) -> Result<()> {
    let path = match &args.results {
        Some(p) => p.clone(),
        None => newest_results(Path::new("results"))?,
    };
    let run = Run::load(&path)?;
    let newest = if args.results.is_none() { ", the newest run in results/" } else { "" };
    println!("results: {} (run {}, {} records{newest})", path.display(), run.run_id, run.records.len());
    if !(args.hop_latency_us >= 0.0 && args.hop_latency_us.is_finite()) {
        return Err(Error::invalid("--hop-latency-us", &args.hop_latency_us.to_string(), "a number ≥ 0"));
    }
    let stat: Statistic = args.statistic.parse()?;
    let has_kernels = run.records.iter().any(projectable);
    if args.chip.eq_ignore_ascii_case("local") {
        if has_kernels {
            let roofs = if !args.kernel_roofs || args.no_kernel_roofs {
                None
            } else {
                let records: Vec<_> = run.records.iter().filter(|r| projectable(r)).collect();
                eprintln!("measuring kernel ceilings on calibration shapes (not the suite's) ...");
                let timer = kernel_roofs::calibration_timer(std::time::Duration::from_millis(
                    args.calibration_ms.max(1),
                ));
                Some(kernel_roofs::calibrate_for(&records, &timer, stat)?)
            };
            print!("{}", local_report_with(&run, roofs.as_ref(), stat)?);
        }
        let fits = collective::fits(&run);
        if !fits.is_empty() {
            print!("{}", fits_report(&fits));
        } else if !has_kernels {
            return Err(Error::config(&path, "records", "no valid gemm/gemv or collective records"));
        }
    } else {
        let chips = profiles::chips_in(args.config_dir.as_deref())?;
        let chip = profiles::find_chip(&chips, &args.chip)?;
        if has_kernels {
            print!("{}", chip_report(&run, chip)?);
        }
        if run.records.iter().any(is_collective) {
            print!("{}", collectives_report(&run, chip, args.hop_latency_us * 1e-6)?);
        } else if !has_kernels {
            return Err(Error::config(&path, "records", "no valid gemm/gemv or collective records"));
        }
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

/// Collective records measured here vs projected onto `chip`'s link.
pub fn collectives_report(run: &Run, chip: &profiles::Chip, hop_latency_s: f64) -> Result<String> {
    let (link, how) = chip.link_per_direction_bytes_s().ok_or_else(|| {
        Error::Unsupported(format!(
            "chip {}: interconnect is not sourced; cannot project collectives",
            chip.id
        ))
    })?;
    let mut rows = Vec::new();
    for r in run.records.iter().filter(|r| is_collective(r)) {
        let p = collective::project_record(r, chip, hop_latency_s)?;
        rows.push(vec![
            r.op.clone(),
            r.format.clone(),
            r.ranks.unwrap_or(0).to_string(),
            crate::collectives::format_size(r.bytes.total),
            secs(r.time.median_s),
            r.busbw_gbs.map(sig3).unwrap_or("-".into()),
            secs(p.time_s),
            sig3(p.bus_bytes / p.time_s / 1e9),
            format!("{}x", sig3(r.time.median_s / p.time_s)),
        ]);
    }
    let mut out = format!(
        "\ncollectives projected onto {} ({}): time = steps x {} + bus factor x bytes / {} GB/s ({how}); \
         bus factor all-reduce 2(n-1)/n, others (n-1)/n; steps 2(n-1) resp. n-1; same rank count as measured\n",
        chip.name,
        chip.id,
        secs(hop_latency_s),
        sig3(link / 1e9)
    );
    out += &table(
        &[
            "op",
            "payload",
            "ranks",
            "bytes",
            "measured here",
            "busbw here (GB/s)",
            "projected there",
            "busbw there (GB/s)",
            "speedup",
        ],
        &rows,
    );
    Ok(out)
}

/// The α–β fits of the measured collective curves.
pub fn fits_report(fits: &[collective::AlphaBeta]) -> String {
    let rows: Vec<Vec<String>> = fits
        .iter()
        .map(|f| {
            vec![
                f.op.clone(),
                f.payload.clone(),
                f.ranks.to_string(),
                f.points.to_string(),
                secs(f.alpha_s),
                sig3(f.beta / 1e9),
                format!("{:.0} %", f.median_rel_residual * 100.0),
            ]
        })
        .collect();
    let mut out = String::from(
        "\ncollectives measured here: least-squares fit t = alpha + bus bytes / beta (relative residuals)\n",
    );
    out += &table(&["op", "payload", "ranks", "sizes", "alpha", "beta (GB/s)", "median |residual|"], &rows);
    out
}

/// Projection onto this machine vs measured with the bytes-only roofline, errors per op × format.
pub fn local_report(run: &Run) -> Result<String> {
    local_report_with(run, None, Statistic::Median)
}

fn group_table(check: &LocalCheck) -> String {
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
                g.violations.to_string(),
                pct(g.median_slack),
            ]
        })
        .collect();
    table(
        &["op", "format", "records", "median error", "median |error|", "violations", "slack (median)"],
        &groups,
    )
}

/// Projection onto this machine vs measured. The check: the bytes-only roofline on the run's
/// independent ceilings (FMA peak, read ceiling), violations counted apart from slack. With
/// `roofs`, the kernel-ceiling model is scored too, after it and labelled as such.
pub fn local_report_with(run: &Run, roofs: Option<&LocalRoofs>, stat: Statistic) -> Result<String> {
    let check = check_local_with(run, Method::Roofline, stat)?;
    let mut out = String::new();
    if let Some(c) = &run.calibration {
        out += &format!(
            "independent ceilings (microbenchmarks, no kernel code): read {} GB/s{}; FMA peak {}\n",
            sig3(c.read_gbs),
            if c.read_variant.is_empty() { String::new() } else { format!(" ({})", c.read_variant) },
            c.fma_peak_gflops
                .iter()
                .map(|p| format!("{} GFLOP/s at {} thread(s)", sig3(p.gflops), p.threads))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    out += "projection onto this machine: time = max(FLOPs / FMA peak, bytes / read ceiling); error = projected / \
            measured - 1 (a lower bound: error <= 0 unless the bound is broken)\n";
    out += &format!("measured = the {} of each record's samples\n", stat.name());
    out += &rows_table(run, &check);
    out += "\n";
    out += &group_table(&check);
    out += &summary(&check);
    if let Some(roofs) = roofs {
        let model = check_local_with(run, Method::Measured(roofs), stat)?;
        out += "\nkernel-ceiling model (NOT independent: measured on the CPU backend's own kernels, calibration \
                shapes GEMV ";
        out += &format!(
            "1x{}x{}, GEMM {:?}; {} of samples)\n",
            kernel_roofs::GEMV_SHAPE.0,
            kernel_roofs::GEMV_SHAPE.1,
            kernel_roofs::GEMM_SHAPE,
            stat.name()
        );
        let rows: Vec<Vec<String>> = roofs
            .kernels
            .iter()
            .map(|(k, r)| {
                vec![
                    k.op.clone(),
                    k.format.clone(),
                    k.scaling.clone(),
                    k.act_format.clone(),
                    k.threads.to_string(),
                    r.describe(),
                ]
            })
            .collect();
        out += &table(&["op", "format", "scaling", "act", "threads", "ceiling"], &rows);
        out += "time = max(bytes / read ceiling, measured kernel ceiling)\n";
        out += &rows_table(run, &model);
        out += &group_table(&model);
        out += &summary(&model);
    }
    Ok(out)
}

fn rows_table(run: &Run, check: &LocalCheck) -> String {
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
                if c.violation { "VIOLATION".into() } else { "-".into() },
            ]
        })
        .collect();
    table(
        &[
            "backend",
            "op",
            "format",
            "m x n x k",
            "threads",
            "measured",
            "projected",
            "error",
            "bound",
            "beats bound",
        ],
        &rows,
    )
}

fn pct(v: f64) -> String {
    if v.is_finite() {
        format!("{:+.0} %", v * 100.0)
    } else {
        "-".into()
    }
}

fn summary(check: &LocalCheck) -> String {
    format!(
        "violations (measured faster than the bound by more than {:.0} %): {} of {} records\n\
         slack (the other {}): median error {}\n\
         median |error| over {} records: {:.0} %; negative = the projection predicts less time than measured\n",
        VIOLATION_TOLERANCE * 100.0,
        check.violations,
        check.rows.len(),
        check.rows.len() - check.violations,
        pct(check.median_slack),
        check.rows.len(),
        check.median_abs_error * 100.0
    )
}
