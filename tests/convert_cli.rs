//! `chipbench convert` as a user runs it: the built binary on good and bad input.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn run(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_chipbench"))
        .arg("convert")
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn chipbench");
    if let Some(bytes) = stdin {
        child.stdin.take().unwrap().write_all(bytes).unwrap();
    }
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Table rows after the header, split into columns.
fn rows(out: &Output) -> Vec<Vec<String>> {
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let mut lines = stdout.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["input", "f32_bits", "code", "value"]);
    lines.map(|l| l.split_whitespace().map(str::to_owned).collect()).collect()
}

/// A bad input: exit code 2, one line on stderr naming `bad` and every allowed value in
/// `allowed`, nothing on stdout, no panic.
fn assert_usage_error(out: &Output, bad: &str, allowed: &[&str]) {
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {err}");
    assert!(out.stdout.is_empty(), "stdout: {}", text(&out.stdout));
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err:?}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains(bad), "does not name {bad:?}: {err}");
    for a in allowed {
        assert!(err.contains(a), "does not list {a:?}: {err}");
    }
}

#[test]
fn e4m3_rows_cast_and_saturate() {
    let args = ["--to", "e4m3fn", "1", "0.1", "-3.5", "448", "460", "500", "0x3f800000", "1e-3", "nan"];
    let want = [
        ["1", "0x3f800000", "0x38", "1"],
        ["0.1", "0x3dcccccd", "0x1d", "0.1015625"],
        ["-3.5", "0xc0600000", "0xc6", "-3.5"],
        ["448", "0x43e00000", "0x7e", "448"],
        ["460", "0x43e60000", "0x7e", "448"],
        ["500", "0x43fa0000", "0x7f", "NaN"],
        ["0x3f800000", "0x3f800000", "0x38", "1"],
        ["1e-3", "0x3a83126f", "0x01", "0.001953125"],
        ["nan", "0x7fc00000", "0x7f", "NaN"],
    ];
    assert_eq!(rows(&run(&args, None)), want);
    // `e4m3` is an alias; --saturate clips 500 to 448 and -inf to -448.
    let sat = rows(&run(&["--to", "e4m3", "--saturate", "500", "--", "-inf"], None));
    assert_eq!(sat, [["500", "0x43fa0000", "0x7e", "448"], ["-inf", "0xff800000", "0xfe", "-448"]]);
}

/// Negative numbers, -inf and -nan are values without `--`, wherever they stand; flags after
/// them are still flags.
#[test]
fn negative_values_need_no_double_dash() {
    let want = [["-inf", "0xff800000", "0xff", "NaN"], ["-1.5", "0xbfc00000", "0xbc", "-1.5"]];
    assert_eq!(rows(&run(&["--to", "e4m3fn", "-inf", "-1.5"], None)), want);
    assert_eq!(rows(&run(&["-inf", "-1.5", "--to", "e4m3fn"], None)), want);
    let sat = rows(&run(&["--to", "e4m3fn", "-inf", "--saturate", "-nan"], None));
    assert_eq!(sat[0][2..], ["0xfe", "-448"]);
    assert_eq!(sat[1][0], "-nan");
    assert_eq!(sat[1][3], "NaN");
}

#[test]
fn e5m2_overflow_is_inf_unless_saturated() {
    let cast = rows(&run(&["--to", "e5m2", "61440", "57344", "1.5258789e-5"], None));
    assert_eq!(cast[0][2..], ["0x7c", "inf"]);
    assert_eq!(cast[1][2..], ["0x7b", "57344"]);
    assert_eq!(cast[2][2..], ["0x01", "1.5258789e-5"]);
    let sat = rows(&run(&["--saturate", "--to", "E5M2", "61440"], None));
    assert_eq!(sat[0][2..], ["0x7b", "57344"]);
}

#[test]
fn e8m0_from_stdin() {
    let out = run(&["--to", "e8m0"], Some(b"0.3\n1e-3  1e6\t0\n-2\n1\n"));
    let got: Vec<(String, String)> = rows(&out).into_iter().map(|r| (r[2].clone(), r[3].clone())).collect();
    let want = [
        ("0x7d", "0.25"),
        ("0x75", "0.0009765625"),
        ("0x93", "1048576"),
        ("0xff", "NaN"),
        ("0xff", "NaN"),
        ("0x7f", "1"),
    ];
    assert_eq!(got, want.map(|(c, v)| (c.to_owned(), v.to_owned())));
}

#[test]
fn json_has_the_four_string_keys() {
    let out = run(&["--to", "e5m2", "--json", "1e6", "inf", "0x00000001", "nan"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    let arr = v.as_array().expect("an array");
    assert_eq!(arr.len(), 4);
    for o in arr {
        let o = o.as_object().unwrap();
        let mut keys: Vec<&str> = o.keys().map(String::as_str).collect();
        keys.sort();
        assert_eq!(keys, ["code", "f32_bits", "input", "value"]);
        assert!(o.values().all(|x| x.is_string()));
    }
    assert_eq!(arr[0]["input"], "1e6");
    assert_eq!(arr[0]["f32_bits"], "0x49742400");
    assert_eq!(arr[1]["code"], "0x7c");
    assert_eq!(arr[1]["value"], "inf");
    assert_eq!(arr[2]["code"], "0x00", "2^-149 rounds to zero");
    assert_eq!(arr[3]["value"], "NaN");
}

const FORMATS: [&str; 3] = ["e4m3fn", "e5m2", "e8m0"];
const NUMBERS: [&str; 2] = ["decimal", "0x3f800000"];

#[test]
fn unknown_format() {
    assert_usage_error(&run(&["--to", "e3m4", "1"], None), "'e3m4'", &FORMATS);
    assert_usage_error(&run(&["1"], None), "--to", &FORMATS);
}

#[test]
fn not_a_number() {
    assert_usage_error(&run(&["--to", "e4m3", "1", "1.5x"], None), "'1.5x'", &NUMBERS);
    assert_usage_error(&run(&["--to", "e4m3", "0x123456789"], None), "'0x123456789'", &NUMBERS);
    assert_usage_error(&run(&["--to", "e5m2"], Some(b"1 2\nthree 4\n")), "'three'", &NUMBERS);
}

#[test]
fn empty_stdin() {
    assert_usage_error(&run(&["--to", "e4m3"], Some(b"")), "stdin", &NUMBERS);
    assert_usage_error(&run(&["--to", "e8m0"], Some(b" \n\t\n")), "stdin", &NUMBERS);
}

#[test]
fn garbage_bytes() {
    let garbage: Vec<u8> = (0..=255u8).rev().chain(0..=255).collect();
    let out = run(&["--to", "e4m3"], Some(&garbage));
    assert_usage_error(&out, "invalid value", &NUMBERS);
    let out = run(&["--to", "e5m2", "--json"], Some(b"\x00\x1b[31m\xff\xfe"));
    assert_usage_error(&out, "invalid value", &NUMBERS);
    assert!(!text(&out.stderr).contains('\u{1b}'), "control bytes are escaped");
}
