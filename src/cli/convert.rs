//! `chipbench convert`: encode numbers to an 8-bit format and show the codes.
//!
//! The point is to see exactly what a format does to a number: the f32 it was read as, the code
//! it becomes and the value that code stands for (rounding, saturation, NaN/inf, subnormals).
//! Every input is parsed before anything is printed, so a bad value gives one error line and no
//! partial table.

use crate::formats::{e8m0, Fp8Spec, Overflow, E4M3, E5M2};
use crate::{Error, Result};
use serde::Serialize;
use std::io::{IsTerminal, Read, Write};

const AFTER_HELP: &str = "\
Values are decimal numbers (1.5, -2e-3, inf, -inf, nan) or f32 bit patterns written as 0x plus
up to 8 hex digits (0x3f800000 = 1.0). Decimal input is first rounded to the nearest f32. With no
VALUES, whitespace-separated values are read from stdin.

Overflow: without --saturate the encoder is a plain cast as ml_dtypes does it (e4m3fn: |x| >= 464
becomes NaN, 448 < |x| < 464 becomes 448; e5m2: |x| >= 61440 becomes inf). With --saturate
(CUDA satfinite) every finite or infinite value beyond the largest finite value becomes +/- that
value. NaN stays NaN.

e8m0 (UE8M0, the MX / DeepSeek-V3.1 scale type) is an unsigned power of two 2^(code-127): the
input is rounded to the nearest power of two (ties to the even code), values beyond the range
clamp to 2^-127 (0x00) or 2^127 (0xfe), and 0, negative values, inf and NaN have no E8M0
encoding and give the NaN code 0xff. --saturate does not change e8m0.

Examples:
  chipbench convert --to e4m3fn 1 0.1 -3.5 448 500 -inf
  chipbench convert --to e5m2 --saturate --json 0x477fe000 inf
  echo '0.3 1e-3 1e6' | chipbench convert --to e8m0";

/// Encode numbers to FP8 E4M3FN, E5M2 or E8M0 and print the f32 bits, the code and the value
/// the code decodes to, one row per input.
#[derive(Debug, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// Target format: e4m3fn (alias e4m3), e5m2 or e8m0.
    #[arg(long = "to", value_name = "FORMAT")]
    pub to: Option<String>,
    /// Clip out-of-range inputs to the largest finite value (satfinite) instead of a plain cast.
    #[arg(long)]
    pub saturate: bool,
    /// Print a JSON array of {input, f32_bits, code, value}; all four are strings so NaN and
    /// inf survive.
    #[arg(long)]
    pub json: bool,
    /// Numbers to encode (decimal or 0x f32 bits); read from stdin when none are given.
    /// Negative numbers, -inf and -nan are values, not flags (no `--` needed).
    #[arg(value_name = "VALUES", allow_negative_numbers = true)]
    pub values: Vec<String>,
}

/// Formats `convert` can encode to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    Fp8(Fp8Spec),
    E8m0,
}

impl Target {
    pub const ALLOWED: &'static str = "e4m3fn (alias e4m3), e5m2, e8m0";

    pub fn parse(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "e4m3fn" | "e4m3" => Ok(Target::Fp8(E4M3)),
            "e5m2" => Ok(Target::Fp8(E5M2)),
            "e8m0" | "ue8m0" | "e8m0fnu" => Ok(Target::E8m0),
            _ => Err(Error::invalid("--to", &printable(s), Self::ALLOWED)),
        }
    }

    /// Encode one f32: (code, the value the code decodes to).
    pub fn convert(self, x: f32, overflow: Overflow) -> (u8, f32) {
        match self {
            Target::Fp8(spec) => {
                let code = spec.encode(x, overflow);
                (code, spec.decode(code))
            }
            Target::E8m0 => {
                let code = e8m0::encode(x);
                (code, e8m0::decode(code))
            }
        }
    }
}

const VALUE_ALLOWED: &str =
    "decimal numbers (1.5, -2e-3, inf, nan) or f32 bit patterns (0x3f800000), separated by whitespace";

/// Parse one input: decimal (rounded to the nearest f32) or `0x` + 1..=8 hex digits of f32 bits.
pub fn parse_value(s: &str) -> Result<f32> {
    let bad = || Error::invalid("value", &printable(s), VALUE_ALLOWED);
    if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        if hex.is_empty() || hex.len() > 8 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        return u32::from_str_radix(hex, 16).map(f32::from_bits).map_err(|_| bad());
    }
    s.parse::<f32>().map_err(|_| bad())
}

/// One output row (also the JSON object).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub input: String,
    pub f32_bits: String,
    pub code: String,
    pub value: String,
}

/// Shortest text that reads back as the same f32; scientific for very small or large values.
pub fn format_value(v: f32) -> String {
    let a = v.abs();
    if v.is_finite() && a != 0.0 && !(1e-4..1e16).contains(&a) {
        format!("{v:e}")
    } else {
        format!("{v}")
    }
}

/// Convert every input, or fail on the first bad one (nothing is converted then).
pub fn convert_all(target: Target, overflow: Overflow, inputs: &[String]) -> Result<Vec<Row>> {
    inputs
        .iter()
        .map(|s| {
            let x = parse_value(s)?;
            let (code, value) = target.convert(x, overflow);
            Ok(Row {
                input: s.clone(),
                f32_bits: format!("{:#010x}", x.to_bits()),
                code: format!("{code:#04x}"),
                value: format_value(value),
            })
        })
        .collect()
}

pub fn exec(args: Args) -> Result<()> {
    let target = match &args.to {
        Some(t) => Target::parse(t)?,
        None => return Err(Error::invalid("--to", "(missing)", Target::ALLOWED)),
    };
    let overflow = if args.saturate { Overflow::Saturate } else { Overflow::Cast };
    let inputs = if args.values.is_empty() {
        read_stdin()?
    } else {
        // Undo `protect_negative_words`.
        args.values.into_iter().map(|v| v.strip_prefix(' ').map_or(v.clone(), str::to_string)).collect()
    };
    let rows = convert_all(target, overflow, &inputs)?;
    match write_rows(&rows, args.json) {
        // A closed pipe (`| head`) is the reader's choice, not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.map_err(|e| Error::io("stdout", e)),
    }
}

fn read_stdin() -> Result<Vec<String>> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        return Err(Error::invalid("VALUES", "(none given, stdin is a terminal)", VALUE_ALLOWED));
    }
    let mut bytes = Vec::new();
    stdin.lock().read_to_end(&mut bytes).map_err(|e| Error::io("stdin", e))?;
    // Invalid UTF-8 becomes U+FFFD, which then fails to parse as a number and is reported.
    let text = String::from_utf8_lossy(&bytes);
    let inputs: Vec<String> = text.split_whitespace().map(str::to_owned).collect();
    if inputs.is_empty() {
        return Err(Error::invalid("stdin", "(empty)", VALUE_ALLOWED));
    }
    Ok(inputs)
}

fn write_rows(rows: &[Row], json: bool) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if json {
        serde_json::to_writer_pretty(&mut out, rows)?;
        writeln!(out)?;
    } else {
        let w = rows.iter().map(|r| r.input.chars().count()).max().unwrap_or(0).max(5);
        writeln!(out, "{:<w$}  {:<10}  {:<4}  value", "input", "f32_bits", "code")?;
        for r in rows {
            writeln!(out, "{:<w$}  {}  {}  {}", r.input, r.f32_bits, r.code, r.value)?;
        }
    }
    out.flush()
}

/// A bad value as it can be shown on one terminal line: control characters escaped, long
/// values cut.
fn printable(s: &str) -> String {
    const MAX: usize = 40;
    let mut t: String = s.chars().take(MAX).flat_map(char::escape_debug).collect();
    if s.chars().count() > MAX {
        t.push_str("...");
    }
    t
}

/// clap reads `-inf` and `-nan` as unknown flags (`allow_negative_numbers` covers digits only,
/// and `allow_hyphen_values` on the values would swallow the flags after them). So, for the
/// `convert` subcommand, such words before any `--` get a leading space that clap treats as a
/// value and [`exec`] removes.
pub fn protect_negative_words(args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    if args.get(1).is_none_or(|a| a != "convert") {
        return args;
    }
    let mut escaped = false;
    args.into_iter()
        .map(|a| {
            escaped |= a == "--";
            let word = a.to_str().map(str::to_ascii_lowercase);
            match word.as_deref() {
                Some("-inf" | "-infinity" | "-nan") if !escaped => format!(" {}", a.to_string_lossy()).into(),
                _ => a,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_decimal_and_bits() {
        assert_eq!(parse_value("1.5").unwrap(), 1.5);
        assert_eq!(parse_value("-2e-3").unwrap(), -2e-3);
        assert_eq!(parse_value("0x3f800000").unwrap(), 1.0);
        assert_eq!(parse_value("0X3F800000").unwrap(), 1.0);
        assert_eq!(parse_value("0x1").unwrap().to_bits(), 1);
        assert!(parse_value("nan").unwrap().is_nan());
        assert_eq!(parse_value("-inf").unwrap(), f32::NEG_INFINITY);
        for bad in ["", "0x", "0x123456789", "0xg", "1.5x", "abc", "-0x3f800000", "1,5"] {
            assert!(parse_value(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn rows() {
        let rows =
            convert_all(Target::parse("e4m3").unwrap(), Overflow::Cast, &["1".into(), "500".into()]).unwrap();
        assert_eq!(
            rows[0],
            Row { input: "1".into(), f32_bits: "0x3f800000".into(), code: "0x38".into(), value: "1".into() }
        );
        assert_eq!((rows[1].code.as_str(), rows[1].value.as_str()), ("0x7f", "NaN"));
        let sat = convert_all(Target::Fp8(E4M3), Overflow::Saturate, &["-500".into()]).unwrap();
        assert_eq!((sat[0].code.as_str(), sat[0].value.as_str()), ("0xfe", "-448"));
        let e8 = convert_all(Target::E8m0, Overflow::Cast, &["0.3".into(), "0".into()]).unwrap();
        assert_eq!((e8[0].code.as_str(), e8[0].value.as_str()), ("0x7d", "0.25"));
        assert_eq!((e8[1].code.as_str(), e8[1].value.as_str()), ("0xff", "NaN"));
    }

    #[test]
    fn errors_are_one_line_and_name_the_value() {
        let e = Target::parse("e3m4").unwrap_err().to_string();
        assert!(e.contains("'e3m4'") && e.contains("e4m3fn") && e.contains("e8m0"), "{e}");
        let e = parse_value("a\nb\u{1b}").unwrap_err().to_string();
        assert!(!e.contains('\n') && !e.contains('\u{1b}'), "{e}");
        assert_eq!(parse_value(&"9".repeat(100)).map(|v| v.is_infinite()).ok(), Some(true));
        let e = parse_value(&"x".repeat(100)).unwrap_err().to_string();
        assert!(e.len() < 200 && e.contains("..."), "{e}");
    }

    #[test]
    fn value_text_reads_back() {
        for code in 0..=255u8 {
            for v in [E4M3.decode(code), E5M2.decode(code), e8m0::decode(code)] {
                let t = format_value(v);
                let back: f32 = t.parse().unwrap();
                assert!(back.to_bits() == v.to_bits() || (v.is_nan() && back.is_nan()), "{v} -> {t}");
            }
        }
    }
}
