//! `chipbench report` renders collective records (from `mpirun ... chipbench collectives`) with
//! their bus bandwidth and the FP8/BF16 time ratio.

use chipbench::results::*;

fn record(payload: &str, bytes: u64, time: f64) -> Record {
    Record {
        backend: "mpi".into(),
        device: "Open MPI".into(),
        op: "all-to-all".into(),
        format: payload.into(),
        act_format: payload.into(),
        scaling: "none".into(),
        m: 1 << 20,
        n: 1,
        k: 1,
        threads: 1,
        bytes: Bytes { weights: 0, scales: 0, activations: 0, outputs: 0, total: bytes },
        time: Time { median_s: time, min_s: time, max_s: time, samples: 10 },
        gflops: 0.0,
        gbs: bytes as f64 / time / 1e9,
        error: ErrorStats::default(),
        valid: true,
        note: String::new(),
        timing: "wall-clock".into(),
        memory: None,
        ranks: Some(2),
        algbw_gbs: Some(bytes as f64 / time / 1e9),
        busbw_gbs: Some(bytes as f64 / time / 2e9),
        payload: Some(payload.into()),
        ..Default::default()
    }
}

#[test]
fn collective_records_get_a_table_with_the_fp8_ratio() {
    let dir = tempfile::tempdir().unwrap();
    let run = Run {
        schema_version: SCHEMA_VERSION,
        run_id: "coll".into(),
        created: "2026-01-01T00:00:00Z".into(),
        tool: "chipbench".into(),
        suite: "collectives".into(),
        env: Env { host: "node1".into(), ..Env::default() },
        calibration: None,
        records: vec![record("bf16", 2 << 20, 2e-3), record("e4m3", 1_081_344, 1e-3)],
        complete: true,
        notes: vec![],
    };
    let input = dir.path().join("coll.json");
    std::fs::write(&input, run.to_json()).unwrap();
    let out = dir.path().join("report.md");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_chipbench"))
        .args(["report", input.to_str().unwrap(), "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    let md = std::fs::read_to_string(&out).unwrap();
    assert!(md.contains("## Collectives"), "{md}");
    let row = md.lines().find(|l| l.contains("| e4m3 |")).expect("an e4m3 row");
    assert!(row.contains("| 0.500 |") && row.contains("| 1081344 |"), "{row}");
}
