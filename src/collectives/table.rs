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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{Bytes, ErrorStats, Time};

    fn record(op: &str, format: &str, median_s: f64, total: u64) -> Record {
        Record {
            backend: "mpi".into(),
            device: "test".into(),
            op: op.into(),
            format: format.into(),
            act_format: format.into(),
            scaling: "none".into(),
            m: 256,
            n: 1,
            k: 1,
            threads: 1,
            bytes: Bytes { total, ..Bytes::default() },
            time: Time { median_s, min_s: median_s, max_s: median_s, samples: 1, ..Default::default() },
            gflops: 0.0,
            gbs: 0.0,
            error: ErrorStats::default(),
            valid: true,
            note: String::new(),
            timing: String::new(),
            memory: None,
            ranks: Some(2),
            algbw_gbs: Some(total as f64 / median_s / 1e9),
            busbw_gbs: Some(total as f64 / median_s / 2e9),
            payload: Some(format.into()),
            ..Default::default()
        }
    }

    #[test]
    fn fp8_over_bf16_ratios_pair_same_op_and_size() {
        let rows = vec![
            Row { size: 1024, record: record("all-to-all", "bf16", 4e-6, 512) },
            Row { size: 1024, record: record("all-to-all", "e4m3", 3e-6, 264) },
            Row { size: 2048, record: record("all-to-all", "e4m3", 1e-6, 528) },
            Row { size: 1024, record: record("all-gather", "bf16", 1e-6, 512) },
        ];
        let r = ratio_rows(&rows);
        assert_eq!(r.len(), 1, "no FP8 partner for all-gather, no BF16 partner at 2 KiB: {r:?}");
        assert_eq!((r[0].0.as_str(), r[0].1), ("all-to-all", 1024));
        assert!((r[0].2.unwrap() - 0.75).abs() < 1e-12 && r[0].3.is_none());
        assert!((r[0].4.unwrap() - 264.0 / 512.0).abs() < 1e-12);
        let text = render(&rows);
        assert!(text.contains("FP8/BF16 time ratio") && text.contains("0.750") && text.contains("0.516"));
        assert_eq!(text.lines().filter(|l| l.starts_with("  all-")).count(), 5, "{text}");
    }
}
