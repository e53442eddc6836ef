//! Build script: records the compiler and git revision for the results' `env`, and tells the
//! code whether the compiler has stable AVX-512 intrinsics (Rust ≥ 1.89), so the FMA-peak
//! calibration can use them while the crate still builds on its minimum Rust version.

use std::process::Command;

fn main() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = Command::new(&rustc)
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    println!("cargo:rustc-env=CHIPBENCH_RUSTC_VERSION={version}");

    println!("cargo::rustc-check-cfg=cfg(chipbench_avx512)");
    if minor_version(&version).is_some_and(|minor| minor >= 89) {
        println!("cargo:rustc-cfg=chipbench_avx512");
    }

    let git = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    println!("cargo:rustc-env=CHIPBENCH_GIT_REVISION={git}");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=.git/HEAD");
    // A commit moves the branch HEAD names, not HEAD itself: watch that ref too (loose or packed).
    if let Some(branch) = std::fs::read_to_string(".git/HEAD")
        .ok()
        .and_then(|h| h.strip_prefix("ref: ").map(|r| r.trim().to_string()))
    {
        println!("cargo:rerun-if-changed=.git/{branch}");
        println!("cargo:rerun-if-changed=.git/packed-refs");
    }
}

/// `rustc 1.95.0 (...)` → 95.
fn minor_version(version: &str) -> Option<u32> {
    let v = version.split_whitespace().nth(1)?;
    let mut parts = v.split('.');
    let major: u32 = parts.next()?.parse().ok()?;
    let minor: u32 = parts.next()?.parse().ok()?;
    (major == 1).then_some(minor)
}
