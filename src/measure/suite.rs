//! Suites as data: a TOML file lists shapes, formats, scalings, activation formats, backends,
//! thread counts and the time budget; [`Suite::load`] checks it and expands it into cases.
//!
//! Every mistake is one line naming the file, the field and the allowed values: unknown keys are
//! errors (`deny_unknown_fields`), values are checked here rather than left to serde so the
//! message can name the exact entry (`shapes[2].formats[1]`).

use super::inputs::ProblemSpec;
use super::timer::TimerConfig;
use crate::formats::{Format, Scaling};
use crate::kernels::registry::BackendKind;
use crate::kernels::Op;
use crate::{Error, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The embedded default suite (configs/suites/default.toml), so `chipbench run` needs no files.
pub const DEFAULT_SUITE: &str = include_str!("../../configs/suites/default.toml");
const DEFAULT_SUITE_PATH: &str = "configs/suites/default.toml (embedded)";

const FORMATS_ALLOWED: &str = "f32, bf16, f16, e4m3, e5m2";
const ACT_ALLOWED: &str = "f32, bf16, f16, e4m3, e5m2, same";
const OPS_ALLOWED: &str = "gemm, gemv";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SuiteFile {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default = "default_backends")]
    backends: Vec<String>,
    #[serde(default = "default_threads")]
    threads: Vec<usize>,
    formats: Vec<String>,
    #[serde(default = "default_scalings")]
    scalings: Vec<String>,
    #[serde(default = "default_act")]
    act_formats: Vec<String>,
    #[serde(default = "default_seed")]
    seed: u64,
    #[serde(default)]
    timing: TimingFile,
    #[serde(default)]
    quick: QuickFile,
    shapes: Vec<ShapeFile>,
}

fn default_backends() -> Vec<String> {
    vec!["cpu".into()]
}
fn default_threads() -> Vec<usize> {
    vec![0]
}
fn default_scalings() -> Vec<String> {
    vec!["per-tensor".into()]
}
fn default_act() -> Vec<String> {
    vec!["f32".into()]
}
fn default_seed() -> u64 {
    42
}

/// `[timing]`: every key optional, defaults from `Default`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct TimingFile {
    warmup_s: f64,
    budget_s: f64,
    min_samples: usize,
    max_samples: usize,
}

impl Default for TimingFile {
    fn default() -> Self {
        TimingFile { warmup_s: 0.2, budget_s: 1.0, min_samples: 5, max_samples: 10_000 }
    }
}

/// `[quick]`: what `--quick` does; every key optional, defaults from `Default`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct QuickFile {
    divisor: usize,
    warmup_s: f64,
    budget_s: f64,
    min_samples: usize,
    max_samples: usize,
}

impl Default for QuickFile {
    fn default() -> Self {
        QuickFile { divisor: 8, warmup_s: 0.01, budget_s: 0.05, min_samples: 3, max_samples: 200 }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ShapeFile {
    #[serde(default)]
    name: Option<String>,
    op: String,
    #[serde(default)]
    m: Option<usize>,
    n: usize,
    k: usize,
    #[serde(default)]
    formats: Option<Vec<String>>,
    #[serde(default)]
    scalings: Option<Vec<String>>,
    #[serde(default)]
    act_formats: Option<Vec<String>>,
}

/// One thing to measure: a named shape in one format/scaling/activation format.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    /// The shape's name in the suite.
    pub shape: String,
    pub spec: ProblemSpec,
}

/// A checked, expanded suite.
#[derive(Debug, Clone)]
pub struct Suite {
    pub name: String,
    pub description: String,
    pub path: PathBuf,
    pub backends: Vec<BackendKind>,
    pub threads: Vec<usize>,
    pub timing: TimerConfig,
    pub quick_timing: TimerConfig,
    pub quick_divisor: usize,
    /// The shapes with their (possibly overridden) lists, from which `cases` is expanded.
    pub shapes: Vec<Shape>,
    pub seed: u64,
    pub cases: Vec<Case>,
}

/// One `[[shapes]]` entry, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Shape {
    pub name: String,
    pub op: Op,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub formats: Vec<Format>,
    pub scalings: Vec<Scaling>,
    acts: Vec<Act>,
}

/// Command-line overrides of a suite's lists.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub formats: Option<Vec<Format>>,
    pub scalings: Option<Vec<Scaling>>,
    pub backends: Option<Vec<BackendKind>>,
    pub threads: Option<Vec<usize>>,
}

/// Where the activation format of a case comes from.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Act {
    Fixed(Format),
    /// The weight format (both operands quantized alike).
    Same,
}

impl Suite {
    /// The embedded default suite.
    pub fn default_suite() -> Result<Suite> {
        Suite::parse(DEFAULT_SUITE, Path::new(DEFAULT_SUITE_PATH))
    }

    pub fn load(path: &Path) -> Result<Suite> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Suite::parse_bytes(&bytes, path)
    }

    /// Parse the bytes of a suite file (what [`Suite::load`] reads), so fuzzing needs no disk.
    pub fn parse_bytes(bytes: &[u8], path: &Path) -> Result<Suite> {
        let text = std::str::from_utf8(bytes)
            .map_err(|e| Error::config(path, "toml", format!("not UTF-8 text (byte {})", e.valid_up_to())))?;
        Suite::parse(text, path)
    }

    /// Parse suite text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Suite> {
        let file: SuiteFile = toml::from_str(text).map_err(|e| toml_error(path, text, &e))?;
        let cfg = |field: &str, msg: String| Error::config(path, field, msg);
        let parse_list = |field: &str, values: &[String], allowed: &str| -> Result<Vec<String>> {
            if values.is_empty() {
                return Err(cfg(field, format!("empty list; allowed values: {allowed}")));
            }
            Ok(values.to_vec())
        };

        let mut backends = Vec::new();
        for (i, b) in parse_list("backends", &file.backends, BackendKind::ALLOWED)?.iter().enumerate() {
            let kinds = BackendKind::parse_list(b).map_err(|_| {
                cfg(
                    &format!("backends[{i}]"),
                    format!("'{b}' is not a backend; allowed values: {}", BackendKind::ALLOWED),
                )
            })?;
            for k in kinds {
                if !backends.contains(&k) {
                    backends.push(k);
                }
            }
        }
        if file.threads.is_empty() {
            return Err(cfg("threads", "empty list; allowed values: 0 (all cores) or a thread count".into()));
        }
        let timing = timer_config(
            path,
            "timing",
            file.timing.warmup_s,
            file.timing.budget_s,
            file.timing.min_samples,
            file.timing.max_samples,
        )?;
        let q = &file.quick;
        if q.divisor == 0 {
            return Err(cfg("quick.divisor", "0; allowed values: 1 or more".into()));
        }
        let quick_timing = timer_config(path, "quick", q.warmup_s, q.budget_s, q.min_samples, q.max_samples)?;

        let formats = parse_formats(path, "formats", &file.formats)?;
        let scalings = parse_scalings(path, "scalings", &file.scalings)?;
        let acts = parse_acts(path, "act_formats", &file.act_formats)?;
        if file.shapes.is_empty() {
            return Err(cfg("shapes", "no [[shapes]]; a suite needs at least one".into()));
        }
        let mut shapes = Vec::new();
        for (i, s) in file.shapes.iter().enumerate() {
            let at = |f: &str| format!("shapes[{i}].{f}");
            let op = match s.op.to_ascii_lowercase().as_str() {
                "gemm" => Op::Gemm,
                "gemv" => Op::Gemv,
                _ => {
                    return Err(cfg(
                        &at("op"),
                        format!("'{}' is not an op; allowed values: {OPS_ALLOWED}", s.op),
                    ))
                }
            };
            let m = match (op, s.m) {
                (Op::Gemv, None | Some(1)) => 1,
                (Op::Gemv, Some(m)) => {
                    return Err(cfg(&at("m"), format!("{m} for a gemv; allowed values: 1 or leave it out")))
                }
                (Op::Gemm, Some(m)) => m,
                (Op::Gemm, None) => return Err(cfg(&at("m"), "missing; a gemm needs m, n and k".into())),
            };
            for (f, v) in [("m", m), ("n", s.n), ("k", s.k)] {
                if v == 0 || v > super::memory::MAX_DIM {
                    return Err(cfg(
                        &at(f),
                        format!("{v}; allowed values: 1 ..= {}", super::memory::MAX_DIM),
                    ));
                }
            }
            let name = s.name.clone().unwrap_or_else(|| match op {
                Op::Gemv => format!("gemv-{}x{}", s.n, s.k),
                Op::Gemm => format!("gemm-{m}x{}x{}", s.n, s.k),
            });
            let formats = match &s.formats {
                Some(v) => parse_formats(path, &at("formats"), v)?,
                None => formats.clone(),
            };
            let scalings = match &s.scalings {
                Some(v) => parse_scalings(path, &at("scalings"), v)?,
                None => scalings.clone(),
            };
            let acts = match &s.act_formats {
                Some(v) => parse_acts(path, &at("act_formats"), v)?,
                None => acts.clone(),
            };
            shapes.push(Shape { name, op, m, n: s.n, k: s.k, formats, scalings, acts });
        }
        Ok(Suite {
            name: file.name,
            description: file.description,
            path: path.to_path_buf(),
            backends,
            threads: file.threads,
            timing,
            quick_timing,
            quick_divisor: q.divisor,
            cases: expand_all(&shapes, file.seed, 1),
            shapes,
            seed: file.seed,
        })
    }

    /// Apply command-line overrides: formats and scalings re-expand every shape.
    pub fn apply(&mut self, o: &Overrides) {
        if let Some(b) = &o.backends {
            self.backends = b.clone();
        }
        if let Some(t) = &o.threads {
            self.threads = t.clone();
        }
        for sh in &mut self.shapes {
            if let Some(f) = &o.formats {
                sh.formats = f.clone();
            }
            if let Some(sc) = &o.scalings {
                sh.scalings = sc.clone();
            }
        }
        self.cases = expand_all(&self.shapes, self.seed, 1);
    }

    /// `--quick`: every dimension divided by the quick divisor (at least 1), the quick budget.
    pub fn make_quick(&mut self) {
        let d = self.quick_divisor.max(1);
        self.cases = expand_all(&self.shapes, self.seed, d);
        self.timing = self.quick_timing;
    }
}

/// Expand every shape, dimensions divided by `divisor` (at least 1; a GEMV keeps m = 1).
fn expand_all(shapes: &[Shape], seed: u64, divisor: usize) -> Vec<Case> {
    let div = |v: usize| (v / divisor).max(1);
    let mut cases = Vec::new();
    for sh in shapes {
        let name = if divisor > 1 { format!("{} /{divisor}", sh.name) } else { sh.name.clone() };
        let m = if sh.op == Op::Gemv { 1 } else { div(sh.m) };
        for spec in expand(sh.op, m, div(sh.n), div(sh.k), &sh.formats, &sh.scalings, &sh.acts, seed) {
            cases.push(Case { shape: name.clone(), spec });
        }
    }
    cases
}

fn timer_config(
    path: &Path,
    table: &str,
    warmup: f64,
    budget: f64,
    min: usize,
    max: usize,
) -> Result<TimerConfig> {
    for (f, v) in [("warmup_s", warmup), ("budget_s", budget)] {
        if !(v.is_finite() && (0.0..=3600.0).contains(&v)) {
            return Err(Error::config(
                path,
                format!("{table}.{f}"),
                format!("{v}; allowed values: 0 ..= 3600 seconds"),
            ));
        }
    }
    if min == 0 || max < min {
        return Err(Error::config(
            path,
            format!("{table}.min_samples"),
            format!("{min} (max_samples {max}); allowed values: 1 ..= max_samples"),
        ));
    }
    Ok(TimerConfig {
        warmup_runs: 1,
        warmup: Duration::from_secs_f64(warmup),
        budget: Duration::from_secs_f64(budget),
        min_samples: min,
        max_samples: max,
        min_sample: super::timer::MIN_SAMPLE,
    })
}

/// Parse a non-empty list field element by element; a bad element is named `field[i]` with the
/// allowed values. `what` names the kind of value in the message ("format", "scaling").
fn parse_list<T>(
    path: &Path,
    field: &str,
    v: &[String],
    what: &str,
    allowed: &str,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<Vec<T>> {
    if v.is_empty() {
        return Err(Error::config(path, field, format!("empty list; allowed values: {allowed}")));
    }
    v.iter()
        .enumerate()
        .map(|(i, s)| {
            parse(s).ok_or_else(|| {
                Error::config(
                    path,
                    format!("{field}[{i}]"),
                    format!("'{s}' is not a {what}; allowed values: {allowed}"),
                )
            })
        })
        .collect()
}

fn parse_formats(path: &Path, field: &str, v: &[String]) -> Result<Vec<Format>> {
    parse_list(path, field, v, "format", FORMATS_ALLOWED, |s| s.parse().ok())
}

fn parse_scalings(path: &Path, field: &str, v: &[String]) -> Result<Vec<Scaling>> {
    parse_list(path, field, v, "scaling", Scaling::ALLOWED, |s| s.parse().ok())
}

fn parse_acts(path: &Path, field: &str, v: &[String]) -> Result<Vec<Act>> {
    parse_list(path, field, v, "format", ACT_ALLOWED, |s| {
        if s.eq_ignore_ascii_case("same") {
            Some(Act::Same)
        } else {
            s.parse().ok().map(Act::Fixed)
        }
    })
}

/// Every (format × scaling × activation format) of one shape. Non-FP8 formats run unscaled;
/// FP8 activations only go with FP8 weights of the same format.
#[allow(clippy::too_many_arguments)]
fn expand(
    op: Op,
    m: usize,
    n: usize,
    k: usize,
    formats: &[Format],
    scalings: &[Scaling],
    acts: &[Act],
    seed: u64,
) -> Vec<ProblemSpec> {
    let mut out: Vec<ProblemSpec> = Vec::new();
    for &f in formats {
        let fs: Vec<Scaling> = if f.is_fp8() { scalings.to_vec() } else { vec![Scaling::NONE] };
        for s in fs {
            for &a in acts {
                let act = match a {
                    Act::Same => f,
                    Act::Fixed(a) if a.is_fp8() && a != f => continue,
                    Act::Fixed(a) => a,
                };
                let spec = ProblemSpec::new(op, m, n, k, f, s).with_act_format(act).with_seed(seed);
                if !out.contains(&spec) {
                    out.push(spec);
                }
            }
        }
    }
    out
}

/// One line from a TOML/serde error: the offending key (from the message or the line the span
/// points at), the message and the line number.
fn toml_error(path: &Path, text: &str, e: &toml::de::Error) -> Error {
    let msg = e.message().lines().next().unwrap_or("invalid TOML").trim().to_string();
    let line_no = e.span().map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
    let line_key = e.span().and_then(|s| {
        let start = text[..s.start.min(text.len())].rfind('\n').map_or(0, |p| p + 1);
        let line = text[start..].lines().next()?;
        let (key, _) = line.split_once('=')?;
        Some(key.trim().trim_matches('"').to_string()).filter(|k| !k.is_empty())
    });
    let quoted = msg.split('`').nth(1).map(str::to_string);
    let field = if msg.starts_with("unknown field") || msg.starts_with("missing field") {
        quoted.or(line_key)
    } else {
        line_key.or(quoted)
    }
    .unwrap_or_else(|| match Error::toml(path, text, e) {
        // No key on the line (a table header, a retyped table): the shared helper names the table.
        Error::Config { field, .. } => field,
        _ => "toml".into(),
    });
    let msg = msg.replace("expected one of", "allowed fields:");
    let at = line_no.map(|l| format!(" (line {l})")).unwrap_or_default();
    Error::config(path, field, format!("{msg}{at}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Suite> {
        Suite::parse(text, Path::new("s.toml"))
    }

    const MINI: &str =
        "name = \"t\"\nformats = [\"bf16\", \"e4m3\"]\nscalings = [\"per-tensor\", \"mx32\"]\n\
                        [[shapes]]\nop = \"gemv\"\nn = 16\nk = 64\n";

    #[test]
    fn default_suite_loads_with_the_promised_shapes() {
        let s = Suite::default_suite().unwrap();
        let shapes: Vec<(Op, usize, usize, usize)> =
            s.cases.iter().map(|c| (c.spec.op, c.spec.m, c.spec.n, c.spec.k)).collect();
        for want in [(Op::Gemv, 1, 8192, 8192), (Op::Gemv, 1, 4096, 14336), (Op::Gemm, 2048, 2048, 2048)] {
            assert!(shapes.contains(&want), "{want:?}");
        }
        assert!(s.cases.iter().any(|c| c.shape.contains("deepseek") && c.spec.act_format == Format::E4M3));
        // Both GEMMs in f32 and with BF16/E4M3/E5M2 activations (DeepSeek scaling for FP8), so
        // a CPU with BF16 dot-product units compares like with like.
        for (m, k) in [(2048, 2048), (256, 7168)] {
            for act in [Format::F32, Format::BF16, Format::E4M3, Format::E5M2] {
                assert!(
                    s.cases.iter().any(|c| (c.spec.op, c.spec.m, c.spec.k) == (Op::Gemm, m, k)
                        && c.spec.act_format == act
                        && c.spec.format == act
                        && (!act.is_fp8() || c.spec.scaling == crate::formats::Scaling::DEEPSEEK)),
                    "{m}x{k} a={act}"
                );
            }
        }
        for f in Format::ALL {
            assert!(s.cases.iter().any(|c| c.spec.format == f), "{f}");
        }
        let mut q = s.clone();
        q.make_quick();
        assert!(q.cases.iter().all(|c| c.spec.n <= 8192 / 8));
        assert!(q.timing.budget < s.timing.budget);
    }

    #[test]
    fn expands_formats_scalings_and_acts() {
        let s = parse(MINI).unwrap();
        let got: Vec<String> =
            s.cases.iter().map(|c| format!("{}:{}", c.spec.format, c.spec.scaling)).collect();
        assert_eq!(got, ["bf16:none", "e4m3:per-tensor", "e4m3:mx32"]);
        assert_eq!(s.backends, vec![BackendKind::Cpu]);
        let mut s2 = s.clone();
        s2.apply(&Overrides { formats: Some(vec![Format::E5M2]), ..Default::default() });
        assert!(s2.cases.iter().all(|c| c.spec.format == Format::E5M2));
        assert_eq!(s2.cases.len(), 2);
    }

    #[test]
    fn unknown_field_is_one_line_with_file_field_and_allowed() {
        let e = parse(&MINI.replace("n = 16", "n = 16\nbogus = 3")).unwrap_err().to_string();
        assert!(!e.contains('\n'), "{e}");
        assert!(
            e.starts_with("s.toml: bogus:") && e.contains("allowed fields") && e.contains("act_formats"),
            "{e}"
        );
        let e = parse(&format!("colour = 1\n{MINI}")).unwrap_err().to_string();
        assert!(e.starts_with("s.toml: colour:") && e.contains("formats"), "{e}");
    }

    #[test]
    fn bad_values_name_the_entry_and_the_allowed_values() {
        let cases = [
            (MINI.replace("\"e4m3\"]", "\"e3m4\"]"), "formats[1]", "f32, bf16"),
            (MINI.replace("\"mx32\"", "\"mx64\""), "scalings[1]", "deepseek"),
            (MINI.replace("\"gemv\"", "\"conv\""), "shapes[0].op", "gemm, gemv"),
            (MINI.replace("n = 16", "n = 0"), "shapes[0].n", "1 ..="),
            (
                MINI.replace("name = \"t\"", "name = \"t\"\nbackends = [\"tpu\"]"),
                "backends[0]",
                "cpu, candle",
            ),
            (MINI.replace("k = 64", "k = \"x\""), "k", "invalid type"),
            (
                MINI.replace("name = \"t\"", "name = \"t\"\nact_formats = [\"int4\"]"),
                "act_formats[0]",
                "same",
            ),
            (format!("{MINI}[timing]\nmin_samples = 0\n"), "timing.min_samples", "allowed values"),
        ];
        for (text, field, allowed) in cases {
            let e = parse(&text).unwrap_err().to_string();
            assert!(!e.contains('\n'), "{e}");
            assert!(e.starts_with(&format!("s.toml: {field}:")) && e.contains(allowed), "{field}: {e}");
        }
    }
}
