//! Merge result files from one machine or a whole fleet into one Markdown report with SVG plots.
//!
//! Why: `chipbench run` on N nodes leaves N self-describing JSON files (host, run id, env,
//! calibration). This module reads any number of them, skips what it cannot use with a one-line
//! warning (a missing path, another schema, not a results file, the same run twice), and lays
//! the records side by side: per-format throughput and memory with ratios, GEMV bandwidth against
//! each machine's measured read ceiling, a roofline with the measured points, and the claims
//! table. [`build`] is pure (inputs → text), so tests can snapshot it.

use super::svg::{self, BarSeries, RefLine};
use crate::claims::measured::{best_by_format, groups, Entry, GroupKey};
use crate::claims::render::cell;
use crate::claims::{self, sig3, Catalogue, Inputs, LoadedRun};
use crate::formats::Format;
use crate::project::roofline_plot::{self, Ceiling, PlotSeries, RooflinePlot};
use crate::results::{Record, Run};
use crate::Result;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// What [`load`] read, and what it skipped (one line each).
#[derive(Debug, Default)]
pub struct Loaded {
    pub runs: Vec<LoadedRun>,
    pub warnings: Vec<String>,
}

fn json_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<PathBuf> =
        std::fs::read_dir(dir)?.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            json_files(&p, out)?;
        } else if p.extension().is_some_and(|x| x == "json") {
            out.push(p);
        }
    }
    Ok(())
}

/// Read result files: each path is a file or a directory searched recursively for `*.json`.
/// Runs come back sorted by host, then run id, so the report does not depend on argument order.
pub fn load(paths: &[PathBuf]) -> Loaded {
    let mut loaded = Loaded::default();
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let before = files.len();
            if let Err(e) = json_files(p, &mut files) {
                loaded.warnings.push(format!("{}: {e}; skipped", p.display()));
            } else if files.len() == before {
                loaded.warnings.push(format!("{}: no *.json files; skipped", p.display()));
            }
        } else if p.exists() {
            files.push(p.clone());
        } else {
            loaded.warnings.push(format!("{}: not found; skipped", p.display()));
        }
    }
    let mut seen = BTreeSet::new();
    for f in files {
        match Run::load(&f) {
            Ok(run) => {
                if seen.insert((run.env.host.clone(), run.run_id.clone())) {
                    loaded.runs.push(LoadedRun { path: f.display().to_string(), run });
                } else {
                    loaded.warnings.push(format!(
                        "{}: run {} of host {} already read; skipped",
                        f.display(),
                        run.run_id,
                        run.env.host
                    ));
                }
            }
            Err(e) => loaded.warnings.push(format!("{e}; skipped")),
        }
    }
    loaded.runs.sort_by(|a, b| (&a.run.env.host, &a.run.run_id).cmp(&(&b.run.env.host, &b.run.run_id)));
    loaded
}

/// The report: Markdown plus SVG files (name relative to the Markdown, contents).
#[derive(Debug, Clone)]
pub struct Report {
    pub markdown: String,
    pub svgs: Vec<(String, String)>,
}

fn file_name(path: &str) -> String {
    Path::new(path).file_name().map_or_else(|| path.to_string(), |n| n.to_string_lossy().into_owned())
}

fn shape(k: &GroupKey) -> String {
    format!("{}x{}x{}", k.m, k.n, k.k)
}

/// One comparison group with the fastest record per format.
type Group<'a> = (GroupKey, Vec<(Format, Entry<'a>)>);
type Best<'a> = Vec<Group<'a>>;

/// Formats present in `groups`, in the canonical order f32, bf16, f16, e4m3, e5m2.
fn formats_present(best: &[Group]) -> Vec<Format> {
    let present: BTreeSet<Format> = best.iter().flat_map(|(_, b)| b.iter().map(|(f, _)| *f)).collect();
    Format::ALL.into_iter().filter(|f| present.contains(f)).collect()
}

/// Per (host, backend, device, threads), the group of `op` with the largest m·n·k: the one the
/// charts show (tables list every shape).
fn largest_per_machine<'a>(best: &'a [Group<'a>]) -> Vec<&'a Group<'a>> {
    let mut pick: BTreeMap<(String, String, String, usize), &Group> = BTreeMap::new();
    for g in best {
        let k = &g.0;
        let id = (k.host.clone(), k.backend.clone(), k.device.clone(), k.threads);
        let size = |k: &GroupKey| k.m * k.n * k.k;
        if pick.get(&id).is_none_or(|p| size(k) > size(&p.0)) {
            pick.insert(id, g);
        }
    }
    pick.into_values().collect()
}

fn ratio(num: Option<f64>, den: Option<f64>) -> String {
    match (num, den) {
        (Some(a), Some(b)) if b > 0.0 => format!("{}x", sig3(a / b)),
        _ => "—".into(),
    }
}

fn time_of(best: &[(Format, Entry)], f: Format) -> Option<f64> {
    best.iter().find(|(g, _)| *g == f).map(|(_, e)| e.1.time.median_s)
}

fn weight_bytes(r: &Record) -> u64 {
    r.bytes.weights + r.bytes.scales
}

fn mib(b: u64) -> String {
    format!("{} MiB", sig3(b as f64 / (1u64 << 20) as f64))
}

fn read_ceiling(lr: &LoadedRun) -> Option<f64> {
    lr.run.calibration.as_ref().map(|c| c.read_gbs).filter(|g| *g > 0.0)
}

/// The report's one backend → colour mapping: every (host, backend) of the runs gets a palette
/// index, in sorted order, used by every chart; series that are not backends (weight shapes,
/// roofs, ceilings) take the indices after them.
pub struct Colors {
    backends: Vec<(String, String)>,
}

impl Colors {
    pub fn of(runs: &[LoadedRun]) -> Self {
        let set: BTreeSet<(String, String)> = runs
            .iter()
            .flat_map(|lr| lr.run.records.iter().map(|r| (lr.run.env.host.clone(), r.backend.clone())))
            .collect();
        Colors { backends: set.into_iter().collect() }
    }
    /// The palette index of `backend` on `host`.
    pub fn backend(&self, host: &str, backend: &str) -> usize {
        let i = self.backends.iter().position(|(h, b)| h == host && b == backend);
        i.unwrap_or(self.backends.len())
    }
    /// The palette index of the `j`-th series that is not a backend.
    pub fn other(&self, j: usize) -> usize {
        self.backends.len() + 1 + j
    }
}

/// Build the report for `runs`; charts are named `<stem>-<chart>.svg`.
pub fn build(runs: &[LoadedRun], warnings: &[String], stem: &str) -> Result<Report> {
    let mut md = String::from("# chipbench report\n\n");
    let mut svgs = Vec::new();
    let colors = Colors::of(runs);
    let records: usize = runs.iter().map(|r| r.run.records.len()).sum();
    let valid: usize = runs.iter().map(|r| r.run.records.iter().filter(|x| x.valid).count()).sum();
    let hosts: BTreeSet<&str> = runs.iter().map(|r| r.run.env.host.as_str()).collect();
    let backends: BTreeSet<&str> =
        runs.iter().flat_map(|r| r.run.records.iter().map(|x| x.backend.as_str())).collect();
    md.push_str(&format!(
        "Merged {} result files from {} hosts ({}) and {} backends ({}): {records} records, {valid} validated. \
         Only validated records are plotted; comparisons hold host, backend, shape and threads fixed.\n\n",
        runs.len(),
        hosts.len(),
        hosts.iter().copied().collect::<Vec<_>>().join(", "),
        backends.len(),
        backends.iter().copied().collect::<Vec<_>>().join(", ")
    ));
    md.push_str(&runs_table(runs));

    let gemm: Vec<(GroupKey, Vec<(Format, Entry)>)> =
        groups(runs, Some("gemm")).into_iter().map(|(k, v)| (k, best_by_format(&v))).collect();
    let gemv: Vec<(GroupKey, Vec<(Format, Entry)>)> =
        groups(runs, Some("gemv")).into_iter().map(|(k, v)| (k, best_by_format(&v))).collect();

    // Throughput.
    md.push_str("## Throughput by format\n\n");
    if gemm.is_empty() && gemv.is_empty() {
        md.push_str("No validated GEMM or GEMV records.\n\n");
    }
    for (op, best, metric) in [("gemm", &gemm, "GFLOP/s"), ("gemv", &gemv, "GB/s")] {
        if best.is_empty() {
            continue;
        }
        let name = format!("{stem}-{op}-throughput.svg");
        let fmts = formats_present(best);
        let shown = largest_per_machine(best);
        let series: Vec<BarSeries> = shown
            .iter()
            .map(|(k, b)| BarSeries {
                name: format!("{} {} {}", k.host, k.backend, shape(k)),
                values: fmts
                    .iter()
                    .map(|f| {
                        b.iter()
                            .find(|(g, _)| g == f)
                            .map(|(_, e)| if op == "gemm" { e.1.gflops } else { e.1.gbs })
                    })
                    .collect(),
                color: Some(colors.backend(&k.host, &k.backend)),
            })
            .collect();
        let cats: Vec<String> = fmts.iter().map(|f| f.to_string()).collect();
        let title = format!("{} throughput by weight format (largest shape per machine)", op.to_uppercase());
        svgs.push((
            name.clone(),
            svg::bar_chart(&title, metric, &cats, &series, &[]).map_err(crate::Error::Other)?,
        ));
        md.push_str(&format!("![{title}]({name})\n\n"));
        md.push_str(
            "| Host | Backend | Shape | Format | Median time | GFLOP/s | GB/s | Speedup vs f32 | vs bf16 |\n|---|---|---|---|---|---|---|---|---|\n"
        );
        for (k, b) in best.iter() {
            for (f, (_, r)) in b {
                let t = Some(r.time.median_s);
                md.push_str(&format!(
                    "| {} | {} | {} | {} | {} s | {} | {} | {} | {} |\n",
                    cell(&k.host),
                    cell(&k.backend),
                    shape(k),
                    cell(&claims::measured::format_label(r)),
                    sig3(r.time.median_s),
                    sig3(r.gflops),
                    sig3(r.gbs),
                    ratio(time_of(b, Format::F32), t),
                    if *f == Format::BF16 { "—".into() } else { ratio(time_of(b, Format::BF16), t) }
                ));
            }
        }
        md.push('\n');
    }

    // Memory: weight bytes (codes + scales) per format, with what backends allocated.
    md.push_str(&memory_section(&gemv, &gemm, stem, &colors, &mut svgs)?);
    md.push_str(&gemv_ceiling_section(runs, &gemv, stem, &colors, &mut svgs)?);
    md.push_str(&roofline_section(runs, stem, &colors, &mut svgs)?);
    md.push_str(&collectives_section(runs));
    md.push_str(&model_steps_section(runs));

    // Claims.
    let cat = Catalogue::embedded()?;
    let assessed = claims::assess(&cat, &Inputs { runs: runs.to_vec() });
    md.push_str(&claims::render::markdown(&cat, &assessed, 2));

    if !warnings.is_empty() {
        md.push_str("\n## Skipped inputs\n\n");
        for w in warnings {
            md.push_str(&format!("- {w}\n"));
        }
    }
    Ok(Report { markdown: md, svgs })
}

/// The whole model steps of each run that measured some (`run --model`), as that run's own
/// Markdown prints them: a step's planner figures come from its own run's calibration, so runs
/// are not merged into one table.
fn model_steps_section(runs: &[LoadedRun]) -> String {
    let mut md = String::new();
    for lr in runs {
        let body = crate::modelstep::steps::render_body(&lr.run);
        if body.is_empty() {
            continue;
        }
        if md.is_empty() {
            md.push_str(crate::modelstep::steps::HEADING);
        }
        md.push_str(&format!("### {} ({})\n\n{body}\n", file_name(&lr.path), cell(&lr.run.env.host)));
    }
    md
}

fn runs_table(runs: &[LoadedRun]) -> String {
    let mut md = String::from(
        "## Runs\n\n| File | Run | Host | CPU | Threads | Backends (devices) | Records (valid) | Created | Read ceiling GB/s | FMA peak GFLOP/s |\n|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for lr in runs {
        let r = &lr.run;
        let mut devs: Vec<String> = r
            .records
            .iter()
            .map(|x| format!("{} ({})", x.backend, x.device))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        devs.dedup();
        let fma = r
            .calibration
            .as_ref()
            .and_then(|c| c.fma_peak_gflops.iter().map(|p| p.gflops).reduce(f64::max))
            .map_or("—".into(), sig3);
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} ({}) | {} | {} | {} |\n",
            cell(&file_name(&lr.path)),
            cell(&r.run_id),
            cell(&r.env.host),
            cell(&r.env.cpu_model),
            r.env.threads,
            cell(&devs.join(", ")),
            r.records.len(),
            r.records.iter().filter(|x| x.valid).count(),
            cell(&r.created),
            read_ceiling(lr).map_or("—".into(), sig3),
            fma
        ));
    }
    md.push('\n');
    md
}

fn memory_section(
    gemv: &Best,
    gemm: &Best,
    stem: &str,
    colors: &Colors,
    svgs: &mut Vec<(String, String)>,
) -> Result<String> {
    let mut md = String::from("## Memory by format\n\nWeight bytes are codes plus scales as each backend reported them; buffers are what the prepared kernel allocated (weights + scales + workspace).\n\n");
    // One row set per (host, backend, device, n, k): GEMV and GEMM of the same weights agree.
    let mut seen = BTreeSet::new();
    let rows: Vec<&(GroupKey, Vec<(Format, Entry)>)> = gemv
        .iter()
        .chain(gemm.iter())
        .filter(|(k, _)| seen.insert((k.host.clone(), k.backend.clone(), k.device.clone(), k.n, k.k)))
        .collect();
    if rows.is_empty() {
        md.push_str("No validated records.\n\n");
        return Ok(md);
    }
    // Chart: logical weight bytes per distinct n×k (host independent), largest four shapes.
    let mut shapes: BTreeMap<(usize, usize), BTreeMap<Format, u64>> = BTreeMap::new();
    for (k, b) in &rows {
        for (f, (_, r)) in b {
            shapes.entry((k.n, k.k)).or_default().entry(*f).or_insert(weight_bytes(r));
        }
    }
    let all: Vec<(GroupKey, Vec<(Format, Entry)>)> =
        rows.iter().map(|g| (g.0.clone(), g.1.clone())).collect();
    let fmts = formats_present(&all);
    let mut keys: Vec<(usize, usize)> = shapes.keys().copied().collect();
    keys.sort_by_key(|(n, k)| std::cmp::Reverse(n * k));
    keys.truncate(4);
    let series: Vec<BarSeries> = keys
        .iter()
        .enumerate()
        .map(|(j, nk)| BarSeries {
            name: format!("weights {}x{}", nk.0, nk.1),
            values: fmts.iter().map(|f| shapes[nk].get(f).map(|b| *b as f64 / (1u64 << 20) as f64)).collect(),
            color: Some(colors.other(j)),
        })
        .collect();
    let name = format!("{stem}-memory.svg");
    let title = "Weight memory by format (codes + scales)";
    let cats: Vec<String> = fmts.iter().map(|f| f.to_string()).collect();
    svgs.push((
        name.clone(),
        svg::bar_chart(title, "MiB", &cats, &series, &[]).map_err(crate::Error::Other)?,
    ));
    md.push_str(&format!("![{title}]({name})\n\n"));
    md.push_str("| Host | Backend | Weights n x k | Format | Weight bytes | of which scales | vs f32 | vs bf16 | Buffers | RSS peak |\n|---|---|---|---|---|---|---|---|---|---|\n");
    for (k, b) in rows {
        let bytes_of = |f: Format| b.iter().find(|(g, _)| *g == f).map(|(_, e)| weight_bytes(e.1) as f64);
        for (_, (_, r)) in b {
            let w = Some(weight_bytes(r) as f64);
            let (buf, rss) = match &r.memory {
                Some(m) => (mib(m.buffers.total()), m.rss_peak_bytes.map_or("—".into(), mib)),
                None => ("—".into(), "—".into()),
            };
            md.push_str(&format!(
                "| {} | {} | {}x{} | {} | {} | {} B | {} | {} | {} | {} |\n",
                cell(&k.host),
                cell(&k.backend),
                k.n,
                k.k,
                cell(&claims::measured::format_label(r)),
                mib(weight_bytes(r)),
                r.bytes.scales,
                ratio(w, bytes_of(Format::F32)),
                ratio(w, bytes_of(Format::BF16)),
                buf,
                rss
            ));
        }
    }
    md.push('\n');
    Ok(md)
}

fn gemv_ceiling_section(
    runs: &[LoadedRun],
    gemv: &Best,
    stem: &str,
    colors: &Colors,
    svgs: &mut Vec<(String, String)>,
) -> Result<String> {
    let mut md = String::from("## GEMV bandwidth against the measured ceiling\n\nGEMV (one token of decoding) reads every weight once, so its bytes per second are bounded by the machine's read bandwidth (`calibration.read_gbs`, a sum over a large buffer).\n\n");
    if gemv.is_empty() {
        md.push_str("No validated GEMV records.\n\n");
        return Ok(md);
    }
    let fmts = formats_present(gemv);
    let shown = largest_per_machine(gemv);
    let series: Vec<BarSeries> = shown
        .iter()
        .map(|(k, b)| BarSeries {
            name: format!("{} {} {}", k.host, k.backend, shape(k)),
            values: fmts.iter().map(|f| b.iter().find(|(g, _)| g == f).map(|(_, e)| e.1.gbs)).collect(),
            color: Some(colors.backend(&k.host, &k.backend)),
        })
        .collect();
    let mut lines: Vec<RefLine> = Vec::new();
    for lr in runs {
        if let Some(g) = read_ceiling(lr) {
            let name = format!("{} read ceiling {} GB/s", lr.run.env.host, sig3(g));
            if !lines.iter().any(|l| l.name == name) {
                let color = Some(colors.other(lines.len()));
                lines.push(RefLine { name, value: g, color });
            }
        }
    }
    let name = format!("{stem}-gemv-ceiling.svg");
    let title = "GEMV bandwidth vs measured read ceiling";
    let cats: Vec<String> = fmts.iter().map(|f| f.to_string()).collect();
    svgs.push((
        name.clone(),
        svg::bar_chart(title, "GB/s", &cats, &series, &lines).map_err(crate::Error::Other)?,
    ));
    md.push_str(&format!("![{title}]({name})\n\n"));
    md.push_str("| Host | Backend | Shape | Format | GB/s | Read ceiling GB/s | Share of ceiling |\n|---|---|---|---|---|---|---|\n");
    for (k, b) in gemv {
        for (_, (lr, r)) in b {
            let ceil = read_ceiling(lr);
            md.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} |\n",
                cell(&k.host),
                cell(&k.backend),
                shape(k),
                cell(&claims::measured::format_label(r)),
                sig3(r.gbs),
                ceil.map_or("—".into(), sig3),
                ceil.map_or("—".into(), |c| format!("{}%", sig3(100.0 * r.gbs / c)))
            ));
        }
    }
    md.push('\n');
    Ok(md)
}

fn roofline_section(
    runs: &[LoadedRun],
    stem: &str,
    colors: &Colors,
    svgs: &mut Vec<(String, String)>,
) -> Result<String> {
    let mut md = String::from("## Roofline\n\nEach point is one validated GEMM/GEMV record at its arithmetic intensity (2·m·n·k FLOPs over the bytes it moves); each roof is a machine's measured FMA peak and read bandwidth.\n\n");
    let mut series: BTreeMap<(String, usize), Vec<(f64, f64)>> = BTreeMap::new();
    for (k, recs) in groups(runs, None) {
        for (_, r) in recs {
            if r.bytes.total == 0 || r.gflops <= 0.0 {
                continue;
            }
            let ai = 2.0 * (r.m * r.n * r.k) as f64 / r.bytes.total as f64;
            let key = (format!("{} {}", k.host, k.backend), colors.backend(&k.host, &k.backend));
            series.entry(key).or_default().push((ai, r.gflops));
        }
    }
    let mut roofs: Vec<Ceiling> = Vec::new();
    for lr in runs {
        let Some(c) = &lr.run.calibration else { continue };
        let peak = c.fma_peak_gflops.iter().map(|p| p.gflops).fold(0f64, f64::max);
        if peak > 0.0
            && c.read_gbs > 0.0
            && !roofs.iter().any(|r| r.name.starts_with(&format!("{} ", lr.run.env.host)))
        {
            roofs.push(Ceiling {
                name: format!("{} roof ({} GFLOP/s, {} GB/s)", lr.run.env.host, sig3(peak), sig3(c.read_gbs)),
                peak_gflops: peak,
                bandwidth_gbs: c.read_gbs,
                color: Some(colors.other(roofs.len())),
            });
        }
    }
    if series.is_empty() {
        md.push_str("No validated records.\n\n");
        return Ok(md);
    }
    let series: Vec<PlotSeries> = series
        .into_iter()
        .map(|((name, color), points)| PlotSeries { name, points, color: Some(color) })
        .collect();
    let name = format!("{stem}-roofline.svg");
    let title = "Roofline: measured points under each machine's roofs";
    // The projection module's roofline renderer, so every roofline in the project looks alike.
    let plot = RooflinePlot { title: title.to_string(), ceilings: roofs, series };
    svgs.push((name.clone(), roofline_plot::render_svg(&plot)?));
    md.push_str(&format!("![{title}]({name})\n\n"));
    Ok(md)
}

/// Collective records (`mpirun ... chipbench collectives`): one row per op × payload × size, with
/// nccl-tests' algorithm and bus bandwidth, and the FP8/BF16 time ratio where both ran (`m` holds
/// the element count of a collective record).
fn collectives_section(runs: &[LoadedRun]) -> String {
    let is_collective = |r: &Record| r.ranks.is_some() && r.busbw_gbs.is_some();
    let rows: Vec<(&LoadedRun, &Record)> = runs
        .iter()
        .flat_map(|lr| lr.run.records.iter().filter(|r| is_collective(r)).map(move |r| (lr, r)))
        .collect();
    if rows.is_empty() {
        return String::new();
    }
    let mut md = String::from(
        "## Collectives\n\nMedian over iterations of the slowest rank; bus bandwidth uses nccl-tests' factors \
         (all-reduce 2(n-1)/n, the others (n-1)/n). Bytes include FP8 scales.\n\n\
         | Host | Ranks | Op | Payload | Bytes | Median time | algbw GB/s | busbw GB/s | FP8/BF16 time | Valid |\n\
         |---|---|---|---|---|---|---|---|---|---|\n",
    );
    for (lr, r) in &rows {
        let payload = r.payload.as_deref().unwrap_or(&r.format);
        // The BF16 record of the same op, ranks and element count, for the FP8 ratio.
        let bf16 = rows.iter().find(|(l2, x)| {
            std::ptr::eq(*l2, *lr)
                && x.op == r.op
                && x.ranks == r.ranks
                && x.m == r.m
                && x.payload.as_deref().unwrap_or(&x.format) == "bf16"
        });
        let fp8 = matches!(payload, "e4m3" | "e5m2");
        let ratio = match bf16 {
            Some((_, b)) if fp8 && r.valid && b.valid && b.time.median_s > 0.0 => {
                format!("{:.3}", r.time.median_s / b.time.median_s)
            }
            _ => "—".into(),
        };
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} s | {} | {} | {} | {} |\n",
            cell(&lr.run.env.host),
            r.ranks.unwrap_or(0),
            cell(&r.op),
            cell(payload),
            r.bytes.total,
            sig3(r.time.median_s),
            sig3(r.algbw_gbs.unwrap_or(0.0)),
            sig3(r.busbw_gbs.unwrap_or(0.0)),
            ratio,
            if r.valid { "yes" } else { "NO" }
        ));
    }
    md.push('\n');
    md
}
