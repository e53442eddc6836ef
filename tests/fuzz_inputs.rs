//! Fuzzing without nightly: property tests that mutate valid inputs (drop, duplicate, retype,
//! extreme values, truncation, invalid UTF-8, random bytes) and feed them to every parser that
//! reads user input: results JSON, suite TOML, chip and model TOML, the claims catalogue, the
//! values of `chipbench convert`, and the list/size arguments of `run` and `collectives`.
//!
//! The properties: no panic (proptest turns a panic into a failing case), and every rejection is
//! one line that names the source (file or argument) and a field. When a structurally mutated
//! TOML file is refused, the field must be a key (`memory.value`, `shapes[0].n`), not only a line
//! number. Inputs that are accepted are pushed through what consumes them (suite expansion and
//! size checks, parameter counts, Markdown and merged reports), which must not panic either.
//!
//! Seeds: every file under configs/ and seeds/claims.toml, read once. Case counts are split over
//! the targets (constants below); [`CASE_TOTAL`] is their sum, 150,300, and a test checks it is
//! at least 100,000. The whole file runs in about 10 s with `cargo test --release` on 2 cores.

use chipbench::Error;
use proptest::prelude::*;
use serde_json::Value;
use std::path::Path;
use std::sync::OnceLock;

const RESULTS_MUTATIONS: u32 = 20_000;
const RESULTS_BYTES: u32 = 20_000;
const RESULTS_CONSUMERS: u32 = 300;
const SUITE_MUTATIONS: u32 = 12_000;
const SUITE_BYTES: u32 = 4_000;
const CHIP_MUTATIONS: u32 = 12_000;
const CHIP_BYTES: u32 = 4_000;
const MODEL_MUTATIONS: u32 = 12_000;
const MODEL_BYTES: u32 = 4_000;
const CLAIMS_MUTATIONS: u32 = 6_000;
const CLAIMS_BYTES: u32 = 2_000;
const CONVERT_VALUES: u32 = 20_000;
const CONVERT_LISTS: u32 = 4_000;
const SIZE_STRINGS: u32 = 20_000;
const CLI_LISTS: u32 = 10_000;

/// Every fuzz case this file runs.
const CASE_TOTAL: u32 = RESULTS_MUTATIONS
    + RESULTS_BYTES
    + RESULTS_CONSUMERS
    + SUITE_MUTATIONS
    + SUITE_BYTES
    + CHIP_MUTATIONS
    + CHIP_BYTES
    + MODEL_MUTATIONS
    + MODEL_BYTES
    + CLAIMS_MUTATIONS
    + CLAIMS_BYTES
    + CONVERT_VALUES
    + CONVERT_LISTS
    + SIZE_STRINGS
    + CLI_LISTS;

/// `CHIPBENCH_FUZZ_PERCENT` scales every count (e.g. 10 while developing, 1000 for a long soak).
fn config(cases: u32) -> ProptestConfig {
    let percent: u64 =
        std::env::var("CHIPBENCH_FUZZ_PERCENT").ok().and_then(|v| v.parse().ok()).unwrap_or(100);
    let cases = (cases as u64 * percent / 100).clamp(1, u32::MAX as u64) as u32;
    ProptestConfig { cases, failure_persistence: None, max_shrink_time: 20_000, ..ProptestConfig::default() }
}

// ---------------------------------------------------------------------------------------------
// Mutations

/// One structural mutation of a JSON value tree, chosen by `sel` and `op`.
fn mutate_value(v: &mut Value, sel: u64, op: u8, depth: u32) {
    let kids = match v {
        Value::Object(m) => m.len(),
        Value::Array(a) => a.len(),
        _ => 0,
    };
    if kids > 0 && depth < 6 && !sel.is_multiple_of(3) {
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

/// One structural mutation of a TOML value tree: drop a key, add an unknown one, duplicate an
/// array entry, or replace a value by another type or an extreme (−1, 0, 1e308, NaN, ±inf, a
/// subnormal, i64::MAX, 2^40, "", [], {}).
fn mutate_toml(v: &mut toml::Value, sel: u64, op: u8, depth: u32) {
    use toml::Value as T;
    let kids = match v {
        T::Table(t) => t.len(),
        T::Array(a) => a.len(),
        _ => 0,
    };
    // The root stays a table (a document), so only its children are replaced.
    if kids > 0 && depth < 6 && (depth == 0 || !sel.is_multiple_of(3)) {
        let i = (sel / 3) as usize % kids;
        let descend = depth == 0 && sel.is_multiple_of(3) && op % 16 < 2;
        if !descend {
            let child = match v {
                T::Table(t) => t.iter_mut().nth(i).map(|(_, c)| c),
                T::Array(a) => a.get_mut(i),
                _ => None,
            };
            if let Some(c) = child {
                return mutate_toml(c, sel / 7 + 1, op, depth + 1);
            }
        }
    }
    match (op % 16, &mut *v) {
        (0, T::Table(t)) if !t.is_empty() => {
            let k = t.keys().nth(sel as usize % t.len()).cloned().unwrap();
            t.remove(&k);
        }
        (1, T::Table(t)) => {
            t.insert(format!("unknown_field_{}", sel % 100), T::Integer(1));
        }
        (2, T::Array(a)) if !a.is_empty() => {
            let x = a[sel as usize % a.len()].clone();
            a.push(x);
        }
        (3, _) => *v = T::String("not a number".into()),
        (4, _) => *v = T::Integer(-1),
        (5, _) => *v = T::Integer(0),
        (6, _) => *v = T::Float(1e308),
        (7, _) => *v = T::Float(f64::NAN),
        (8, _) => *v = T::Float(if sel.is_multiple_of(2) { f64::INFINITY } else { f64::NEG_INFINITY }),
        (9, _) => *v = T::Integer(i64::MAX),
        (10, _) => *v = T::Array(vec![]),
        (11, _) => *v = T::Boolean(true),
        (12, _) => *v = T::Table(toml::Table::new()),
        (13, _) => *v = T::String(String::new()),
        (14, _) => *v = T::Float(1e-310),
        _ => *v = T::Integer(1 << 40),
    }
}

/// Byte-level damage after serialising: truncate, flip a bit, splice invalid UTF-8, duplicate a
/// line (a duplicate key), replace a number by one too large for any integer type, or nothing.
fn damage_bytes(mut b: Vec<u8>, sel: u64, op: u8) -> Vec<u8> {
    if b.is_empty() {
        return b;
    }
    let at = sel as usize % b.len();
    match op % 7 {
        0 => b.truncate(at),
        1 => b[at] ^= 1 << (sel % 8),
        2 => b.splice(at..at, [0xFF, 0xFE, 0xC3]).for_each(drop),
        3 => {
            let start = b[..at].iter().rposition(|&c| c == b'\n').map_or(0, |p| p + 1);
            let end = b[at..].iter().position(|&c| c == b'\n').map_or(b.len(), |p| at + p + 1);
            let line = b[start..end].to_vec();
            b.splice(end..end, line).for_each(drop);
        }
        4 => {
            if let Some(p) = b[at..].iter().position(u8::is_ascii_digit) {
                b.splice(at + p..at + p, *b"99999999999999999999999").for_each(drop);
            }
        }
        _ => {}
    }
    b
}

/// A valid file mutated `muts` times in its value tree, then damaged as bytes (`damage` = None:
/// structure only).
fn mutated_toml(seed: &str, muts: &[(u64, u8)], damage: Option<(u64, u8)>) -> Vec<u8> {
    let mut v: toml::Value = toml::from_str(seed).unwrap();
    for &(sel, op) in muts {
        mutate_toml(&mut v, sel, op, 0);
    }
    let text = toml::to_string(&v).unwrap_or_else(|_| v.to_string());
    match damage {
        Some((sel, op)) => damage_bytes(text.into_bytes(), sel, op),
        None => text.into_bytes(),
    }
}

// ---------------------------------------------------------------------------------------------
// Properties

/// The property every parser must meet: a rejection is one line, names the source, and names a
/// field (or argument). With `key_required`, a line number alone is not enough.
fn check_rejection<T>(
    result: Result<T, Error>,
    source: &str,
    key_required: bool,
) -> Result<(), TestCaseError> {
    let Err(e) = result else { return Ok(()) };
    let msg = e.to_string();
    prop_assert!(!msg.contains('\n') && !msg.contains('\r'), "multi-line error: {msg:?}");
    prop_assert!(msg.contains(source), "error does not name the source {source}: {msg}");
    let field = match &e {
        Error::Config { field, .. } | Error::Invalid { field, .. } => field.clone(),
        Error::TooLarge { what, .. } => what.clone(),
        other => return Err(TestCaseError::fail(format!("unexpected error kind for bad input: {other}"))),
    };
    prop_assert!(!field.trim().is_empty(), "no field named: {msg}");
    if key_required {
        let bare = field == "toml" || field.starts_with("line ") || field == "json";
        prop_assert!(!bare, "field is not a key: {msg}");
    }
    Ok(())
}

fn repo_file(rel: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)).unwrap()
}

/// `(repo-relative path, text)` of every file in a configs/ subdirectory, sorted.
fn config_files(dir: &str) -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs").join(dir);
    let mut v: Vec<(String, String)> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .map(|p| (format!("configs/{dir}/{}", p.file_name().unwrap().to_string_lossy()), repo_file_abs(&p)))
        .collect();
    v.sort();
    v
}

fn repo_file_abs(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap()
}

fn suites() -> &'static [(String, String)] {
    static S: OnceLock<Vec<(String, String)>> = OnceLock::new();
    S.get_or_init(|| config_files("suites"))
}
fn chips() -> &'static [(String, String)] {
    static S: OnceLock<Vec<(String, String)>> = OnceLock::new();
    S.get_or_init(|| config_files("chips"))
}
fn models() -> &'static [(String, String)] {
    static S: OnceLock<Vec<(String, String)>> = OnceLock::new();
    S.get_or_init(|| config_files("models"))
}
fn claims_seed() -> &'static str {
    static S: OnceLock<String> = OnceLock::new();
    S.get_or_init(|| repo_file("seeds/claims.toml"))
}

/// Parse a suite and, when accepted, expand it and check every case's size (no allocation).
fn suite_target(bytes: &[u8], source: &str) -> Result<(), Error> {
    use chipbench::measure::{memory, suite::Suite};
    let mut suite = Suite::parse_bytes(bytes, Path::new(source))?;
    let mut quick = suite.clone();
    quick.make_quick();
    suite.apply(&Default::default());
    for c in suite.cases.iter().chain(&quick.cases) {
        let _ = memory::check_fits(&c.shape, &c.spec, 3, Some(1 << 34));
    }
    Ok(())
}

/// Parse a chip and, when accepted, use every derived figure.
fn chip_target(bytes: &[u8], source: &str) -> Result<(), Error> {
    use chipbench::profiles::{self, Precision};
    let path = Path::new(source);
    let chip = profiles::Chip::parse(path, profiles::utf8_text(path, bytes)?)?;
    for (_, f) in chip.figures() {
        let _ = f.to_string();
    }
    let _ = (chip.memory_bytes(), chip.memory_bw_bytes_s(), chip.link_per_direction_bytes_s());
    for p in Precision::REQUIRED.into_iter().chain([Precision::Fp4]) {
        let _ = (chip.peak_flops(p), chip.is_native(p));
    }
    Ok(())
}

/// Parse a model and, when accepted, compute what the planner computes from it.
fn model_target(bytes: &[u8], source: &str) -> Result<(), Error> {
    use chipbench::profiles;
    let path = Path::new(source);
    let model = profiles::Model::parse(path, profiles::utf8_text(path, bytes)?)?;
    let counts = model.param_counts();
    let _ = counts.active_as_published(&model);
    for ctx in [1u64, 4096, 131_072] {
        let _ = (model.kv_elements(ctx), model.attention_flops_per_token(ctx));
        // The model step's products (run --model) of any accepted profile.
        for phase in [chipbench::modelstep::Phase::Decode, chipbench::modelstep::Phase::Prefill] {
            let s = chipbench::modelstep::StepShape { phase, batch: 7, prompt: 512, context: ctx };
            for p in chipbench::modelstep::shapes::products(&model, &s) {
                assert!(p.m >= 1 && p.count > 0.0 && p.flops().is_finite(), "{p:?}");
            }
        }
    }
    Ok(())
}

fn claims_target(bytes: &[u8], source: &str) -> Result<(), Error> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| Error::config(source, "toml", format!("not UTF-8 text: {e}")))?;
    chipbench::claims::Catalogue::parse(Path::new(source), text).map(|_| ())
}

// ---------------------------------------------------------------------------------------------
// Results JSON

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
        time: Time { median_s: 1e-3, min_s: 9e-4, max_s: 2e-3, samples: 20, ..Default::default() },
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
        ..Default::default()
    };
    let mut bf16 = record.clone();
    bf16.format = "bf16".into();
    bf16.scaling = "none".into();
    bf16.time.median_s = 2e-3;
    let run = Run {
        schema_version: SCHEMA_VERSION,
        run_id: "fuzz".into(),
        created: "2026-01-01T00:00:00Z".into(),
        tool: "chipbench".into(),
        suite: "default".into(),
        env: Env::default(),
        calibration: Some(Calibration::default()),
        records: vec![record, bf16],
        complete: true,
        notes: vec![],
    };
    serde_json::to_value(&run).unwrap()
}

fn mutated_run(muts: &[(u64, u8)], damage: (u64, u8)) -> Vec<u8> {
    let mut v = sample_run_json();
    for &(sel, op) in muts {
        mutate_value(&mut v, sel, op, 0);
    }
    damage_bytes(serde_json::to_vec(&v).unwrap(), damage.0, damage.1)
}

proptest! {
    #![proptest_config(config(RESULTS_MUTATIONS))]
    #[test]
    fn results_json_mutations_never_panic(muts in prop::collection::vec((any::<u64>(), any::<u8>()), 1..4),
                                         damage in (any::<u64>(), any::<u8>())) {
        let bytes = mutated_run(&muts, damage);
        let r = chipbench::results::Run::parse(&bytes, Path::new("fuzz.json"));
        check_rejection(r, "fuzz.json", false)?;
    }
}

proptest! {
    #![proptest_config(config(RESULTS_BYTES))]
    #[test]
    fn results_json_random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let r = chipbench::results::Run::parse(&bytes, Path::new("noise.json"));
        check_rejection(r, "noise.json", false)?;
    }
}

proptest! {
    #![proptest_config(config(RESULTS_CONSUMERS))]
    /// What `report`, `project --chip local` and the Markdown exporter do with an accepted file.
    #[test]
    fn accepted_results_feed_the_reports_without_panic(
        muts in prop::collection::vec((any::<u64>(), any::<u8>()), 1..4)) {
        let bytes = mutated_run(&muts, (0, 6));
        if let Ok(run) = chipbench::results::Run::parse(&bytes, Path::new("fuzz.json")) {
            let _ = chipbench::report::markdown::render(&run);
            let _ = chipbench::project::check::check_local(&run);
            let loaded = [chipbench::claims::LoadedRun { path: "fuzz.json".into(), run }];
            let _ = chipbench::report::merge::build(&loaded, &[], "fuzz");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// TOML configs

proptest! {
    #![proptest_config(config(SUITE_MUTATIONS))]
    #[test]
    fn suite_mutations_never_panic(i in any::<usize>(),
                                   muts in prop::collection::vec((any::<u64>(), any::<u8>()), 1..4),
                                   damage in prop::option::of((any::<u64>(), any::<u8>()))) {
        let (name, seed) = &suites()[i % suites().len()];
        let bytes = mutated_toml(seed, &muts, damage);
        check_rejection(suite_target(&bytes, name), name, damage.is_none())?;
    }
}

proptest! {
    #![proptest_config(config(SUITE_BYTES))]
    #[test]
    fn suite_random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        check_rejection(suite_target(&bytes, "noise.toml"), "noise.toml", false)?;
    }
}

proptest! {
    #![proptest_config(config(CHIP_MUTATIONS))]
    #[test]
    fn chip_mutations_never_panic(i in any::<usize>(),
                                  muts in prop::collection::vec((any::<u64>(), any::<u8>()), 1..4),
                                  damage in prop::option::of((any::<u64>(), any::<u8>()))) {
        let (name, seed) = &chips()[i % chips().len()];
        let bytes = mutated_toml(seed, &muts, damage);
        check_rejection(chip_target(&bytes, name), name, damage.is_none())?;
    }
}

proptest! {
    #![proptest_config(config(CHIP_BYTES))]
    #[test]
    fn chip_random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        check_rejection(chip_target(&bytes, "noise.toml"), "noise.toml", false)?;
    }
}

proptest! {
    #![proptest_config(config(MODEL_MUTATIONS))]
    #[test]
    fn model_mutations_never_panic(i in any::<usize>(),
                                   muts in prop::collection::vec((any::<u64>(), any::<u8>()), 1..4),
                                   damage in prop::option::of((any::<u64>(), any::<u8>()))) {
        let (name, seed) = &models()[i % models().len()];
        let bytes = mutated_toml(seed, &muts, damage);
        check_rejection(model_target(&bytes, name), name, damage.is_none())?;
    }
}

proptest! {
    #![proptest_config(config(MODEL_BYTES))]
    #[test]
    fn model_random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        check_rejection(model_target(&bytes, "noise.toml"), "noise.toml", false)?;
    }
}

proptest! {
    #![proptest_config(config(CLAIMS_MUTATIONS))]
    #[test]
    fn claims_mutations_never_panic(muts in prop::collection::vec((any::<u64>(), any::<u8>()), 1..4),
                                    damage in prop::option::of((any::<u64>(), any::<u8>()))) {
        let bytes = mutated_toml(claims_seed(), &muts, damage);
        check_rejection(claims_target(&bytes, "claims.toml"), "claims.toml", damage.is_none())?;
    }
}

proptest! {
    #![proptest_config(config(CLAIMS_BYTES))]
    #[test]
    fn claims_random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        check_rejection(claims_target(&bytes, "noise.toml"), "noise.toml", false)?;
    }
}

// ---------------------------------------------------------------------------------------------
// Arguments: convert values, sizes, lists

/// Short text rich in control characters (newline, carriage return, tab, escape, NUL), which
/// must come out escaped in a one-line message.
const CONTROL: &str = "[a-z0-9,.\n\r\t\x1b\x00]{1,12}";

/// Number-like text (most of it valid), or anything at all.
fn value_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[-+]?(0[xX][0-9a-fA-F]{0,10}|[0-9]{0,45}(\\.[0-9]{0,12})?([eE][-+]?[0-9]{1,4})?|inf|nan|infinity|NaN)",
        any::<String>(),
        CONTROL,
        prop::collection::vec(any::<u8>(), 0..12).prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ]
}

proptest! {
    #![proptest_config(config(CONVERT_VALUES))]
    /// `convert`: a value parses to an f32 or is refused naming it; an accepted value follows each
    /// format's NaN/inf semantics (E4M3FN has no inf: a plain cast gives NaN, --saturate gives
    /// ±448; E5M2 keeps inf or saturates to ±57344; E8M0 has no sign, zero or inf: NaN code).
    #[test]
    fn convert_values_follow_each_format(s in value_text()) {
        use chipbench::cli::convert::{parse_value, Target};
        use chipbench::formats::Overflow;
        let x = match parse_value(&s) {
            Ok(x) => x,
            Err(e) => return check_rejection(Err::<(), _>(e), "value", false),
        };
        for (t, o) in [("e4m3", Overflow::Cast), ("e4m3", Overflow::Saturate),
                       ("e5m2", Overflow::Cast), ("e5m2", Overflow::Saturate),
                       ("e8m0", Overflow::Cast)] {
            let (code, v) = Target::parse(t).unwrap().convert(x, o);
            match (t, o) {
                _ if x.is_nan() => prop_assert!(v.is_nan(), "{t} {s}: NaN became {v}"),
                ("e8m0", _) if x <= 0.0 || x.is_infinite() => prop_assert_eq!(code, 0xff),
                ("e8m0", _) => prop_assert!(v > 0.0 && v.is_finite(), "{s} -> {v}"),
                ("e4m3", Overflow::Cast) if x.abs() >= 464.0 => prop_assert!(v.is_nan(), "{s} -> {v}"),
                ("e4m3", _) => prop_assert!(v.abs() <= 448.0 && (v == 0.0 || v.signum() == x.signum())),
                ("e5m2", Overflow::Cast) if x.abs() >= 61440.0 => prop_assert_eq!(v, f32::INFINITY.copysign(x)),
                _ => prop_assert!(v.abs() <= 57344.0 && (v == 0.0 || v.signum() == x.signum())),
            }
        }
    }
}

proptest! {
    #![proptest_config(config(CONVERT_LISTS))]
    /// All or nothing: a list converts row for row, or fails naming the first bad value.
    #[test]
    fn convert_lists_are_all_or_nothing(vals in prop::collection::vec(value_text(), 1..6)) {
        use chipbench::cli::convert::{convert_all, parse_value, Target};
        let r = convert_all(Target::parse("e4m3fn").unwrap(), chipbench::formats::Overflow::Cast, &vals);
        match vals.iter().position(|v| parse_value(v).is_err()) {
            None => prop_assert_eq!(r.unwrap().len(), vals.len()),
            Some(_) => check_rejection(r, "value", false)?,
        }
    }
}

proptest! {
    #![proptest_config(config(SIZE_STRINGS))]
    /// `collectives --sizes`: sorted, positive, duplicate-free sizes, or a refusal naming --sizes.
    #[test]
    fn collective_sizes_parse_or_refuse(s in prop_oneof![
        "([0-9]{0,22}(b|k|K|KiB|kb|M|MiB|G|GiB|gb|T|x|\\.5| )?(\\.\\.[0-9]{0,22}(K|MiB|G)?)?,?){1,3}",
        any::<String>(),
        CONTROL,
    ]) {
        match chipbench::collectives::parse_sizes(&s) {
            Ok(v) => {
                prop_assert!(!v.is_empty() && v.iter().all(|&x| x > 0));
                prop_assert!(v.windows(2).all(|w| w[0] < w[1]), "{v:?}");
                prop_assert!(v.len() <= 64 * s.split(',').count());
            }
            Err(e) => check_rejection(Err::<(), _>(e), "--sizes", false)?,
        }
    }
}

proptest! {
    #![proptest_config(config(CLI_LISTS))]
    /// The comma lists of `run` (--backend, --format, --scaling) and `collectives` (--op,
    /// --payload): accepted or one line naming the argument.
    #[test]
    fn cli_lists_parse_or_refuse(s in prop_oneof![
        "((cpu|candle|wgpu|all|gpu|tpu|f32|bf16|e4m3|e5m2|fp8|int4|deepseek|deepseek:ue8m0|mx32:f32|none:f32|per-tensor|all-reduce|all_to_all|bogus| |)(,)?){1,4}",
        any::<String>(),
        CONTROL,
    ]) {
        use chipbench::formats::{Format, Scaling};
        use chipbench::kernels::registry::BackendKind;
        check_rejection(BackendKind::parse_list(&s), "backend", false)?;
        check_rejection(s.parse::<Format>(), "format", false)?;
        check_rejection(s.parse::<Scaling>(), "scaling", false)?;
        check_rejection(chipbench::collectives::Op::parse_list(&s), "--op", false)?;
        check_rejection(chipbench::collectives::parse_payloads(&s), "--payload", false)?;
    }
}

// ---------------------------------------------------------------------------------------------
// Hand cases

#[test]
fn the_case_total_is_at_least_100k() {
    println!("fuzz cases in tests/fuzz_inputs.rs: {CASE_TOTAL}");
    assert_eq!(CASE_TOTAL, 150_300, "update the module docs");
    const { assert!(CASE_TOTAL >= 100_000) };
}

#[test]
fn every_seed_parses_unmutated() {
    let bytes = serde_json::to_vec(&sample_run_json()).unwrap();
    chipbench::results::Run::parse(&bytes, Path::new("ok.json")).unwrap();
    for (name, text) in suites() {
        suite_target(text.as_bytes(), name).unwrap();
        suite_target(&mutated_toml(text, &[], None), name).unwrap();
    }
    for (name, text) in chips() {
        chip_target(&mutated_toml(text, &[], None), name).unwrap();
    }
    for (name, text) in models() {
        model_target(&mutated_toml(text, &[], None), name).unwrap();
    }
    claims_target(&mutated_toml(claims_seed(), &[], None), "claims.toml").unwrap();
    assert!(
        suites().iter().any(|(n, _)| n.contains("default")) && chips().len() >= 13 && models().len() >= 9
    );
}

#[test]
fn a_dropped_record_field_is_named() {
    let mut v = sample_run_json();
    v["records"][0].as_object_mut().unwrap().remove("gflops");
    let e =
        chipbench::results::Run::parse(&serde_json::to_vec(&v).unwrap(), Path::new("x.json")).unwrap_err();
    assert!(e.to_string().contains("gflops"), "{e}");
}

#[test]
fn retyped_toml_values_name_their_dotted_key() {
    let claims = claims_seed().replacen("rows = 1024", "rows = \"x\"", 1);
    let e = claims_target(claims.as_bytes(), "c.toml").unwrap_err().to_string();
    // `check` is an internally tagged enum: serde buffers the table, so the error points at it.
    assert!(e.starts_with("c.toml: claim.check: invalid type") && e.contains("(line "), "{e}");
    let (name, h20) = chips().iter().find(|(n, _)| n.ends_with("h20.toml")).unwrap();
    let e = chip_target(h20.replacen("value = 96.0", "value = \"96\"", 1).as_bytes(), name).unwrap_err();
    assert!(e.to_string().contains("h20.toml: memory.value: invalid type"), "{e}");
    let suite = suites()[0].1.replacen("[[shapes]]", "[[shapes]]\ncolour = 1", 2);
    let e = suite_target(suite.as_bytes(), "s.toml").unwrap_err().to_string();
    assert!(e.starts_with("s.toml: colour: unknown field"), "{e}");
}
