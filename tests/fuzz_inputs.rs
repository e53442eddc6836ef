//! Fuzzing without nightly: property tests that mutate valid inputs (drop, duplicate, retype,
//! extreme values, truncation, invalid UTF-8, random bytes) and feed them to every parser that
//! reads user input. The properties: no panic, and every rejection is one line that names the
//! source and a field.
//!
//! Case counts are split over the targets so the total stays ≥ 100,000 while the file runs in
//! seconds.

use proptest::prelude::*;
use serde_json::Value;
use std::path::Path;

/// One structural mutation of a JSON/TOML value tree, chosen by `sel` and `op`.
fn mutate_value(v: &mut Value, sel: u64, op: u8, depth: u32) {
    let kids = match v {
        Value::Object(m) => m.len(),
        Value::Array(a) => a.len(),
        _ => 0,
    };
    if kids > 0 && depth < 6 && sel % 3 != 0 {
        let i = (sel / 3) as usize % kids;
        let child = match v {
            Value::Object(m) => m.values_mut().nth(i),
            Value::Array(a) => a.get_mut(i),
            _ => None,
        };
        if let Some(c) = child {
            return mutate_value(c, sel / 7 + 1, op, depth + 1);
        }
    }
    match (op % 10, &mut *v) {
        (0, Value::Object(m)) if !m.is_empty() => {
            let k = m.keys().nth(sel as usize % m.len()).cloned().unwrap();
            m.remove(&k);
        }
        (1, Value::Object(m)) => {
            m.insert(format!("unknown_field_{sel}"), Value::from(1));
        }
        (2, Value::Array(a)) if !a.is_empty() => {
            let x = a[sel as usize % a.len()].clone();
            a.push(x);
        }
        (3, _) => *v = Value::from("not a number"),
        (4, _) => *v = Value::from(-1),
        (5, _) => *v = Value::from(1e308),
        (6, _) => *v = Value::Null,
        (7, _) => *v = Value::from(u64::MAX),
        (8, _) => *v = Value::Array(vec![]),
        _ => *v = Value::from(true),
    }
}

/// Byte-level damage after serialising: truncate, flip, or splice invalid UTF-8.
fn damage_bytes(mut b: Vec<u8>, sel: u64, op: u8) -> Vec<u8> {
    if b.is_empty() {
        return b;
    }
    let at = sel as usize % b.len();
    match op % 4 {
        0 => b.truncate(at),
        1 => b[at] ^= 1 << (sel % 8),
        2 => b.splice(at..at, [0xFF, 0xFE, 0xC3]).for_each(drop),
        _ => {}
    }
    b
}

/// The property every parser must meet on arbitrary bytes.
fn check_rejection(result: Result<(), chipbench::Error>, source: &str) -> Result<(), TestCaseError> {
    if let Err(e) = result {
        let msg = e.to_string();
        prop_assert!(!msg.contains('\n'), "multi-line error: {msg}");
        prop_assert!(msg.contains(source), "error does not name the source {source}: {msg}");
    }
    Ok(())
}

fn sample_run_json() -> Value {
    use chipbench::results::*;
    let record = Record {
        backend: "cpu".into(),
        device: "test cpu".into(),
        op: "gemv".into(),
        format: "e4m3".into(),
        act_format: "f32".into(),
        scaling: "deepseek".into(),
        m: 1,
        n: 4096,
        k: 4096,
        threads: 2,
        bytes: Bytes { weights: 1 << 24, scales: 4096, activations: 16384, outputs: 16384, total: 16810000 },
        time: Time { median_s: 1e-3, min_s: 9e-4, max_s: 2e-3, samples: 20 },
        gflops: 33.5,
        gbs: 16.8,
        error: ErrorStats { max_abs: 1e-5, max_rel: 1e-7, diff: 1e-12 },
        valid: true,
        note: String::new(),
        timing: "wall-clock".into(),
        memory: None,
        ranks: None,
        algbw_gbs: None,
        busbw_gbs: None,
        payload: None,
    };
    let run = Run {
        schema_version: SCHEMA_VERSION,
        run_id: "fuzz".into(),
        created: "2026-01-01T00:00:00Z".into(),
        tool: "chipbench".into(),
        suite: "default".into(),
        env: Env::default(),
        calibration: Some(Calibration::default()),
        records: vec![record],
        complete: true,
        notes: vec![],
    };
    serde_json::to_value(&run).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 20_000, failure_persistence: None, .. ProptestConfig::default() })]

    #[test]
    fn results_json_mutations_never_panic(muts in prop::collection::vec((any::<u64>(), any::<u8>()), 1..4),
                                         damage in (any::<u64>(), any::<u8>())) {
        let mut v = sample_run_json();
        for (sel, op) in muts {
            mutate_value(&mut v, sel, op, 0);
        }
        let bytes = damage_bytes(serde_json::to_vec(&v).unwrap(), damage.0, damage.1);
        let r = chipbench::results::Run::parse(&bytes, Path::new("fuzz.json")).map(|_| ());
        check_rejection(r, "fuzz.json")?;
    }

    #[test]
    fn results_json_random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let r = chipbench::results::Run::parse(&bytes, Path::new("noise.json")).map(|_| ());
        check_rejection(r, "noise.json")?;
    }
}

#[test]
fn the_unmutated_sample_parses() {
    let bytes = serde_json::to_vec(&sample_run_json()).unwrap();
    chipbench::results::Run::parse(&bytes, Path::new("ok.json")).unwrap();
}

#[test]
fn a_dropped_record_field_is_named() {
    let mut v = sample_run_json();
    v["records"][0].as_object_mut().unwrap().remove("gflops");
    let e =
        chipbench::results::Run::parse(&serde_json::to_vec(&v).unwrap(), Path::new("x.json")).unwrap_err();
    assert!(e.to_string().contains("gflops"), "{e}");
}
