//! x86-64 AMX-BF16: the dot path's GEMM tile on the tile-matrix unit (`tdpbf16ps`), behind
//! run-time detection and Linux's permission request. Everything else — layout, the arithmetic,
//! the promotion — is [`super::dot::tiles`], whose portable twin ([`super::dot::tiles::tile_soft`])
//! this body is compared with bit for bit.
//!
//! Tile registers: tmm0–3 the four 16 × 16 f32 quarters of the 32 × 32 C block, tmm4–5 the two
//! A tiles (16 rows × 16 pairs), tmm6–7 the two B tiles (16 pairs × 16 columns). The compiler
//! never allocates tile registers, so their contents live from one `asm!` block to the next.

use super::dot::tiles::{padded, promote, STEP, TM, TN};
use super::dot::Tile;
use super::x86_bf16::Zmm;
use std::arch::asm;
use std::sync::OnceLock;

/// The CPU has AMX-TILE and AMX-BF16 (and the AVX512_BF16 unit the rest of the path runs on),
/// and the kernel granted this process the tile data state (asked once).
pub(crate) fn has_amx() -> bool {
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(|| cpu_has_amx() && super::x86_bf16::has_avx512_bf16() && request_tile_state())
}

/// CPUID.(EAX=7, ECX=0):EDX bit 22 (AMX-BF16) and bit 24 (AMX-TILE).
fn cpu_has_amx() -> bool {
    #[allow(unused_unsafe)]
    // SAFETY: CPUID leaf 7 exists on every x86-64 CPU that reports it (max leaf checked).
    let edx = unsafe {
        if std::arch::x86_64::__cpuid(0).eax < 7 {
            return false;
        }
        std::arch::x86_64::__cpuid_count(7, 0).edx
    };
    edx & (1 << 22) != 0 && edx & (1 << 24) != 0
}

/// Linux keeps the 8 KiB tile data state off until a process asks (`arch_prctl(
/// ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`); a tile instruction before that faults.
#[cfg(target_os = "linux")]
fn request_tile_state() -> bool {
    const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
    const XFEATURE_XTILEDATA: libc::c_long = 18;
    // SAFETY: a plain system call with integer arguments.
    unsafe { libc::syscall(libc::SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0 }
}

#[cfg(not(target_os = "linux"))]
fn request_tile_state() -> bool {
    false
}

/// Palette 1, tiles 0–7 each 16 rows × 64 bytes.
#[repr(C, align(64))]
struct TileConfig([u8; 64]);

const CONFIG: TileConfig = {
    let mut c = [0u8; 64];
    c[0] = 1;
    let mut t = 0;
    while t < 8 {
        c[16 + 2 * t] = 64; // bytes per row (little-endian u16)
        c[48 + t] = 16; // rows
        t += 1;
    }
    TileConfig(c)
};

thread_local! {
    /// Whether this thread has loaded [`CONFIG`] (the configuration is per thread and stays
    /// until a thread loads another; nothing else in the process does).
    static CONFIGURED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Load [`CONFIG`] on this thread unless it has (callers hold the tile state: `has_amx`).
fn configure() {
    CONFIGURED.with(|done| {
        if !done.get() {
            // SAFETY: the process holds the tile state (the callers checked `has_amx`); CONFIG is
            // a valid palette-1 configuration, 64-byte aligned.
            unsafe { asm!("ldtilecfg [{0}]", in(reg) CONFIG.0.as_ptr(), options(nostack, readonly)) };
            done.set(true);
        }
    });
}

/// The unit's GEMM tile: [`Tile`] over a 32 × 32 block of C.
pub(crate) fn tile_entry(t: &Tile, c: &mut [&mut [f32]], col: usize) {
    assert!(has_amx(), "AMX-BF16 not available to this process");
    let rows = t.check_tiles(c, col);
    configure();
    // SAFETY: AMX configured above, AVX512_BF16 present (`has_amx`), slices checked.
    unsafe { tile_body(t, &rows) }
}

/// One step of a 32 × 32 block: A's 32 rows × 16 pairs at `ap` (two 1 KiB tiles, 64-byte rows),
/// B's 16 pairs × 32 columns at `bp` (two tiles side by side in 128-byte rows), four products
/// into tmm0–3.
///
/// # Safety
/// AMX configured on this thread ([`configure`]); both panels readable as described.
#[inline(always)]
unsafe fn step(ap: *const u32, bp: *const u32) {
    unsafe {
        asm!(
            "tileloadd tmm4, [{a} + {sa}*1]",
            "tileloadd tmm5, [{a2} + {sa}*1]",
            "tileloadd tmm6, [{b} + {sb}*1]",
            "tileloadd tmm7, [{b2} + {sb}*1]",
            "tdpbf16ps tmm0, tmm4, tmm6",
            "tdpbf16ps tmm1, tmm4, tmm7",
            "tdpbf16ps tmm2, tmm5, tmm6",
            "tdpbf16ps tmm3, tmm5, tmm7",
            a = in(reg) ap,
            a2 = in(reg) ap.add(16 * STEP),
            sa = in(reg) STEP * 4,
            b = in(reg) bp,
            b2 = in(reg) bp.add(16),
            sb = in(reg) TN * 4,
            options(nostack, readonly),
        );
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn tile_body(t: &Tile, rows: &[*mut f32; TM]) {
    #[repr(align(64))]
    struct Part([f32; TM * TN]);
    // Written whole by the tile stores before each promotion reads it (zeroing it cost 5 % of
    // the time in memset).
    let mut part = std::mem::MaybeUninit::<Part>::uninit();
    let (a, b) = (t.a.as_ptr(), t.b.as_ptr());
    let steps = padded(t.pairs);
    let (mut q, mut s) = (0, 0);
    unsafe {
        while q < t.pairs {
            let end = (q + t.seg_pairs).min(steps);
            asm!("tilezero tmm0", "tilezero tmm1", "tilezero tmm2", "tilezero tmm3", options(nostack, nomem));
            while q < end {
                // A step: 32 rows × 16 pairs at `a + 32q` (two 1 KiB tiles); B: pairs q..q+16 of
                // 32 columns at `b + 32q` (two tiles side by side, 128-byte rows).
                step(a.add(q * TM), b.add(q * TN));
                q += STEP;
            }
            let p = part.as_mut_ptr().cast::<f32>();
            asm!(
                "tilestored [{p0} + {s}*1], tmm0",
                "tilestored [{p1} + {s}*1], tmm1",
                "tilestored [{p2} + {s}*1], tmm2",
                "tilestored [{p3} + {s}*1], tmm3",
                p0 = in(reg) p,
                p1 = in(reg) p.add(16),
                p2 = in(reg) p.add(16 * TN),
                p3 = in(reg) p.add(16 * TN + 16),
                s = in(reg) TN * 4,
                options(nostack),
            );
            promote::<Zmm<false>>(
                &(*part.as_ptr()).0,
                t.sa.as_ptr().add(s * TM),
                t.sw.as_ptr().add(s * TN),
                rows,
                t.fresh && s == 0,
            );
            s += 1;
        }
    }
}

/// The unit's loop as a GEMM can feed it (`iters` steps): four independent C tiles, each step
/// loading two A and two B tiles from L1 (a 16 KiB A panel and a 16 KiB W panel, eight steps
/// of 16 pairs, read round and round) before its four `tdpbf16ps` — the densest reuse eight tile
/// registers allow (a tile load per product). Returns (flops, checksum), or `None` without the
/// unit. The calibration times it as the unit's roof (the loads from L1 cost the unit little: in
/// a standalone microbenchmark the register-only loop ran 2.5–2.9 TFLOP/s per thread, this one
/// 2.0–2.5), and no product can run without them.
pub(crate) fn tile_loop(iters: u64) -> Option<(f64, f32)> {
    if !has_amx() {
        return None;
    }
    #[repr(align(64))]
    struct Panel([u32; TM * 8 * STEP]);
    let a = Panel([0x3F80_3F80; TM * 8 * STEP]); // 1.0 in both halves
    let b = Panel([0x3C00_3C00; TN * 8 * STEP]); // 2^-7: sums stay finite
    let mut out = Panel([0; TM * 8 * STEP]);
    configure();
    let iters = iters.max(1);
    // SAFETY: the process holds the tile state and this thread is configured; every load reads
    // 16 rows inside the panels (steps cycle through 0..8).
    unsafe {
        asm!("tilezero tmm0", "tilezero tmm1", "tilezero tmm2", "tilezero tmm3", options(nostack, nomem));
        for i in 0..iters as usize {
            let q = (i % 8) * STEP;
            step(a.0.as_ptr().add(q * TM), b.0.as_ptr().add(q * TN));
        }
        asm!("tilestored [{o} + {s}*1], tmm3", o = in(reg) out.0.as_mut_ptr(), s = in(reg) 64usize, options(nostack));
    }
    let flops = iters as f64 * 4.0 * (16 * 16 * 2 * STEP * 2) as f64;
    Some((flops, f32::from_bits(out.0[0])))
}
