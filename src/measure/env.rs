//! The environment a run happened in, recorded with every result: a number without the machine,
//! compiler and revision that produced it cannot be compared with anything.

use crate::kernels::DeviceInfo;
use crate::results::Env;
use std::process::Command;

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
    }
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
    fn environment_is_filled() {
        let env = collect(2, Vec::new());
        assert!(!env.host.is_empty() && !env.os.is_empty() && !env.arch.is_empty());
        assert!(env.cores >= 1 && env.threads == 2);
        assert!(env.rustc.starts_with("rustc "), "{}", env.rustc);
        assert!(!env.git_revision.is_empty());
    }
}
