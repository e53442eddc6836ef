//! The table rank 0 prints: one row per op × size × payload in the manner of nccl-tests, then the
//! FP8/BF16 time ratio per op and size (the point of sending MoE dispatch traffic in FP8).

use super::format_size;
use crate::results::Record;
use std::fmt::Write;

/// One measured case with the size it was asked for (records only keep elements).
#[derive(Debug, Clone)]
pub struct Row {
    /// Requested size: bytes of the tensor in f32.
    pub size: u64,
    pub record: Record,
}

/// The whole table: header, one line per row, then the FP8/BF16 ratios.
pub fn render(rows: &[Row]) -> String {
    let mut s = header();
    for r in rows {
        s.push_str(&row(r));
    }
    s.push_str(&ratios(rows));
    s
}

/// Column headings.
pub fn header() -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# {:<14} {:>7} {:>8} {:>11} {:>11} {:>9} {:>11} {:>10} {:>10}  check",
        "op", "payload", "size", "elements", "bytes", "scales", "time(us)", "algbw", "busbw"
    );
    let _ = writeln!(s, "# {:>85} {:>10} {:>10}", "", "(GB/s)", "(GB/s)");
    s
}

/// One measured case.
pub fn row(row: &Row) -> String {
    let r = &row.record;
    let check = if r.valid { "ok".to_string() } else { format!("FAILED: {}", r.note) };
    format!(
        "  {:<14} {:>7} {:>8} {:>11} {:>11} {:>9} {:>11.1} {:>10.3} {:>10.3}  {check}\n",
        r.op,
        r.payload.as_deref().unwrap_or(&r.format),
        format_size(row.size),
        r.m,
        r.bytes.total,
        r.bytes.scales,
        r.time.median_s * 1e6,
        r.algbw_gbs.unwrap_or(0.0),
        r.busbw_gbs.unwrap_or(0.0),
    )
}

/// The FP8/BF16 time ratio per op and size (empty when there is nothing to compare).
pub fn ratios(rows: &[Row]) -> String {
    let mut s = String::new();
    let ratios = ratio_rows(rows);
    if ratios.is_empty() {
        return s;
    }
    let _ = writeln!(s, "#\n# FP8/BF16 time ratio (same elements; FP8 bytes include the 1x128 f32 scales)");
    let _ = writeln!(
        s,
        "# {:<14} {:>8} {:>10} {:>10} {:>12}",
        "op", "size", "e4m3/bf16", "e5m2/bf16", "bytes ratio"
    );
    let cell = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.3}"));
    for (op, size, e4, e5, bytes) in ratios {
        let _ = writeln!(
            s,
            "  {:<14} {:>8} {:>10} {:>10} {:>12}",
            op,
            format_size(size),
            cell(e4),
            cell(e5),
            cell(bytes)
        );
    }
    s
}

type RatioRow = (String, u64, Option<f64>, Option<f64>, Option<f64>);

/// Per op and size with a valid BF16 record: median time of E4M3 and E5M2 over BF16, and the
/// E4M3/BF16 byte ratio.
pub fn ratio_rows(rows: &[Row]) -> Vec<RatioRow> {
    let find = |op: &str, size: u64, payload: &str| {
        rows.iter()
            .find(|r| r.size == size && r.record.op == op && r.record.format == payload && r.record.valid)
            .map(|r| &r.record)
    };
    let mut out = Vec::new();
    for row in rows.iter().filter(|r| r.record.format == "bf16" && r.record.valid) {
        let bf = &row.record;
        let time = |p: &str| find(&bf.op, row.size, p).map(|r| r.time.median_s / bf.time.median_s);
        let (e4, e5) = (time("e4m3"), time("e5m2"));
        if e4.is_none() && e5.is_none() {
            continue;
        }
        let bytes = find(&bf.op, row.size, "e4m3").map(|r| r.bytes.total as f64 / bf.bytes.total as f64);
        out.push((bf.op.clone(), row.size, e4, e5, bytes));
    }
    out
}
