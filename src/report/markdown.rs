//! The Markdown report of one run: the environment and calibration, then one table per backend ×
//! op × shape with what a format costs (bytes per parameter, MiB, ratios to BF16 and F32, peak
//! RSS) and buys (time, throughput, bandwidth), the error against f64, validity, and the speed
//! relative to candle on the same problem. `chipbench run` prints the same tables.

use super::Exporter;
use crate::formats::Format;
use crate::results::{Record, Run};
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
is the median of the samples; rate is GFLOP/s for GEMM and billions of weights per second (Gw/s) for GEMV; \
GB/s counts logical bytes of all operands; error is the max error relative to the largest |reference| value, \
against an f64 reference on the same quantized inputs; vs candle is candle's median time over this one's \
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
    let mut s = String::new();
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
            "rate",
            "GB/s",
            "error",
            "valid",
            "vs candle",
            "compute",
        ];
        let rows: Vec<Vec<String>> = g.iter().map(|r| row(run, r)).collect();
        let _ = write!(s, "{}", table(&header, &rows));
        let notes: Vec<String> = g
            .iter()
            .filter(|r| !r.note.is_empty())
            .map(|r| format!("- {}: {}", format_label(r), r.note))
            .collect();
        if !notes.is_empty() {
            let _ = writeln!(s, "\n{}", notes.join("\n"));
        }
        s.push('\n');
    }
    s
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
        rate,
        gbs,
        if r.valid || r.error != Default::default() {
            format!("{:.1e}", r.error.max_rel)
        } else {
            "-".into()
        },
        if r.valid { "yes".into() } else { "NO".into() },
        vs_candle(run, r),
        if r.compute.is_empty() { "-".into() } else { r.compute.clone() },
    ]
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
