//! Collectives: bandwidth factors and size parsing (every build), the subcommand's answer without
//! the `mpi` feature, and — with the feature — real `mpirun -np 2` and `-np 3` runs of the built
//! binary, every op × payload verified on every rank, checked from the results JSON it writes.

use chipbench::collectives::{format_size, parse_payloads, parse_size, parse_sizes, Layout, Op};
use std::process::Command;

fn chipbench() -> Command {
    Command::new(env!("CARGO_BIN_EXE_chipbench"))
}

#[test]
fn bus_factors_are_nccl_tests() {
    for (n, ar, rest) in [(1, 0.0, 0.0), (2, 1.0, 0.5), (3, 4.0 / 3.0, 2.0 / 3.0), (8, 1.75, 0.875)] {
        assert_eq!(Op::AllReduce.bus_factor(n), ar, "all-reduce n={n}");
        for op in [Op::AllGather, Op::ReduceScatter, Op::AllToAll] {
            assert_eq!(op.bus_factor(n), rest, "{op} n={n}");
        }
    }
}

#[test]
fn sizes_parse_units_lists_and_power_of_two_ranges() {
    assert_eq!(parse_size("4096").unwrap(), 4096);
    assert_eq!(parse_size("1KiB").unwrap(), 1024);
    assert_eq!(parse_size("64MiB").unwrap(), 64 << 20);
    assert_eq!(parse_size("2g").unwrap(), 2 << 30);
    assert_eq!(parse_sizes("1KiB..8KiB").unwrap(), vec![1024, 2048, 4096, 8192]);
    assert_eq!(parse_sizes("1KiB..256MiB").unwrap().len(), 19);
    // A range keeps doubling from its start and stops at or below its end.
    assert_eq!(parse_sizes("3KiB..13KiB").unwrap(), vec![3 << 10, 6 << 10, 12 << 10]);
    assert_eq!(parse_sizes("64KiB,1028,1KiB..2KiB,1KiB").unwrap(), vec![1024, 1028, 2048, 64 << 10]);
    for bad in ["", "0", "1XiB", "KiB", "8KiB..1KiB", "1.5MiB", "-4"] {
        let e = parse_sizes(bad).unwrap_err().to_string();
        assert!(e.contains("--sizes"), "{bad}: {e}");
    }
    assert_eq!(format_size(64 << 20), "64MiB");
    assert_eq!(format_size(1028), "1028B");
}

#[test]
fn ops_and_payloads_parse() {
    assert_eq!(Op::parse_list("all").unwrap(), Op::ALL.to_vec());
    assert_eq!(Op::parse_list("all-to-all").unwrap(), vec![Op::AllToAll]);
    assert!(Op::parse_list("broadcast").unwrap_err().to_string().contains("all-reduce"));
    assert_eq!(parse_payloads("all").unwrap().len(), 5);
    assert_eq!(parse_payloads("bf16,e4m3").unwrap().len(), 2);
    assert!(parse_payloads("int8").is_err());
    // 1KiB of f32 over 3 ranks: 85 elements each, 255 in all.
    assert_eq!(Layout::new(1024, 3).unwrap().elements(), 255);
}

#[test]
fn bad_arguments_exit_2_in_every_build() {
    let out = chipbench().args(["collectives", "--op", "broadcast"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--op"));
}

#[cfg(not(feature = "mpi"))]
#[test]
fn without_the_feature_the_subcommand_says_how_to_enable_it() {
    let out = chipbench().args(["collectives", "--sizes", "1KiB"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--features mpi") && err.contains("mpirun"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
}

#[cfg(feature = "mpi")]
mod mpi_runs {
    use super::*;
    use chipbench::results::Run;
    use std::path::Path;

    /// `mpirun` with what a CI container needs: root allowed, more ranks than cores allowed.
    fn mpirun(ranks: usize) -> Command {
        let probe = Command::new("mpirun").arg("--version").output();
        match probe {
            Ok(o) if o.status.success() => {}
            _ => panic!(
                "mpirun not found or not working: the MPI collective tests need Open MPI \
                 (Debian/Ubuntu: apt-get install openmpi-bin libopenmpi-dev); CI installs it in .ci/run"
            ),
        }
        let mut c = Command::new("mpirun");
        c.env("OMPI_ALLOW_RUN_AS_ROOT", "1")
            .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
            .args(["--oversubscribe", "-np", &ranks.to_string()])
            .arg(env!("CARGO_BIN_EXE_chipbench"));
        c
    }

    const SIZES: [u64; 3] = [1024, 1028, 64 << 10];

    fn run(ranks: usize, dir: &Path) -> Run {
        let sizes = SIZES.map(|s| s.to_string()).join(",");
        let out = mpirun(ranks)
            .args(["collectives", "--op", "all", "--payload", "all", "--sizes", &sizes])
            .args(["--iters", "3", "--warmup", "1", "--out"])
            .arg(dir)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "mpirun -np {ranks} failed:\n{stdout}\n{stderr}");
        assert!(stdout.contains("busbw") && stdout.contains("FP8/BF16 time ratio"), "{stdout}");
        let files: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
        assert_eq!(files.len(), 1, "rank 0 alone writes one file (no temporaries left): {files:?}");
        Run::load(&files[0]).unwrap()
    }

    fn check_run(ranks: usize) {
        let dir = tempfile::tempdir().unwrap();
        let run = run(ranks, dir.path());
        assert_eq!(run.suite, "collectives");
        assert_eq!(run.records.len(), 4 * SIZES.len() * 5, "every op × size × payload");
        for r in &run.records {
            let what = format!("np {ranks} {} {} m={}", r.op, r.format, r.m);
            assert!(r.valid, "{what}: {}", r.note);
            assert_eq!(r.ranks, Some(ranks), "{what}");
            assert_eq!(r.payload.as_deref(), Some(r.format.as_str()), "{what}");
            assert_eq!(r.m % ranks, 0, "{what}: elements split evenly");
            assert!(r.time.median_s > 0.0 && r.time.samples == 3, "{what}: {:?}", r.time);
            let op: Op = r.op.parse().unwrap();
            let (alg, bus) = (r.algbw_gbs.unwrap(), r.busbw_gbs.unwrap());
            assert!(alg > 0.0 && alg.is_finite(), "{what}");
            assert!((bus - alg * op.bus_factor(ranks)).abs() <= 1e-9 * alg, "{what}");
            let chunk = r.m / ranks;
            let fp8 = r.format.starts_with('e');
            let scales = if fp8 { (ranks * chunk.div_ceil(128) * 4) as u64 } else { 0 };
            assert_eq!(r.bytes.scales, scales, "{what}: 1x128 f32 scales are counted");
            assert_eq!(r.bytes.total, r.bytes.activations + scales, "{what}");
            let elem: u64 = match r.format.as_str() {
                "f32" => 4,
                "bf16" | "f16" => 2,
                _ => 1,
            };
            assert_eq!(r.bytes.activations, elem * r.m as u64, "{what}");
            let reduction = matches!(op, Op::AllReduce | Op::ReduceScatter);
            if reduction && r.format != "f32" {
                assert!(r.note.contains("f32 accumulation"), "{what}: {}", r.note);
            }
            assert!(r.error.max_rel < 0.5, "{what}: {:?}", r.error);
        }
        // FP8 all-to-all moves at most 0.52x the bytes of BF16 for the same elements, scales
        // included, once a chunk fills its 1x128 tiles (64 KiB: 8192 or 5461 elements per peer).
        let a2a = |format: &str, m: usize| {
            run.records.iter().find(|r| r.op == "all-to-all" && r.format == format && r.m == m).unwrap()
        };
        let m = Layout::new(64 << 10, ranks).unwrap().elements();
        let ratio = a2a("e4m3", m).bytes.total as f64 / a2a("bf16", m).bytes.total as f64;
        assert!(ratio <= 0.52, "np {ranks}: FP8/BF16 all-to-all bytes {ratio}");
        assert!(ratio > 0.5, "np {ranks}: scales must be counted ({ratio})");
    }

    #[test]
    fn mpirun_np2_every_op_and_payload_verifies() {
        check_run(2);
    }

    #[test]
    fn mpirun_np3_every_op_and_payload_verifies() {
        check_run(3);
    }
}
