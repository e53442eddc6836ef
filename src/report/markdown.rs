//! The Markdown report of one run: the environment and calibration, then one table per backend ×
//! op × shape with what a format costs (bytes per parameter, MiB, ratios to BF16 and F32, peak
//! RSS) and buys (time, throughput, bandwidth), the error against f64, validity, and the speed
//! relative to candle on the same problem. `chipbench run` prints the same tables.

use super::Exporter;
use crate::formats::Format;
use crate::measure::ceilings::{self, above_ceiling};
use crate::results::{Calibration, Env, HostLoad, Record, Run};
use crate::Result;
use std::fmt::Write;

const MIB: f64 = (1u64 << 20) as f64;

pub struct Markdown;

impl Exporter for Markdown {
    fn extension(&self) -> &'static str {
        "md"
    }
    fn render(&self, run: &Run) -> Result<String> {
        Ok(render(run))
    }
}

/// The whole report.
pub fn render(run: &Run) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# chipbench run {}\n", run.run_id);
    let e = &run.env;
    let _ = writeln!(s, "- suite: `{}`, started {}, {}", run.suite, run.created, run.tool);
    let _ = writeln!(
        s,
        "- host: {} — {} ({}), {} cores, {:.1} GiB",
        e.host,
        e.cpu_model,
        e.arch,
        e.cores,
        e.memory_bytes as f64 / (MIB * 1024.0)
    );
    if let Some(line) = host_id_line(e) {
        let _ = writeln!(s, "{line}");
    }
    if let Some(line) = load_line(e) {
        let _ = writeln!(s, "{line}");
    }
    let _ = writeln!(
        s,
        "- CPU features: {}",
        if e.cpu_features.is_empty() { "-".into() } else { e.cpu_features.join(" ") }
    );
    let _ = writeln!(s, "- os: {}; {}; git {}", e.os, e.rustc, e.git_revision);
    for d in &e.devices {
        let api = if d.api.is_empty() { String::new() } else { format!(", {}", d.api) };
        let drv = if d.driver.is_empty() { String::new() } else { format!(", driver {}", d.driver) };
        let _ = writeln!(s, "- device: {} ({}{api}{drv})", d.name, d.kind);
    }
    if let Some(c) = &run.calibration {
        let peaks: Vec<String> =
            c.fma_peak_gflops.iter().map(|p| format!("{:.1} ({}t)", p.gflops, p.threads)).collect();
        let _ = writeln!(
            s,
            "- calibration: FMA peak GFLOP/s {}; STREAM GB/s copy {:.1}, scale {:.1}, add {:.1}, triad {:.1}; read {:.1} GB/s",
            peaks.join(", "),
            c.stream_gbs.copy,
            c.stream_gbs.scale,
            c.stream_gbs.add,
            c.stream_gbs.triad,
            c.read_gbs
        );
        if c.compute_peaks.iter().any(|p| !p.unit.starts_with("f32-fma")) {
            // Every compute unit's roof where there is more than the FMA one (BF16 dot units).
            let mut units: Vec<String> = Vec::new();
            for p in &c.compute_peaks {
                let entry = format!("{:.1} ({}t)", p.gflops, p.threads);
                match units.iter_mut().find(|u| u.starts_with(&format!("{} ", p.unit))) {
                    Some(u) => *u += &format!(", {entry}"),
                    None => units.push(format!("{} {entry}", p.unit)),
                }
            }
            let _ = writeln!(s, "- compute roofs, GFLOP/s: {}", units.join("; "));
        }
        if let Some(line) = read_ceiling_line(c) {
            let _ = writeln!(s, "{line}");
        }
    }
    if !run.complete {
        let _ = writeln!(
            s,
            "\n**Incomplete run:** interrupted; the {} records below are complete and valid as measured.",
            run.records.len()
        );
    }
    s.push('\n');
    s.push_str(&tables(run));
    if !run.notes.is_empty() {
        let _ = writeln!(s, "## Notes\n");
        for n in &run.notes {
            let _ = writeln!(s, "- {n}");
        }
        s.push('\n');
    }
    let _ = writeln!(s, "{}", LEGEND);
    s
}

const LEGEND: &str =
    "Columns: bytes/param, weights and scales are logical (codes + scales of the weight matrix); \
×BF16 and ×F32 are weight bytes relative to the same matrix in BF16 and F32; RSS is the peak resident set of \
the workload in a fresh child process minus a baseline child that opened the backend and built nothing; time \
is the median of the samples (each sample repeats the call for at least 1 ms and is divided back); ±95% is the \
half-width of the bootstrap 95 % confidence interval of that median, relative to it; rate is GFLOP/s for GEMM and billions of weights per second (Gw/s) for GEMV; \
GB/s counts logical bytes of all operands; error is the max error relative to the largest |reference| value, \
against an f64 reference on the same quantized inputs; valid FLAGGED: above the read ceiling or the FMA peak by \
more than 5 %, so not evidence for anything; operands says whether the samples read cold operands \
(rotating copies past 4× the last-level cache; the MiB are the rotated working set), warm ones (partly cached) or \
cache-resident ones; compute names the units that ran the arithmetic; vs candle is candle's median time over this one's \
(above 1 = faster than candle).";

/// Records grouped by backend × threads × op × shape, in first-seen order.
fn groups(run: &Run) -> Vec<Vec<&Record>> {
    let mut out: Vec<Vec<&Record>> = Vec::new();
    for r in &run.records {
        let key = |x: &Record| (x.backend.clone(), x.threads, x.op.clone(), x.m, x.n, x.k);
        match out.iter_mut().find(|g| key(g[0]) == key(r)) {
            Some(g) => g.push(r),
            None => out.push(vec![r]),
        }
    }
    out
}

/// The tables only (what `chipbench run` prints).
pub fn tables(run: &Run) -> String {
    let mut s = crate::modelstep::steps::render(run);
    for g in groups(run) {
        let r0 = g[0];
        let _ = writeln!(
            s,
            "## {} {}×{}×{} — {} ({} thread{}, {})\n",
            r0.op,
            r0.m,
            r0.n,
            r0.k,
            r0.backend,
            r0.threads,
            if r0.threads == 1 { "" } else { "s" },
            r0.device
        );
        let header = [
            "format",
            "scaling",
            "bytes/param",
            "weights MiB",
            "scales MiB",
            "×BF16",
            "×F32",
            "RSS MiB",
            "time",
            "±95%",
            "rate",
            "GB/s",
            "operands",
            "compute",
            "error",
            "valid",
            "vs candle",
        ];
        // A model step's slice serves every product of that shape (q_a, kv_a, the router and the
        // experts of DeepSeek-V3 share one): one row per measurement, the products it stands for
        // listed under the table.
        let g = one_per_measurement(&g);
        let rows: Vec<Vec<String>> = g.iter().map(|(r, _)| row(run, r)).collect();
        let _ = write!(s, "{}", table(&header, &rows));
        let mut notes: Vec<String> = g
            .iter()
            .filter(|(_, steps)| !steps.is_empty())
            .map(|(r, steps)| format!("- {} measures {}", format_label(r), steps.join("; ")))
            .collect();
        let g: Vec<&Record> = g.iter().map(|(r, _)| *r).collect();
        notes.extend(
            g.iter().filter(|r| !r.note.is_empty()).map(|r| format!("- {}: {}", format_label(r), r.note)),
        );
        notes.extend(g.iter().filter(|r| above_ceiling(r, run)).map(|r| flag_note(run, r)));
        if !notes.is_empty() {
            let _ = writeln!(s, "\n{}", notes.join("\n"));
        }
        s.push('\n');
    }
    s
}

/// The records of one table with the model-step records of one measurement (the same format,
/// scaling, activations and samples) folded into their first, each with the products it stands
/// for (`model phase (step format) · layer: product`); records that are not model steps stand alone.
fn one_per_measurement<'a>(g: &[&'a Record]) -> Vec<(&'a Record, Vec<String>)> {
    let mut out: Vec<(&Record, Vec<String>)> = Vec::new();
    for &r in g {
        let Some(ms) = &r.model_step else {
            out.push((r, Vec::new()));
            continue;
        };
        let what = format!("{} {} ({}) · {}: {}", ms.model, ms.phase, ms.step_format, ms.layer, ms.product);
        let same = |x: &Record| {
            x.model_step.is_some()
                && (&x.format, &x.scaling, &x.act_format) == (&r.format, &r.scaling, &r.act_format)
                && x.time == r.time
        };
        match out.iter_mut().find(|(x, _)| same(x)) {
            Some((_, steps)) => {
                if !steps.contains(&what) {
                    steps.push(what);
                }
            }
            None => out.push((r, vec![what])),
        }
    }
    out
}

fn format_label(r: &Record) -> String {
    let act = if r.act_format.is_empty() || r.act_format == "f32" {
        String::new()
    } else {
        format!(" (a={})", r.act_format)
    };
    let scaling = if r.scaling == "none" { String::new() } else { format!(" {}", r.scaling) };
    format!("{}{scaling}{act}", r.format)
}

fn row(run: &Run, r: &Record) -> Vec<String> {
    let params = (r.n * r.k) as f64;
    let w_logical = r.memory.map_or(r.bytes.weights + r.bytes.scales, |m| m.logical_weight_bytes) as f64;
    let w_scales = w_logical - r.bytes.weights as f64;
    let rss = r
        .memory
        .and_then(|m| Some(m.rss_peak_bytes?.saturating_sub(m.rss_baseline_bytes.unwrap_or(0))))
        .map_or("-".into(), |b| format!("{:.1}", b as f64 / MIB));
    let act = if r.act_format.is_empty() || r.act_format == "f32" {
        r.format.clone()
    } else {
        format!("{} (a={})", r.format, r.act_format)
    };
    let (time, rate, gbs) = if r.valid && r.time.samples > 0 {
        let rate = if r.op == "gemv" {
            format!("{:.2} Gw/s", params / r.time.median_s / 1e9)
        } else {
            format!("{:.1} GFLOP/s", r.gflops)
        };
        (human_time(r.time.median_s), rate, format!("{:.1}", r.gbs))
    } else {
        ("-".into(), "-".into(), "-".into())
    };
    let ci = match r.time.ci_half_width_rel() {
        Some(h) if r.valid => format!("{:.1}%", 100.0 * h),
        _ => "-".into(),
    };
    let residency = match (r.residency.as_str(), r.working_set_bytes) {
        ("", _) => "-".into(),
        (l, Some(ws)) => format!("{l} ({:.0} MiB)", ws as f64 / MIB),
        (l, None) => l.to_string(),
    };
    let compute = if r.compute.is_empty() { "-".into() } else { r.compute.clone() };
    vec![
        act,
        r.scaling.clone(),
        format!("{:.4}", w_logical / params),
        format!("{:.2}", r.bytes.weights as f64 / MIB),
        format!("{:.3}", w_scales.max(0.0) / MIB),
        format!("{:.4}", w_logical / (params * Format::BF16.bytes() as f64)),
        format!("{:.4}", w_logical / (params * Format::F32.bytes() as f64)),
        rss,
        time,
        ci,
        rate,
        gbs,
        residency,
        compute,
        if r.valid || r.error != Default::default() {
            format!("{:.1e}", r.error.max_rel)
        } else {
            "-".into()
        },
        if !r.valid {
            "NO".into()
        } else if above_ceiling(r, run) {
            "FLAGGED".into()
        } else {
            "yes".into()
        },
        vs_candle(run, r),
    ]
}

/// The read ceiling's provenance: which microbenchmark won, its range over re-measurements, the
/// buffer against the LLC. `None` for calibrations written before these keys existed.
fn read_ceiling_line(c: &Calibration) -> Option<String> {
    if c.read_variant.is_empty() {
        return None;
    }
    let mut line = format!(
        "- read ceiling: {:.1} GB/s ({}, best of {} read microbenchmarks",
        c.read_gbs,
        c.read_variant,
        c.read_variants.len()
    );
    if let Some([lo, hi]) = c.read_gbs_range {
        let _ = write!(line, "; {lo:.1}–{hi:.1} GB/s over {} re-measurements", c.read_remeasures);
    }
    let _ = write!(line, "; buffer {:.0} MiB", c.read_buffer_bytes as f64 / MIB);
    if let Some(llc) = c.llc_bytes.filter(|l| *l > 0) {
        let _ = write!(
            line,
            " = {:.1}× the {:.0} MiB LLC",
            c.read_buffer_bytes as f64 / llc as f64,
            llc as f64 / MIB
        );
    }
    line += if c.read_pinned { "; threads pinned)" } else { "; threads not pinned)" };
    Some(line)
}

/// Vendor, family/model/stepping and clocks; `None` for files written before these keys.
fn host_id_line(e: &Env) -> Option<String> {
    let mut parts = Vec::new();
    if !e.cpu_vendor.is_empty() {
        parts.push(e.cpu_vendor.clone());
    }
    if let (Some(f), Some(m)) = (e.cpu_family, e.cpu_model_number) {
        let step = e.cpu_stepping.map(|s| format!(" stepping {s}")).unwrap_or_default();
        parts.push(format!("family {f} model {m}{step}"));
    }
    if let Some(b) = e.base_clock_mhz {
        parts.push(format!("base clock {b:.0} MHz ({})", e.base_clock_source));
    }
    if let Some(c) = e.measured_clock_mhz {
        parts.push(format!("measured clock {c:.0} MHz (dependent adds)"));
    }
    (!parts.is_empty()).then(|| format!("- CPU id: {}", parts.join(", ")))
}

/// Load average before and after, and the share of CPU time stolen by the hypervisor between.
fn load_line(e: &Env) -> Option<String> {
    let avg = |l: &HostLoad| format!("{:.2} {:.2} {:.2}", l.loadavg[0], l.loadavg[1], l.loadavg[2]);
    let mut parts = Vec::new();
    if let Some(b) = &e.load_before {
        parts.push(format!("load average before {}", avg(b)));
    }
    if let Some(a) = &e.load_after {
        parts.push(format!("after {}", avg(a)));
    }
    if let Some(f) =
        e.load_before.as_ref().zip(e.load_after.as_ref()).and_then(|(b, a)| b.steal_fraction_until(a))
    {
        parts.push(format!("steal time during the run {:.1} %", f * 100.0));
    }
    (!parts.is_empty()).then(|| format!("- host load: {}", parts.join("; ")))
}

/// Why a record is flagged, with the numbers.
fn flag_note(run: &Run, r: &Record) -> String {
    let tol = 100.0 * ceilings::TOLERANCE;
    let mut why = Vec::new();
    if let Some(c) = &run.calibration {
        if r.gbs > c.read_gbs * (1.0 + ceilings::TOLERANCE) {
            why.push(format!(
                "{:.1} GB/s is above the {:.1} GB/s read ceiling by more than {tol:.0} %",
                r.gbs, c.read_gbs
            ));
        }
        if let Some(p) = c.fma_peak_gflops.iter().find(|p| p.threads == r.threads) {
            if r.gflops > p.gflops * (1.0 + ceilings::TOLERANCE) {
                why.push(format!(
                    "{:.1} GFLOP/s is above the {:.1} GFLOP/s FMA peak by more than {tol:.0} %",
                    r.gflops, p.gflops
                ));
            }
        }
    }
    if why.is_empty() {
        why.push(format!("flagged: {}", r.flags.join(", ")));
    }
    format!(
        "- {}: FLAGGED, not evidence: {} (cache reuse or a wrong byte count)",
        format_label(r),
        why.join("; ")
    )
}

fn vs_candle(run: &Run, r: &Record) -> String {
    if r.backend == "candle" || !r.valid {
        return "-".into();
    }
    run.records
        .iter()
        .find(|c| {
            c.backend == "candle"
                && c.valid
                && c.time.median_s > 0.0
                && (
                    c.op.as_str(),
                    c.m,
                    c.n,
                    c.k,
                    c.format.as_str(),
                    c.scaling.as_str(),
                    c.act_format.as_str(),
                    c.threads,
                ) == (
                    r.op.as_str(),
                    r.m,
                    r.n,
                    r.k,
                    r.format.as_str(),
                    r.scaling.as_str(),
                    r.act_format.as_str(),
                    r.threads,
                )
        })
        .map_or("-".into(), |c| format!("{:.2}×", c.time.median_s / r.time.median_s))
}

/// 1.23 s, 4.56 ms, 7.89 µs, 12 ns.
pub fn human_time(s: f64) -> String {
    if s >= 1.0 {
        format!("{s:.2} s")
    } else if s >= 1e-3 {
        format!("{:.2} ms", s * 1e3)
    } else if s >= 1e-6 {
        format!("{:.2} µs", s * 1e6)
    } else {
        format!("{:.0} ns", s * 1e9)
    }
}

/// A pipe table with padded columns (readable as text and as Markdown). Numbers right-aligned.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let w: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter().map(|r| r[i].chars().count()).chain([header[i].chars().count()]).max().unwrap_or(1)
        })
        .collect();
    let numeric: Vec<bool> = (0..header.len())
        .map(|i| i > 1 && rows.iter().all(|r| r[i].starts_with(|c: char| c.is_ascii_digit() || c == '-')))
        .collect();
    let line = |cells: Vec<String>| format!("| {} |\n", cells.join(" | "));
    let pad = |i: usize, c: &str| {
        let n = w[i].saturating_sub(c.chars().count());
        if numeric[i] {
            format!("{}{c}", " ".repeat(n))
        } else {
            format!("{c}{}", " ".repeat(n))
        }
    };
    let mut s = line(header.iter().enumerate().map(|(i, h)| pad(i, h)).collect());
    s += &line(
        (0..header.len())
            .map(|i| if numeric[i] { format!("{}:", "-".repeat(w[i] - 1)) } else { "-".repeat(w[i]) })
            .collect(),
    );
    for r in rows {
        s += &line(r.iter().enumerate().map(|(i, c)| pad(i, c)).collect());
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_naturally() {
        assert_eq!(human_time(2.0), "2.00 s");
        assert_eq!(human_time(0.0042), "4.20 ms");
        assert_eq!(human_time(3.5e-6), "3.50 µs");
        assert_eq!(human_time(4e-8), "40 ns");
    }

    #[test]
    fn table_pads_and_aligns() {
        let t = table(
            &["fmt", "x", "n"],
            &[vec!["bf16".into(), "a".into(), "12".into()], vec!["e4m3".into(), "bb".into(), "3".into()]],
        );
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "| fmt  | x  |  n |");
        assert_eq!(lines[1], "| ---- | -- | -: |");
        assert_eq!(lines[3], "| e4m3 | bb |  3 |");
    }
}
