//! Records above their ceiling. A valid GEMM/GEMV on the host CPU cannot read faster than the
//! read ceiling nor compute faster than the FMA peak, both measured by microbenchmarks that
//! share no code with the kernels ([`super::read_bw`], [`super::fma`]). A record that does is not
//! a discovery: its weights stayed in a cache, its byte count is wrong, or the ceiling was
//! measured badly. Either way its figure cannot be trusted, so it is flagged in the JSON
//! (`Record::flags`), marked in the table and never counted as evidence for a claim.

use crate::results::{Calibration, Record, Run};

/// `Record::flags` entry: bytes/s more than [`TOLERANCE`] above `calibration.read_gbs`.
pub const ABOVE_READ: &str = "above-read-ceiling";
/// `Record::flags` entry: FLOP/s more than [`TOLERANCE`] above the FMA peak at its threads.
pub const ABOVE_COMPUTE: &str = "above-compute-peak";
/// How far above a ceiling noise may carry a record before it is flagged.
pub const TOLERANCE: f64 = 0.05;

/// Whether `r` ran on the CPU the calibration measured (the CPU backend, candle's CPU device,
/// or a wgpu software rasterizer on it); GPU records have their own memory.
pub fn on_host_cpu(r: &Record, run: &Run) -> bool {
    r.backend == "cpu"
        || r.backend == "candle"
        || run.env.devices.iter().any(|d| d.name == r.device && (d.kind == "cpu" || d.kind == "software"))
}

/// Whether the FMA peak bounds `r`'s arithmetic: not when it ran on dot-product or matrix units
/// (`bf16-dot`, AMX, cooperative matrices), which out-run the FMA loop legitimately.
fn fma_bounds(r: &Record) -> bool {
    let c = r.compute.to_ascii_lowercase();
    !(c.contains("dot") || c.contains("amx") || c.contains("coop"))
}

/// The ceiling flags `cal` implies for `r` (empty when none applies or `r` is not a valid
/// GEMM/GEMV on the host CPU — the caller checks the latter with [`on_host_cpu`]).
pub fn ceiling_flags(r: &Record, cal: &Calibration) -> Vec<String> {
    let mut out = Vec::new();
    if !r.valid || !(r.op == "gemm" || r.op == "gemv") || r.time.median_s <= 0.0 {
        return out;
    }
    if cal.read_gbs > 0.0 && r.gbs > cal.read_gbs * (1.0 + TOLERANCE) {
        out.push(ABOVE_READ.to_string());
    }
    let peak = cal.fma_peak_gflops.iter().find(|p| p.threads == r.threads && p.gflops > 0.0);
    if let Some(p) = peak {
        if fma_bounds(r) && r.gflops > p.gflops * (1.0 + TOLERANCE) {
            out.push(ABOVE_COMPUTE.to_string());
        }
    }
    out
}

/// Set `flags` of every record of `run` from its calibration (replacing earlier ceiling flags,
/// keeping any other). Returns how many records are flagged.
pub fn flag_run(run: &mut Run) -> usize {
    let Some(cal) = run.calibration.clone() else { return 0 };
    let mut flagged = 0;
    for i in 0..run.records.len() {
        let host = on_host_cpu(&run.records[i], run);
        let r = &mut run.records[i];
        r.flags.retain(|f| f != ABOVE_READ && f != ABOVE_COMPUTE);
        if host {
            r.flags.extend(ceiling_flags(r, &cal));
        }
        flagged += usize::from(is_flagged(r));
    }
    flagged
}

/// Whether `r` carries a ceiling flag.
pub fn is_flagged(r: &Record) -> bool {
    r.flags.iter().any(|f| f == ABOVE_READ || f == ABOVE_COMPUTE)
}

/// Whether `r` is above a ceiling: flagged in the file, or (for files written before flags
/// existed) above the ceilings of `run`'s calibration now.
pub fn above_ceiling(r: &Record, run: &Run) -> bool {
    is_flagged(r)
        || (on_host_cpu(r, run) && run.calibration.as_ref().is_some_and(|c| !ceiling_flags(r, c).is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{Env, ThreadPeak, Time};

    fn rec(op: &str, gbs: f64, gflops: f64) -> Record {
        Record {
            backend: "cpu".into(),
            op: op.into(),
            threads: 2,
            gbs,
            gflops,
            valid: true,
            time: Time { median_s: 1e-3, min_s: 1e-3, max_s: 1e-3, samples: 5, ..Default::default() },
            ..Default::default()
        }
    }

    fn run(records: Vec<Record>) -> Run {
        Run {
            schema_version: crate::results::SCHEMA_VERSION,
            run_id: "t".into(),
            created: String::new(),
            tool: String::new(),
            suite: String::new(),
            env: Env::default(),
            calibration: Some(Calibration {
                read_gbs: 40.0,
                fma_peak_gflops: vec![
                    ThreadPeak { threads: 1, gflops: 50.0 },
                    ThreadPeak { threads: 2, gflops: 100.0 },
                ],
                ..Default::default()
            }),
            records,
            complete: true,
            notes: vec![],
        }
    }

    #[test]
    fn flags_records_beyond_five_percent() {
        let mut gpu = rec("gemv", 400.0, 1.0);
        gpu.backend = "wgpu".into();
        gpu.device = "a GPU".into();
        let mut invalid = rec("gemv", 100.0, 1.0);
        invalid.valid = false;
        let mut dot = rec("gemm", 1.0, 150.0);
        dot.compute = "bf16-dot avx512_bf16".into();
        let mut stale = rec("gemv", 41.0, 1.0);
        stale.flags = vec![ABOVE_READ.into(), "other".into()];
        let mut r = run(vec![
            rec("gemv", 41.9, 1.0),  // within noise of the ceiling
            rec("gemv", 42.1, 1.0),  // above by more than 5 %
            rec("gemm", 1.0, 106.0), // above the 2-thread FMA peak
            gpu,
            invalid,
            dot,
            stale,
        ]);
        assert_eq!(flag_run(&mut r), 2);
        let flags: Vec<&Vec<String>> = r.records.iter().map(|r| &r.flags).collect();
        assert!(flags[0].is_empty());
        assert_eq!(flags[1], &vec![ABOVE_READ.to_string()]);
        assert_eq!(flags[2], &vec![ABOVE_COMPUTE.to_string()]);
        assert!(flags[3].is_empty() && flags[4].is_empty() && flags[5].is_empty());
        // A re-flagging drops a stale ceiling flag and keeps the others.
        assert_eq!(flags[6], &vec!["other".to_string()]);
        // A file written before flags existed is screened from its calibration.
        let mut old = run(vec![rec("gemv", 50.0, 1.0)]);
        assert!(above_ceiling(&old.records[0], &old));
        old.calibration = None;
        assert!(!above_ceiling(&old.records[0], &old));
    }

    #[test]
    fn flags_round_trip_and_stay_out_of_old_files() {
        let mut r = run(vec![rec("gemv", 10.0, 1.0), rec("gemv", 50.0, 1.0)]);
        flag_run(&mut r);
        let json = r.to_json();
        assert_eq!(json.matches("\"flags\"").count(), 1, "{json}");
        let back = Run::parse(json.as_bytes(), std::path::Path::new("x.json")).unwrap();
        assert!(!is_flagged(&back.records[0]) && is_flagged(&back.records[1]));
    }
}
