//! The environment a run happened in, recorded with every result: a number without the machine,
//! compiler and revision that produced it cannot be compared with anything.

use crate::kernels::DeviceInfo;
use crate::results::{Env, HostLoad};
use std::process::Command;
use std::time::Instant;

/// CPU flags worth recording for matrix kernels (the rest of /proc/cpuinfo's list is noise).
const INTERESTING_FLAGS: &[&str] = &[
    "sse2",
    "sse4_1",
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512dq",
    "avx512vl",
    "avx512_bf16",
    "avx512_fp16",
    "avx512_vnni",
    "avx_vnni",
    "amx_bf16",
    "amx_int8",
    "amx_tile",
    "amx_fp16",
    // aarch64 names
    "asimd",
    "asimdhp",
    "fphp",
    "asimddp",
    "bf16",
    "i8mm",
    "sve",
    "sve2",
    "sme",
];

/// Collect the environment. `threads` is what the run uses; `devices` what the backends saw.
pub fn collect(threads: usize, devices: Vec<DeviceInfo>) -> Env {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let (cpu_model, cpu_features) = parse_cpuinfo(&cpuinfo);
    let id = parse_cpu_id(&cpuinfo);
    let (base_clock_mhz, base_clock_source) = match sysfs_base_mhz() {
        Some(m) => (Some(m), "sysfs base_frequency".to_string()),
        None => match id.cpuinfo_mhz {
            Some(m) => (Some(m), "cpuinfo cpu MHz".to_string()),
            None => (None, String::new()),
        },
    };
    Env {
        host: hostname(),
        os: os_description(),
        arch: std::env::consts::ARCH.to_string(),
        cpu_model: if cpu_model.is_empty() { "unknown".into() } else { cpu_model },
        cpu_features: if cpu_features.is_empty() { detected_features() } else { cpu_features },
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        threads,
        memory_bytes: super::memory::mem_total_bytes().unwrap_or(0),
        rustc: rustc_version(),
        git_revision: git_revision(),
        chipbench_version: env!("CARGO_PKG_VERSION").to_string(),
        devices,
        cpu_vendor: id.vendor,
        cpu_family: id.family,
        cpu_model_number: id.model,
        cpu_stepping: id.stepping,
        base_clock_mhz,
        base_clock_source,
        measured_clock_mhz: measured_clock_mhz(),
        load_before: None,
        load_after: HostLoad::read(),
    }
}

/// `collect`, with the load snapshot `before` taken before the run's first measurement (the
/// `after` one is taken now).
pub fn collect_with_load(threads: usize, devices: Vec<DeviceInfo>, before: Option<HostLoad>) -> Env {
    Env { load_before: before, ..collect(threads, devices) }
}

/// Vendor, family, model, stepping and the reported clock from /proc/cpuinfo text.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CpuId {
    pub vendor: String,
    pub family: Option<u32>,
    pub model: Option<u32>,
    pub stepping: Option<u32>,
    pub cpuinfo_mhz: Option<f64>,
}

/// The first processor's identification (x86 `vendor_id`/`cpu family`/`model`/`stepping`;
/// aarch64 `CPU implementer`/`CPU variant`/`CPU part`/`CPU revision`, hex).
pub fn parse_cpu_id(text: &str) -> CpuId {
    let field = |key: &str| {
        text.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == key).then(|| v.trim().to_string())
        })
    };
    let num = |key: &str| {
        let v = field(key)?;
        match v.strip_prefix("0x") {
            Some(hex) => u32::from_str_radix(hex, 16).ok(),
            None => v.parse().ok(),
        }
    };
    CpuId {
        vendor: field("vendor_id").or_else(|| field("CPU implementer")).unwrap_or_default(),
        family: num("cpu family").or_else(|| num("CPU variant")),
        model: num("model").or_else(|| num("CPU part")),
        stepping: num("stepping").or_else(|| num("CPU revision")),
        cpuinfo_mhz: field("cpu MHz").and_then(|v| v.parse().ok()).filter(|m: &f64| *m > 0.0),
    }
}

fn sysfs_base_mhz() -> Option<f64> {
    let khz: f64 = std::fs::read_to_string("/sys/devices/system/cpu/cpu0/cpufreq/base_frequency")
        .ok()?
        .trim()
        .parse()
        .ok()?;
    (khz > 0.0).then_some(khz / 1000.0)
}

impl HostLoad {
    /// Now, from /proc/loadavg and /proc/stat; `None` where they are missing.
    pub fn read() -> Option<HostLoad> {
        let loadavg = parse_loadavg(&std::fs::read_to_string("/proc/loadavg").ok()?)?;
        let (steal_ticks, total_ticks) = parse_proc_stat(&std::fs::read_to_string("/proc/stat").ok()?)?;
        Some(HostLoad { loadavg, steal_ticks, total_ticks })
    }
}

/// The three load averages of /proc/loadavg text.
pub fn parse_loadavg(text: &str) -> Option<[f64; 3]> {
    let mut it = text.split_whitespace().map(|v| v.parse::<f64>().ok());
    Some([it.next()??, it.next()??, it.next()??])
}

/// (steal, total) ticks of the aggregate `cpu` line of /proc/stat (user nice system idle iowait
/// irq softirq steal [guest guest_nice]; guest time is already inside user, so not added).
pub fn parse_proc_stat(text: &str) -> Option<(u64, u64)> {
    let line = text.lines().find(|l| l.split_whitespace().next() == Some("cpu"))?;
    let v: Vec<u64> = line.split_whitespace().skip(1).map(|x| x.parse().ok()).collect::<Option<_>>()?;
    if v.len() < 4 {
        return None;
    }
    let steal = v.get(7).copied().unwrap_or(0);
    Some((steal, v.iter().take(8).sum()))
}

/// Clock of the calling core in MHz: the best of 5 timed chains of dependent adds (each add
/// waits for the previous one, one cycle apiece on every x86 and Arm core of the last decade).
/// `None` on other architectures.
pub fn measured_clock_mhz() -> Option<f64> {
    let probe = 1u64 << 16;
    let t0 = Instant::now();
    add_chain(probe)?;
    let per = t0.elapsed().as_secs_f64().max(1e-9) / probe as f64;
    // About 5 ms per trial.
    let iters = ((5e-3 / per) as u64).clamp(probe, 1 << 32);
    (0..5)
        .filter_map(|_| {
            let t0 = Instant::now();
            let adds = add_chain(iters)?;
            Some(adds as f64 / t0.elapsed().as_secs_f64().max(1e-9) / 1e6)
        })
        .max_by(f64::total_cmp)
}

/// Run `iters` × 8 dependent adds; returns how many adds ran.
#[allow(unreachable_code, unused_variables)]
fn add_chain(iters: u64) -> Option<u64> {
    let iters = iters.max(1);
    #[cfg(target_arch = "x86_64")]
    {
        let mut x = 0u64;
        let mut n = iters;
        // SAFETY: register-only arithmetic; no memory is touched.
        // The increment comes from a register: recent Intel cores fold chains of adds of small
        // immediates at rename (an `add x, 1` chain read as 19–22 GHz on a 2.6 GHz Xeon here),
        // a register-register add they must execute, one per cycle.
        unsafe {
            std::arch::asm!(
                "2:",
                "add {x}, {one}", "add {x}, {one}", "add {x}, {one}", "add {x}, {one}",
                "add {x}, {one}", "add {x}, {one}", "add {x}, {one}", "add {x}, {one}",
                "dec {n}",
                "jnz 2b",
                x = inout(reg) x,
                n = inout(reg) n,
                one = in(reg) 1u64,
                options(nomem, nostack),
            );
        }
        debug_assert_eq!((x, n), (iters * 8, 0));
        return Some(x);
    }
    #[cfg(target_arch = "aarch64")]
    {
        let mut x = 0u64;
        let n = iters;
        // SAFETY: register-only arithmetic; no memory is touched.
        unsafe {
            std::arch::asm!(
                "2:",
                "add {x}, {x}, {one}", "add {x}, {x}, {one}", "add {x}, {x}, {one}", "add {x}, {x}, {one}",
                "add {x}, {x}, {one}", "add {x}, {x}, {one}", "add {x}, {x}, {one}", "add {x}, {x}, {one}",
                "subs {n}, {n}, #1",
                "b.ne 2b",
                x = inout(reg) x,
                n = inout(reg) n => _,
                one = in(reg) 1u64,
                options(nomem, nostack),
            );
        }
        return Some(x);
    }
    None
}

/// Model name and the interesting flags from /proc/cpuinfo text (x86 and aarch64 layouts).
pub fn parse_cpuinfo(text: &str) -> (String, Vec<String>) {
    let field = |key: &str| {
        text.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == key).then(|| v.trim().to_string())
        })
    };
    let model = field("model name")
        .or_else(|| field("Model"))
        .or_else(|| field("Hardware"))
        .or_else(|| field("CPU part").map(|p| format!("CPU part {p}")))
        .unwrap_or_default();
    let flags = field("flags").or_else(|| field("Features")).unwrap_or_default();
    let features =
        flags.split_whitespace().filter(|f| INTERESTING_FLAGS.contains(f)).map(str::to_string).collect();
    (model, features)
}

/// Runtime feature detection where there is no /proc/cpuinfo.
fn detected_features() -> Vec<String> {
    #[allow(unused_mut)]
    let mut v: Vec<String> = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        macro_rules! probe {
            ($($f:tt),*) => {$(
                if std::arch::is_x86_feature_detected!($f) { v.push($f.to_string()); }
            )*};
        }
        probe!("sse2", "sse4.1", "sse4.2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw");
    }
    #[cfg(target_arch = "aarch64")]
    {
        if std::arch::is_aarch64_feature_detected!("neon") {
            v.push("neon".into());
        }
    }
    v
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

fn os_description() -> String {
    let pretty = std::fs::read_to_string("/etc/os-release").ok().and_then(|t| {
        t.lines().find_map(|l| l.strip_prefix("PRETTY_NAME=").map(|v| v.trim_matches('"').to_string()))
    });
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok().map(|s| s.trim().to_string());
    match (pretty, kernel) {
        (Some(p), Some(k)) => format!("{p} (kernel {k})"),
        (Some(p), None) => p,
        (None, Some(k)) => format!("{} (kernel {k})", std::env::consts::OS),
        (None, None) => std::env::consts::OS.to_string(),
    }
}

/// The compiler that built this binary (captured by the build script).
pub fn rustc_version() -> String {
    let v = env!("CHIPBENCH_RUSTC_VERSION");
    if v.is_empty() {
        "unknown".into()
    } else {
        v.to_string()
    }
}

/// The git revision of the source tree: asked at run time (so it is current, with `-dirty` when
/// the tree has changes), else the one captured at build time.
pub fn git_revision() -> String {
    let dir = env!("CARGO_MANIFEST_DIR");
    let live = Command::new("git")
        .args(["-C", dir, "describe", "--always", "--dirty", "--abbrev=12"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty());
    live.unwrap_or_else(|| {
        let v = env!("CHIPBENCH_GIT_REVISION");
        if v.is_empty() {
            "unknown".into()
        } else {
            v.to_string()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_x86_and_arm_cpuinfo() {
        let x86 = "processor\t: 0\nmodel name\t: AMD EPYC 9654\nflags\t\t: fpu sse2 avx2 fma avx512f junk\n";
        let (m, f) = parse_cpuinfo(x86);
        assert_eq!(m, "AMD EPYC 9654");
        assert_eq!(f, vec!["sse2", "avx2", "fma", "avx512f"]);
        let arm = "processor\t: 0\nFeatures\t: fp asimd asimdhp bf16\nCPU part\t: 0xd40\n";
        let (m, f) = parse_cpuinfo(arm);
        assert_eq!(m, "CPU part 0xd40");
        assert_eq!(f, vec!["asimd", "asimdhp", "bf16"]);
    }

    #[test]
    fn parses_cpu_identification() {
        let zen3 = "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 1\n\
                    model name\t: AMD EPYC\nstepping\t: 1\ncpu MHz\t\t: 2445.402\n\
                    processor\t: 1\nvendor_id\t: AuthenticAMD\ncpu family\t: 26\n";
        let id = parse_cpu_id(zen3);
        assert_eq!(
            id,
            CpuId {
                vendor: "AuthenticAMD".into(),
                family: Some(25),
                model: Some(1),
                stepping: Some(1),
                cpuinfo_mhz: Some(2445.402)
            }
        );
        // The "model name" line is not the "model" line.
        assert_eq!(parse_cpu_id("model name\t: X\n").model, None);
        let arm = "CPU implementer\t: 0x41\nCPU variant\t: 0x1\nCPU part\t: 0xd40\nCPU revision\t: 1\n";
        let id = parse_cpu_id(arm);
        assert_eq!(
            (id.vendor.as_str(), id.family, id.model, id.stepping),
            ("0x41", Some(1), Some(0xd40), Some(1))
        );
    }

    #[test]
    fn parses_load_and_steal() {
        assert_eq!(parse_loadavg("2.45 2.40 1.32 4/129 18338\n"), Some([2.45, 2.40, 1.32]));
        assert_eq!(parse_loadavg("2.45 x"), None);
        let stat = "cpu  85033 0 13198 11131 708 0 383 2889 10 0\ncpu0 1 2 3 4 5 6 7 8 0 0\nintr 1 2\n";
        assert_eq!(parse_proc_stat(stat), Some((2889, 85033 + 13198 + 11131 + 708 + 383 + 2889)));
        // Old kernels: no steal column.
        assert_eq!(parse_proc_stat("cpu 1 2 3 4\n"), Some((0, 10)));
        assert_eq!(parse_proc_stat("cpu0 1 2 3 4\n"), None);
        let a = HostLoad { loadavg: [0.0; 3], steal_ticks: 100, total_ticks: 1000 };
        let b = HostLoad { loadavg: [0.0; 3], steal_ticks: 150, total_ticks: 2000 };
        assert_eq!(a.steal_fraction_until(&b), Some(0.05));
        assert_eq!(a.steal_fraction_until(&a), None);
    }

    #[test]
    fn measured_clock_is_a_clock() {
        if let Some(mhz) = measured_clock_mhz() {
            // Sanity, not a target: no CPU this runs on is below 50 MHz or above 10 GHz (an
            // add chain the compiler folded away would read as terahertz).
            assert!(mhz > 50.0 && mhz < 10_000.0, "{mhz}");
        }
        if let Some(n) = add_chain(3) {
            assert_eq!(n, 24);
        }
    }

    #[test]
    fn environment_is_filled() {
        let env = collect(2, Vec::new());
        assert!(!env.host.is_empty() && !env.os.is_empty() && !env.arch.is_empty());
        assert!(env.cores >= 1 && env.threads == 2);
        assert!(env.rustc.starts_with("rustc "), "{}", env.rustc);
        assert!(!env.git_revision.is_empty());
    }
}
