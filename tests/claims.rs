//! The claims catalogue and its verdicts: the embedded TOML loads strictly, every claim is either
//! checked or says why it cannot be, the verdict rules react to the numbers, and the table people
//! read is pinned by a snapshot (regenerate with `UPDATE_SNAPSHOTS=1 cargo test --release --test claims`).

use chipbench::claims::{self, render, Catalogue, Inputs, LoadedRun, Verdict};
use chipbench::report::merge;
use std::path::{Path, PathBuf};

fn fixture_runs() -> Vec<LoadedRun> {
    let loaded = merge::load(&[PathBuf::from("tests/fixtures/results")]);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert_eq!(loaded.runs.len(), 2);
    loaded.runs
}

/// Compare with a checked-in snapshot, or rewrite it when UPDATE_SNAPSHOTS is set.
fn snapshot(name: &str, actual: &str) {
    let path = Path::new("tests/fixtures/expected").join(name);
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (create it with UPDATE_SNAPSHOTS=1)", path.display()));
    if expected != actual {
        let line = expected.lines().zip(actual.lines()).position(|(a, b)| a != b);
        let at = line.unwrap_or(expected.lines().count().min(actual.lines().count()));
        panic!(
            "{} differs from the snapshot at line {}:\n expected: {:?}\n   actual: {:?}\n(rerun with UPDATE_SNAPSHOTS=1 if the change is intended)",
            path.display(),
            at + 1,
            expected.lines().nth(at),
            actual.lines().nth(at)
        );
    }
}

#[test]
fn embedded_catalogue_covers_the_required_claims() {
    let cat = Catalogue::embedded().unwrap();
    for id in [
        "fp8-bits-per-parameter",
        "fp8-halves-memory",
        "fp8-more-throughput",
        "ue8m0-for-domestic-chips",
        "ascend-slower-interconnect",
        "four-x-compute-gap",
        "training-more-demanding",
        "ascend-fit-for-inference",
        "h20-more-reliable",
    ] {
        assert!(cat.claims.iter().any(|c| c.id == id), "missing claim {id}");
    }
    for c in &cat.claims {
        assert!(!c.statement.is_empty() && !c.evidence.is_empty() && !c.rule.is_empty(), "{}", c.id);
        assert_eq!(c.check.is_some(), c.not_testable.is_none(), "{}", c.id);
        for s in &c.sources {
            let src = cat.source(s).unwrap();
            assert!(!src.title.is_empty() && !src.date.is_empty());
        }
    }
    assert!(cat.claims.iter().filter(|c| c.not_testable.is_some()).count() >= 2);
}

#[test]
fn catalogue_refuses_unknown_keys_and_bad_references() {
    let base = "[[source]]\nid = \"s\"\ntitle = \"t\"\noutlet = \"o\"\ndate = \"d\"\n\n[[claim]]\nid = \"c\"\ncategory = \"memory\"\nsources = [\"s\"]\nstatement = \"x\"\nevidence = \"y\"\nrule = \"z\"\n";
    let ok = format!("{base}not_testable = \"because\"\n");
    assert!(Catalogue::parse(Path::new("c.toml"), &ok).is_ok());
    let cases = [
        (format!("{ok}colour = \"red\"\n"), "colour"),
        (format!("{base}[claim.check]\nkind = \"gemv-speedup\"\nbaseline = \"bf16\"\nsupported_at = 1.5\npartly_at = 1.1\nextra = 1\n"), "extra"),
        (format!("{base}[claim.check]\nkind = \"telepathy\"\n"), "telepathy"),
        (ok.replace("sources = [\"s\"]", "sources = [\"nope\"]"), "nope"),
        (base.to_string(), "exactly one"),
        (ok.replace("category = \"memory\"", "category = \"vibes\""), "vibes"),
    ];
    for (text, needle) in cases {
        let e = Catalogue::parse(Path::new("c.toml"), &text).unwrap_err().to_string();
        assert!(e.contains("c.toml") && e.contains(needle), "{e}");
        assert!(!e.contains('\n'), "one line: {e}");
    }
}

#[test]
fn measured_claims_need_runs_and_get_verdicts_from_them() {
    let cat = Catalogue::embedded().unwrap();
    let empty = claims::assess(&cat, &Inputs::default());
    let get = |list: &[claims::Assessment], id: &str| list.iter().find(|a| a.id == id).unwrap().clone();
    assert_eq!(get(&empty, "fp8-more-throughput").verdict, Verdict::NoData);
    // Computed from the codecs: no run needed.
    assert_eq!(get(&empty, "fp8-bits-per-parameter").verdict, Verdict::Supported);
    assert_eq!(get(&empty, "fp8-halves-memory").verdict, Verdict::Supported);
    assert_eq!(get(&empty, "h20-more-reliable").verdict, Verdict::NotTestable);

    let runs = fixture_runs();
    let full = claims::assess(&cat, &Inputs { runs: runs.clone() });
    let t = get(&full, "fp8-more-throughput");
    assert_eq!(t.verdict, Verdict::Partly, "{:?}", t.numbers);
    assert!(t.from.iter().any(|f| f.contains("20250101T000000Z-node-a")), "{:?}", t.from);
    assert!(t.from.iter().any(|f| f.contains("20250101T000500Z-node-b")), "{:?}", t.from);
    for a in &full {
        assert!(!a.numbers.is_empty(), "{} has no numbers", a.id);
    }

    // The rule reacts to the numbers: make every FP8 GEMV twice as fast as BF16.
    let mut fast = runs.clone();
    for lr in &mut fast {
        let bf16: Vec<(String, usize, f64)> = lr
            .run
            .records
            .iter()
            .filter(|r| r.op == "gemv" && r.format == "bf16")
            .map(|r| (r.backend.clone(), r.n, r.time.median_s))
            .collect();
        for r in lr.run.records.iter_mut().filter(|r| r.op == "gemv" && r.format.starts_with('e')) {
            if let Some((_, _, t)) = bf16.iter().find(|(b, n, _)| *b == r.backend && *n == r.n) {
                r.time.median_s = t / 2.0;
            }
        }
    }
    let v = claims::assess(&cat, &Inputs { runs: fast });
    assert_eq!(get(&v, "fp8-more-throughput").verdict, Verdict::Supported);
    // ... and no faster at all.
    let mut slow = runs;
    for lr in &mut slow {
        for r in lr.run.records.iter_mut().filter(|r| r.op == "gemv" && r.format.starts_with('e')) {
            r.time.median_s = 1.0;
        }
    }
    let v = claims::assess(&cat, &Inputs { runs: slow });
    assert_eq!(get(&v, "fp8-more-throughput").verdict, Verdict::NotSupported);
}

#[test]
fn invalid_records_never_count() {
    let cat = Catalogue::embedded().unwrap();
    let mut runs = fixture_runs();
    for lr in &mut runs {
        for r in &mut lr.run.records {
            r.valid = false;
        }
    }
    let v = claims::assess(&cat, &Inputs { runs });
    let t = v.iter().find(|a| a.id == "fp8-more-throughput").unwrap();
    assert_eq!(t.verdict, Verdict::NoData);
}

#[test]
fn flagged_records_never_count() {
    // A record above its read ceiling or FMA peak is an artefact (cache reuse, a wrong byte
    // count), so it must not carry a claim, flagged in the file or not.
    let cat = Catalogue::embedded().unwrap();
    let mut runs = fixture_runs();
    for lr in &mut runs {
        for r in &mut lr.run.records {
            r.flags = vec![chipbench::measure::ceilings::ABOVE_READ.into()];
        }
    }
    let v = claims::assess(&cat, &Inputs { runs });
    assert_eq!(v.iter().find(|a| a.id == "fp8-more-throughput").unwrap().verdict, Verdict::NoData);
    let mut runs = fixture_runs();
    for lr in &mut runs {
        // Every CPU record is now far above the (pretend) read ceiling. GPU records have their
        // own memory: the CPU's ceiling does not bound them, so they are left out here.
        lr.run.calibration.get_or_insert_with(Default::default).read_gbs = 1e-3;
        lr.run.records.retain(|r| r.backend != "wgpu");
    }
    let v = claims::assess(&cat, &Inputs { runs });
    assert_eq!(v.iter().find(|a| a.id == "fp8-more-throughput").unwrap().verdict, Verdict::NoData);
}

#[test]
fn claims_table_snapshot() {
    let cat = Catalogue::embedded().unwrap();
    let assessed = claims::assess(&cat, &Inputs { runs: fixture_runs() });
    snapshot("claims.md", &render::markdown(&cat, &assessed, 1));
    let json: serde_json::Value = serde_json::from_str(&render::json(&cat, &assessed)).unwrap();
    let list = json["claims"].as_array().unwrap();
    assert_eq!(list.len(), cat.claims.len());
    for (j, a) in list.iter().zip(&assessed) {
        assert_eq!(j["verdict"], a.verdict.label());
    }
}

#[test]
fn claims_cli_writes_json_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("claims.json");
    let run = |force: bool| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_chipbench"));
        cmd.args(["claims", "--results", "tests/fixtures/results", "--json", "--out"]).arg(&out);
        if force {
            cmd.arg("--force");
        }
        cmd.output().unwrap()
    };
    let first = run(false);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert!(v["claims"].as_array().unwrap().len() >= 10);
    let second = run(false);
    assert_eq!(second.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&second.stderr).contains("--force"));
    assert!(run(true).status.success());
}
