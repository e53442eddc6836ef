//! `chipbench study accumulation`: sweep K, accumulator width, rounding and the promotion
//! interval N_C over seeded random FP8 rows, print the error table, write the results JSON and
//! an SVG plot.

use crate::formats::{Format, Scaling};
use crate::results::{write_atomic, Bytes, Env, ErrorStats, Record, Run, Time, SCHEMA_VERSION};
use crate::study::sweep::{self, Point, StudyConfig};
use crate::study::{plot, Accumulator, Promotion, Rounding};
use crate::{Error, Result};
use std::path::PathBuf;
use std::time::{Instant, SystemTime};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub study: Study,
}

#[derive(Debug, clap::Subcommand)]
pub enum Study {
    /// Limited-precision FP8 GEMM accumulation with and without promotion to f32 (DeepSeek-V3).
    Accumulation(AccumulationArgs),
}

#[derive(Debug, clap::Args)]
pub struct AccumulationArgs {
    /// K values: a range of powers of two `LO..HI`, or a comma list.
    #[arg(long, default_value = "256..16384")]
    pub k: String,
    /// Accumulator mantissa bits (1..=23; 23 = f32, 10 = f16 precision), comma list.
    #[arg(long, default_value = "14", value_delimiter = ',')]
    pub width: Vec<u32>,
    /// Promotion intervals N_C (element counts, or `inf` for no promotion), comma list.
    #[arg(long, default_value = "32,64,128,256,inf", value_delimiter = ',')]
    pub nc: Vec<String>,
    /// Accumulator rounding: trunc (toward zero), rne (to nearest even), comma list.
    #[arg(long, default_value = "trunc,rne", value_delimiter = ',')]
    pub rounding: Vec<String>,
    /// Dot products (output elements) per point.
    #[arg(long, default_value_t = 1024)]
    pub rows: usize,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Input distributions: gaussian, heavy (Student-t with outlier channels), uniform; comma list.
    #[arg(long, default_value = "gaussian,heavy", value_delimiter = ',')]
    pub dist: Vec<String>,
    /// FP8 element format: e4m3 or e5m2.
    #[arg(long, default_value = "e4m3")]
    pub format: String,
    /// Scaling schemes (per-tensor, deepseek, deepseek:ue8m0, mx32, ...), comma list.
    #[arg(long, default_value = "deepseek", value_delimiter = ',')]
    pub scaling: Vec<String>,
    /// Products summed exactly before each rounded add (models a multi-operand adder; 1 = none).
    #[arg(long, default_value_t = 1)]
    pub group: usize,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Directory for the results JSON and SVG plot.
    #[arg(long, default_value = "results")]
    pub out: PathBuf,
    /// Print the table only; write no files.
    #[arg(long)]
    pub no_write: bool,
}

pub fn exec(args: Args) -> Result<()> {
    match args.study {
        Study::Accumulation(a) => accumulation(a),
    }
}

/// Parse `LO..HI` (powers of two in between) or `a,b,c`.
pub fn parse_k(s: &str) -> Result<Vec<usize>> {
    let bad =
        || Error::invalid("k", s, "LO..HI with powers of two (e.g. 256..16384), or a comma list of K ≥ 1");
    if let Some((lo, hi)) = s.split_once("..") {
        let (lo, hi): (usize, usize) =
            (lo.trim().parse().map_err(|_| bad())?, hi.trim().parse().map_err(|_| bad())?);
        if lo == 0 || hi < lo || !lo.is_power_of_two() {
            return Err(bad());
        }
        Ok(std::iter::successors(Some(lo), |&k| k.checked_mul(2)).take_while(|&k| k <= hi).collect())
    } else {
        let v: Vec<usize> =
            s.split(',').map(|x| x.trim().parse().map_err(|_| bad())).collect::<Result<_>>()?;
        if v.contains(&0) {
            return Err(bad());
        }
        Ok(v)
    }
}

fn parse_list<T: std::str::FromStr<Err = Error>>(v: &[String]) -> Result<Vec<T>> {
    v.iter().map(|s| s.trim().parse()).collect()
}

/// Build the sweep from the arguments, validating every value.
pub fn config(a: &AccumulationArgs) -> Result<StudyConfig> {
    let format: Format = a.format.parse()?;
    if !format.is_fp8() {
        return Err(Error::invalid("format", &a.format, "e4m3, e5m2"));
    }
    let roundings: Vec<Rounding> = parse_list(&a.rounding)?;
    let mut accumulators = Vec::new();
    for &w in &a.width {
        for &r in &roundings {
            accumulators.push(Accumulator::limited(w, r)?);
        }
    }
    let scalings: Vec<Scaling> = parse_list(&a.scaling)?;
    if let Some(s) = scalings.iter().find(|s| s.scheme == crate::formats::scaling::Scheme::None) {
        return Err(Error::invalid(
            "scaling",
            &s.to_string(),
            "per-tensor, deepseek, deepseek:ue8m0, mx32 (FP8 needs a scale)",
        ));
    }
    if a.rows == 0 || a.rows > 1 << 24 {
        return Err(Error::invalid("rows", &a.rows.to_string(), "a number of rows in 1 ..= 16777216"));
    }
    if a.group == 0 {
        return Err(Error::invalid("group", "0", "a positive number of products"));
    }
    let k_values = parse_k(&a.k)?;
    // Sizes before allocating: each worker holds two f32 tiles of CHUNK_ROWS × K and their
    // quantized copies (`--k 1..99999999999999` used to abort allocating 32 PiB).
    let workers = a.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let max_k = k_values.iter().copied().max().unwrap_or(1) as u128;
    let needed = 16 * a.rows.min(sweep::CHUNK_ROWS) as u128 * max_k * workers.max(1) as u128;
    if let Some(available) = crate::measure::memory::mem_available_bytes() {
        if needed > available as u128 {
            return Err(Error::TooLarge {
                what: format!("study accumulation (K up to {max_k}, {workers} workers)"),
                needed_gib: needed as f64 / (1u64 << 30) as f64,
                available_gib: available as f64 / (1u64 << 30) as f64,
            });
        }
    }
    Ok(StudyConfig {
        k_values,
        accumulators,
        promotions: parse_list(&a.nc)?,
        dists: parse_list(&a.dist)?,
        format,
        scalings,
        rows: a.rows,
        seed: a.seed,
        group: a.group,
    })
}

fn accumulation(a: AccumulationArgs) -> Result<()> {
    let cfg = config(&a)?;
    let threads = a.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| Error::Other(format!("thread pool: {e}")))?;
    let bar = indicatif::ProgressBar::new(cfg.units());
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{elapsed_precise} [{bar:40}] {pos}/{len} blocks of rows ({eta} left)",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    let started = SystemTime::now();
    let t0 = Instant::now();
    let points = pool.install(|| sweep::run(&cfg, &|| bar.inc(1)))?;
    bar.finish_and_clear();
    let elapsed = t0.elapsed().as_secs_f64();

    print!("{}", render_table(&cfg, &points));
    println!("{}", render_summary(&cfg, &points));
    println!("{} points, {} rows each, {threads} threads, {elapsed:.1} s", points.len(), cfg.rows);

    if a.no_write {
        return Ok(());
    }
    let run_id = format!("study-accumulation-{}", crate::results::utc_at(started).stamp);
    let run = to_run(&cfg, &points, &run_id, started, threads, elapsed);
    let json = a.out.join(format!("{run_id}.json"));
    write_atomic(&json, run.to_json().as_bytes(), false)?;
    println!("wrote {}", json.display());
    for &s in &cfg.scalings {
        let svg = a.out.join(format!("{run_id}-{}.svg", s.to_string().replace(':', "-")));
        let title = format!(
            "{} accumulation error vs K ({s} scaling, {} rows, group {})",
            cfg.format, cfg.rows, cfg.group
        );
        plot::write_svg(&svg, &points, s, &title)?;
        println!("wrote {}", svg.display());
    }
    Ok(())
}

fn sci(x: f64) -> String {
    if x == 0.0 {
        "0".into()
    } else {
        format!("{x:.2e}")
    }
}

/// The tables: for each (distribution, scaling, accumulator), rows N_C × columns K, max and mean
/// relative error.
pub fn render_table(cfg: &StudyConfig, points: &[Point]) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "FP8 accumulation study: {} inputs, {} rows per point, seed {}, group {}; error = |ĉ − c| / RMS(c) vs f64",
        cfg.format, cfg.rows, cfg.seed, cfg.group
    );
    for &dist in &cfg.dists {
        for &scaling in &cfg.scalings {
            for acc in cfg.all_accumulators() {
                for (metric, f) in
                    [("max", (|p: &Point| p.max_rel) as fn(&Point) -> f64), ("mean", |p| p.mean_rel)]
                {
                    let _ = write!(s, "\n{dist} {scaling} {:<10} {metric:<4}  N_C |", acc.label());
                    for k in &cfg.k_values {
                        let _ = write!(s, " {:>9}", format!("K={k}"));
                    }
                    s.push('\n');
                    for &prom in &cfg.promotions {
                        let _ = write!(
                            s,
                            "{:>w$} |",
                            prom.to_string(),
                            w = dist.name().len() + scaling.to_string().len() + 24
                        );
                        for &k in &cfg.k_values {
                            let p = points.iter().find(|p| {
                                p.dist == dist
                                    && p.scaling == scaling
                                    && p.accumulator == acc
                                    && p.promotion == prom
                                    && p.k == k
                            });
                            let _ = write!(s, " {:>9}", p.map_or("-".into(), |p| sci(f(p))));
                        }
                        s.push('\n');
                    }
                }
            }
        }
    }
    s
}

/// The acceptance lines: promotion gain at K = 4096 (or the largest K swept) and the f32 check.
pub fn render_summary(cfg: &StudyConfig, points: &[Point]) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let k = if cfg.k_values.contains(&4096) { 4096 } else { *cfg.k_values.iter().max().expect("non-empty") };
    let find = |dist, scaling, acc, prom| {
        points.iter().find(|p: &&Point| {
            p.dist == dist && p.scaling == scaling && p.accumulator == acc && p.promotion == prom && p.k == k
        })
    };
    let _ = writeln!(s, "\nsummary at K = {k} (max relative error; no promotion vs N_C = 128):");
    for &dist in &cfg.dists {
        for &scaling in &cfg.scalings {
            for acc in cfg.all_accumulators() {
                let (Some(never), Some(p128)) = (
                    find(dist, scaling, acc, Promotion::Never),
                    find(dist, scaling, acc, Promotion::Every(128)),
                ) else {
                    continue;
                };
                let _ = writeln!(
                    s,
                    "  {dist:<8} {:<14} {:<10} inf: {:>9}  128: {:>9}  gain {:>6.1}x  bitwise = f32: {}/{}",
                    scaling.to_string(),
                    acc.label(),
                    sci(never.max_rel),
                    sci(p128.max_rel),
                    never.max_rel / p128.max_rel,
                    never.same_as_f32,
                    never.rows
                );
            }
        }
    }
    s
}

fn to_run(
    cfg: &StudyConfig,
    points: &[Point],
    run_id: &str,
    started: SystemTime,
    threads: usize,
    secs: f64,
) -> Run {
    let records = points
        .iter()
        .map(|p| {
            let (width, rounding) = match p.accumulator {
                Accumulator::Limited { width, rounding } => (width.to_string(), rounding.to_string()),
                Accumulator::NativeF32 => ("23".into(), "f32-native".into()),
            };
            Record {
                backend: "emulated".into(),
                device: format!("accumulator {}", p.accumulator.label()),
                op: "study-accumulation".into(),
                format: cfg.format.to_string(),
                act_format: cfg.format.to_string(),
                scaling: p.scaling.to_string(),
                m: p.rows,
                n: 1,
                k: p.k,
                threads,
                bytes: Bytes::default(),
                time: Time::default(),
                gflops: 0.0,
                gbs: 0.0,
                error: ErrorStats { max_abs: p.max_abs, max_rel: p.max_rel, diff: p.diff },
                valid: p.max_rel.is_finite(),
                note: format!(
                    "width={width} rounding={rounding} nc={} dist={} group={} rows={} seed={} mean_rel={:e} \
                     rms_ref={:e} same_as_f32={} rel=|c-ref|/rms(ref)",
                    p.promotion, p.dist, cfg.group, p.rows, cfg.seed, p.mean_rel, p.rms_ref, p.same_as_f32
                ),
                timing: String::new(),
                memory: None,
                ranks: None,
                algbw_gbs: None,
                busbw_gbs: None,
                payload: None,
                ..Default::default()
            }
        })
        .collect();
    Run {
        schema_version: SCHEMA_VERSION,
        run_id: run_id.into(),
        created: crate::results::utc_at(started).rfc3339,
        tool: format!("chipbench {}", env!("CARGO_PKG_VERSION")),
        suite: "study-accumulation".into(),
        env: Env {
            os: std::env::consts::OS.into(),
            arch: std::env::consts::ARCH.into(),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            threads,
            chipbench_version: env!("CARGO_PKG_VERSION").into(),
            ..Env::default()
        },
        calibration: None,
        records,
        complete: true,
        notes: vec![format!(
            "emulated accumulation, {} s wall; error = |c - ref| / RMS(ref) over rows, ref = f64 dot product of the \
             same quantized inputs; time fields are not measured",
            (secs * 10.0).round() / 10.0
        )],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn k_ranges() {
        assert_eq!(parse_k("256..2048").unwrap(), vec![256, 512, 1024, 2048]);
        assert_eq!(parse_k("7,129").unwrap(), vec![7, 129]);
        assert!(parse_k("0..8").is_err());
        assert!(parse_k("300..600").is_err());
    }
}
