//! `chipbench info`: what this machine offers — backends (and why one does not open), devices
//! (CPU model and features, every wgpu adapter) and, per backend, how each op × format runs
//! (native, emulated, unsupported).

use crate::formats::Format;
use crate::kernels::registry::BackendKind;
use crate::kernels::{Op, Support};
use crate::measure::{env, fma};
use crate::report::markdown::table;
use crate::Result;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn exec(args: Args) -> Result<()> {
    let env = env::collect(std::thread::available_parallelism().map_or(1, |n| n.get()), Vec::new());
    let adapters = crate::kernels::wgpu::list_adapters();
    let mut backends = Vec::new();
    for kind in BackendKind::ALL {
        backends.push((kind, kind.open(0)));
    }
    if args.json {
        let v = serde_json::json!({
            "env": env,
            "fma_isa": fma::isa(),
            "cpu_compute": compute_units(),
            "wgpu_adapters": adapters,
            "backends": backends.iter().map(|(k, b)| match b {
                Ok(b) => serde_json::json!({"name": k.name(), "device": b.device(), "threads": b.threads(), "capabilities": b.capabilities()}),
                Err(e) => serde_json::json!({"name": k.name(), "error": e.to_string()}),
            }).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&v).expect("json"));
        return Ok(());
    }
    println!("chipbench {} ({}, git {})\n", env!("CARGO_PKG_VERSION"), env.rustc, env.git_revision);
    println!(
        "CPU: {} ({}), {} cores, {:.1} GiB",
        env.cpu_model,
        env.arch,
        env.cores,
        env.memory_bytes as f64 / (1u64 << 30) as f64
    );
    println!("  features: {}", env.cpu_features.join(" "));
    println!("  FMA calibration loop: {}", fma::isa());
    println!("  CPU kernels' compute units (activations × weights):");
    for (what, unit) in compute_units() {
        println!("    {what:<34} {unit}");
    }
    println!("OS: {}", env.os);
    if adapters.is_empty() {
        println!("wgpu adapters: none found");
    } else {
        println!("wgpu adapters:");
        for (i, a) in adapters.iter().enumerate() {
            println!(
                "  [{i}] {} ({}, {}, driver {})",
                a.name,
                a.kind,
                a.api,
                if a.driver.is_empty() { "-" } else { &a.driver }
            );
            let coop = if a.coop_matrix.is_empty() { "none".to_string() } else { a.coop_matrix.join(", ") };
            println!("      cooperative matrices: {coop}");
        }
        println!("  {COOP_NOTE}");
    }
    println!("\nBackends:");
    for (k, b) in &backends {
        match b {
            Ok(b) => {
                let d = b.device();
                let threads = match b.threads() {
                    1 => "1 thread".to_string(),
                    n => format!("{n} threads"),
                };
                println!("  {:<7} {} ({}), {threads}", k.name(), d.name, d.kind);
                if !d.coop_matrix_path.is_empty() {
                    println!("          GEMM on cooperative matrices: {}", d.coop_matrix_path);
                }
            }
            Err(e) => println!("  {:<7} not available: {e}", k.name()),
        }
    }
    let mut header = vec!["backend", "op"];
    header.extend(Format::ALL.iter().map(|f| f.name()));
    let mut rows = Vec::new();
    let mut footnotes: Vec<String> = Vec::new();
    for (k, b) in &backends {
        let Ok(b) = b else { continue };
        let caps = b.capabilities();
        for op in [Op::Gemm, Op::Gemv] {
            let mut row = vec![k.name().to_string(), op.name().to_string()];
            for f in Format::ALL {
                let cell = match caps.iter().find(|c| c.op == op && c.format == f).map(|c| &c.support) {
                    Some(Support::Native) => "native".to_string(),
                    Some(Support::Emulated(why)) => footnote(&mut footnotes, "emulated", k.name(), why),
                    Some(Support::Unsupported(why)) => footnote(&mut footnotes, "unsupported", k.name(), why),
                    None => "-".to_string(),
                };
                row.push(cell);
            }
            rows.push(row);
        }
    }
    println!("\nCapabilities (weight format per op):\n");
    print!("{}", table(&header, &rows));
    for (i, f) in footnotes.iter().enumerate() {
        println!("[{}] {f}", i + 1);
    }
    Ok(())
}

/// What the adapters' cooperative-matrix lists leave out (wgpu 30 gives no raw Vulkan list).
const COOP_NOTE: &str = "(cooperative matrices as wgpu 30 lists them: subgroup scope, M/N/K of 8 or 16, \
     f16/f32/i32/u32 types only; the driver's FP8, BF16 and int8 configurations are filtered out \
     before chipbench can see them)";

/// "emulated [2]", with the reason listed once below the table.
fn footnote(notes: &mut Vec<String>, what: &str, backend: &str, why: &str) -> String {
    let text = format!("{backend}: {why}");
    let i = match notes.iter().position(|n| *n == text) {
        Some(i) => i,
        None => {
            notes.push(text);
            notes.len() - 1
        }
    };
    format!("{what} [{}]", i + 1)
}

/// Which units the native CPU kernels use here, per operand formats (a record's `compute`).
fn compute_units() -> Vec<(String, String)> {
    let cpu = crate::kernels::cpu::CpuBackend::new(1);
    let low = "bf16/e4m3/e5m2";
    let gemm = crate::kernels::SKINNY_M + 1;
    vec![
        ("f32 × any format".to_string(), cpu.compute_label(Format::F32, Format::E4M3, 1)),
        (
            format!("{low} × {low}, GEMV and m ≤ {}", crate::kernels::SKINNY_M),
            cpu.compute_label(Format::BF16, Format::E4M3, 1),
        ),
        (format!("{low} × {low}, GEMM"), cpu.compute_label(Format::BF16, Format::E4M3, gemm)),
        (format!("{low} × f16/f32"), cpu.compute_label(Format::BF16, Format::F16, gemm)),
    ]
}
