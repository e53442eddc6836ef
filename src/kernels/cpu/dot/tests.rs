//! The dot path's SIMD units against their portable twins, and the twins' rounding.

use super::*;

/// Every kernel set of `units`, named: on x86-64 the AVX512_BF16 unit's integer FP8 conversion
/// as well as the table lookup it takes where the CPU has AVX512_VBMI.
fn kernel_sets(units: &[DotUnit]) -> Vec<(String, Kernels)> {
    #[cfg_attr(not(target_arch = "x86_64"), allow(unused_mut))]
    let mut v: Vec<(String, Kernels)> = units.iter().map(|u| (u.to_string(), u.kernels())).collect();
    #[cfg(target_arch = "x86_64")]
    if super::super::x86_bf16::has_vbmi() {
        v.push(("avx512_bf16 (integer FP8 conversion)".into(), super::super::x86_bf16::KERNELS));
    }
    v
}

/// The value of FP8 code `c` (E4M3 when `e4m3`, else E5M2), by the formats' decode.
fn fp8_value(c: u8, e4m3: bool) -> f32 {
    use crate::formats::Element;
    if e4m3 {
        crate::formats::E4m3(c).decode()
    } else {
        crate::formats::E5m2(c).decode()
    }
}

fn pairs(n: usize, seed: u32) -> Vec<u32> {
    // BF16 values of E4M3-like magnitudes and signs, some zero, deterministic.
    (0..n as u32)
        .map(|i| {
            let h = |j: u32| {
                let v = (j.wrapping_mul(2654435761) ^ seed) >> 7;
                let e = 120 + (v % 14); // 2^-7 .. 2^6
                let m = (v >> 5) & 0x7F;
                let s = (v >> 13) & 1;
                if v.is_multiple_of(17) {
                    0
                } else {
                    (s << 15) | (e << 7) | m
                }
            };
            h(2 * i) | h(2 * i + 1) << 16
        })
        .collect()
}

/// Every native unit's tile and row kernels give the bits of the twin of the same instruction,
/// over ragged pair counts and every segment length (MX 32, DeepSeek 128, a whole K block).
#[test]
fn native_units_match_their_portable_twin_bit_for_bit() {
    let native: Vec<DotUnit> = DotUnit::available().into_iter().filter(|&u| u != DotUnit::Portable).collect();
    if native.is_empty() {
        eprintln!("SKIPPED: no BF16 dot-product unit on this CPU (the twin is tested end to end)");
    }
    let twin = DotUnit::Portable.kernels();
    for (unit, k) in kernel_sets(&native) {
        let (mr, nr) = (k.mr, k.nr);
        assert!(mr % twin.mr == 0 && nr % twin.nr == 0, "the twin's tiles must cover the unit's tile");
        let shapes = [(1, 1), (7, 16), (64, 16), (128, 64), (100, 128), (128, 128)];
        for ((pairs_n, seg_pairs), fresh) in shapes.into_iter().flat_map(|s| [(s, false), (s, true)]) {
            let nseg = usize::div_ceil(pairs_n, seg_pairs);
            let a = pairs(pairs_n * mr, 1);
            let b = pairs(pairs_n * nr, 2);
            let sa: Vec<f32> = (0..nseg * mr).map(|i| 2f32.powi(i as i32 % 5 - 2)).collect();
            let sw: Vec<f32> = (0..nseg * nr).map(|i| 0.75 + (i % 7) as f32 * 0.125).collect();
            let t = Tile { pairs: pairs_n, seg_pairs, fresh, a: &a, b: &b, sa: &sa, sw: &sw };
            // A fresh tile must not read C: it starts as NaN, which any read would carry through.
            let c0: Vec<f32> =
                (0..mr * nr).map(|i| if fresh { f32::NAN } else { (i % 9) as f32 * 0.5 - 2.0 }).collect();
            let mut got = c0.clone();
            (k.tile)(&t, &mut got.chunks_exact_mut(nr).collect::<Vec<_>>(), 0);
            // The twin tiles (tm × tn) cover the unit's tile.
            let mut want = c0.clone();
            for r0 in (0..mr).step_by(twin.mr) {
                for j0 in (0..nr).step_by(twin.nr) {
                    let sub = |v: &[u32], w: usize, o: usize, n: usize| -> Vec<u32> {
                        (0..pairs_n).flat_map(|q| v[q * w + o..q * w + o + n].to_vec()).collect()
                    };
                    let subf = |v: &[f32], w: usize, o: usize, n: usize| -> Vec<f32> {
                        (0..nseg).flat_map(|s| v[s * w + o..s * w + o + n].to_vec()).collect()
                    };
                    let (ta, tb) = (sub(&a, mr, r0, twin.mr), sub(&b, nr, j0, twin.nr));
                    let (tsa, tsw) = (subf(&sa, mr, r0, twin.mr), subf(&sw, nr, j0, twin.nr));
                    let tt = Tile { pairs: pairs_n, seg_pairs, fresh, a: &ta, b: &tb, sa: &tsa, sw: &tsw };
                    let mut rows: Vec<&mut [f32]> =
                        want.chunks_exact_mut(nr).skip(r0).take(twin.mr).collect();
                    (twin.tile)(&tt, &mut rows, j0);
                }
            }
            assert_eq!(
                got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                "{unit} tile pairs={pairs_n} seg={seg_pairs} fresh={fresh}"
            );
        }
        for (pairs_n, seg_pairs) in [(16, 16), (64, 16), (192, 64), (80, 80)] {
            let w: Vec<Vec<u32>> = (0..ROWS).map(|r| pairs(pairs_n, 10 + r as u32)).collect();
            check_rows(&unit, pairs_n, seg_pairs, &w, |a, t| (twin.rows)(a, t), |a, t| (k.rows)(a, t));
        }
    }
}

/// A tile of C's first K block (`fresh`) writes C without reading it, with the bits of the same
/// tile over a C zeroed first (the twin too: on a CPU without the units it is the only tile).
#[test]
fn fresh_tiles_write_c_without_reading_it() {
    for (unit, k) in kernel_sets(&DotUnit::available()) {
        let (mr, nr) = (k.mr, k.nr);
        for (pairs_n, seg_pairs) in [(7, 16), (64, 16), (100, 128)] {
            let nseg = usize::div_ceil(pairs_n, seg_pairs);
            let (a, b) = (pairs(pairs_n * mr, 3), pairs(pairs_n * nr, 4));
            let sa: Vec<f32> = (0..nseg * mr).map(|i| 2f32.powi(i as i32 % 3 - 1)).collect();
            let sw: Vec<f32> = (0..nseg * nr).map(|i| 0.5 + (i % 5) as f32 * 0.25).collect();
            let run = |fresh: bool, c0: f32| {
                let t = Tile { pairs: pairs_n, seg_pairs, fresh, a: &a, b: &b, sa: &sa, sw: &sw };
                let mut c = vec![c0; mr * nr];
                (k.tile)(&t, &mut c.chunks_exact_mut(nr).collect::<Vec<_>>(), 0);
                c.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            };
            let zeroed = run(false, 0.0);
            assert!(zeroed.iter().any(|&v| v != 0), "{unit}: a tile of zeros tests nothing");
            assert_eq!(run(true, f32::NAN), zeroed, "{unit} pairs={pairs_n} seg={seg_pairs}");
        }
    }
}

/// The unit's row kernel (`unit_rows`, 1..=MX_MAX activation rows per call) against the twin's
/// (`twin_rows`, one row per call) on the weight rows `w` of `pairs_n` pairs, bit for bit, with
/// per-segment scales and carried totals.
fn check_rows<T>(
    unit: &str,
    pairs_n: usize,
    seg_pairs: usize,
    w: &[Vec<T>],
    twin_rows: impl Fn(&RowArgs<T>, &mut [Totals]),
    unit_rows: impl Fn(&RowArgs<T>, &mut [Totals]),
) {
    let nseg = usize::div_ceil(pairs_n, seg_pairs);
    let xs: Vec<Vec<u32>> = (0..MX_MAX).map(|i| pairs(pairs_n, 3 + i as u32)).collect();
    let sw: Vec<Vec<f32>> =
        (0..ROWS).map(|r| (0..nseg).map(|i| 0.5 + (r + i) as f32 * 0.25).collect()).collect();
    let sx: Vec<Vec<f32>> =
        (0..MX_MAX).map(|j| (0..nseg).map(|i| 2f32.powi((i + j) as i32 % 3 - 1)).collect()).collect();
    let (xr, sxr): (Vec<&[u32]>, Vec<&[f32]>) =
        (xs.iter().map(|v| &v[..]).collect(), sx.iter().map(|v| &v[..]).collect());
    // Carried totals: the call adds onto what it is given.
    let start: Vec<Totals> = (0..MX_MAX)
        .map(|i| std::array::from_fn(|r| std::array::from_fn(|l| ((i + r) * LANES + l) as f32 * 0.25 - 3.0)))
        .collect();
    let args = |b: std::ops::Range<usize>, left: usize, skip: usize, fresh: bool| RowArgs {
        pairs: pairs_n,
        seg_pairs,
        x: &xr[b.clone()],
        w: std::array::from_fn(|r| &w[r][..]),
        sw: std::array::from_fn(|r| &sw[r][..]),
        sx: &sxr[b],
        left,
        skip,
        fresh,
    };
    let bits = |t: &[Totals]| t.iter().map(|r| r.map(|l| l.map(f32::to_bits))).collect::<Vec<_>>();
    // `fresh`: a row's first chunk starts from zero whatever the totals held (here, `start`).
    for fresh in [false, true] {
        let mut want = if fresh { vec![[[0.0; LANES]; ROWS]; MX_MAX] } else { start.clone() };
        for i in 0..MX_MAX {
            twin_rows(&args(i..i + 1, usize::MAX, 0, false), &mut want[i..i + 1]);
        }
        for mx in 1..=MX_MAX {
            let mut got = start.clone();
            for i0 in (0..MX_MAX).step_by(mx) {
                let b = i0..(i0 + mx).min(MX_MAX);
                unit_rows(&args(b.clone(), 64, 4096, fresh), &mut got[b]);
            }
            assert_eq!(
                bits(&got),
                bits(&want),
                "{unit} rows {pairs_n} seg={seg_pairs} mx={mx} fresh={fresh}"
            );
        }
    }
}

/// Every unit's FP8 row kernel gives the twin's bits on rows that hold every finite code of
/// both formats, over segments that take the 64-code step, the 32-code step, or both.
#[test]
fn fp8_row_kernels_match_the_twin_on_every_code() {
    let twin = DotUnit::Portable.kernels();
    for e4m3 in [true, false] {
        let codes: Vec<u8> = (0..=255u8).filter(|&c| fp8_value(c, e4m3).is_finite()).collect();
        for (pairs_n, seg_pairs) in
            [(32, 32), (48, 48), (64, 16), (192, 64), (256, 128), (112, 112), (160, 32)]
        {
            // Row r walks the codes from its own offset with its own stride (odd: every code).
            let w: Vec<Vec<u8>> = (0..ROWS)
                .map(|r| (0..2 * pairs_n).map(|i| codes[(37 * r + (2 * r + 1) * i) % codes.len()]).collect())
                .collect();
            for (unit, k) in kernel_sets(&DotUnit::available()) {
                check_rows(
                    &format!("{unit} e4m3={e4m3}"),
                    pairs_n,
                    seg_pairs,
                    &w,
                    |a, t| (twin.rows_fp8)(a, e4m3, t),
                    |a, t| (k.rows_fp8)(a, e4m3, t),
                );
                // Codes converted once (`fp8_x2`) and activations split once (`split_x2`), then
                // read by `rows_x2`: the same bits, where every segment is whole 32-pair steps.
                if pairs_n.is_multiple_of(2 * LANES)
                    && (seg_pairs >= pairs_n || seg_pairs.is_multiple_of(2 * LANES))
                {
                    check_rows(
                        &format!("{unit} e4m3={e4m3} converted once"),
                        pairs_n,
                        seg_pairs,
                        &w,
                        |a, t| (twin.rows_fp8)(a, e4m3, t),
                        |a, t| {
                            let conv = |c: &[u8]| {
                                let mut out = vec![0u32; pairs_n];
                                (k.fp8_x2)(&c[..2 * pairs_n], e4m3, &mut out, (usize::MAX, 0));
                                out
                            };
                            let w: Vec<Vec<u32>> = a.w.iter().map(|c| conv(c)).collect();
                            let x: Vec<Vec<u32>> =
                                a.x.iter()
                                    .map(|x| {
                                        let mut out = vec![0u32; pairs_n];
                                        (k.split_x2)(&x[..pairs_n], &mut out);
                                        out
                                    })
                                    .collect();
                            let xr: Vec<&[u32]> = x.iter().map(|v| &v[..]).collect();
                            let args = RowArgs {
                                pairs: a.pairs,
                                seg_pairs: a.seg_pairs,
                                x: &xr,
                                w: std::array::from_fn(|r| &w[r][..]),
                                sw: a.sw,
                                sx: a.sx,
                                left: a.left,
                                skip: a.skip,
                                fresh: a.fresh,
                            };
                            (k.rows_x2)(&args, t)
                        },
                    );
                }
            }
        }
    }
}

/// The FP8 row kernels sum every product once, whatever order their steps take the pairs in:
/// on values whose products and sums are exact in f32 (powers of two), the lane totals of each
/// row add up to the exact dot product, segment scales included.
#[test]
fn fp8_row_kernels_sum_every_product_once() {
    for e4m3 in [true, false] {
        let decode = |c: u8| fp8_value(c, e4m3);
        // Codes of ±2^-3 ..= ±2^3 (both formats hold them exactly); activations ±2^-2 ..= ±2^2.
        let codes: Vec<u8> = (0..=255u8)
            .filter(|&c| (0.125..=8.0).contains(&decode(c).abs()) && decode(c).abs().log2().fract() == 0.0)
            .collect();
        assert_eq!(codes.len(), 14, "e4m3={e4m3}");
        for (pairs_n, seg_pairs) in [(48, 48), (96, 32), (208, 64), (256, 128), (80, 80)] {
            let nseg = usize::div_ceil(pairs_n, seg_pairs);
            let w: Vec<Vec<u8>> = (0..ROWS)
                .map(|r| (0..2 * pairs_n).map(|i| codes[(i * (r + 3) + i / 7) % 14]).collect())
                .collect();
            let xv =
                |i: usize| (if i.is_multiple_of(3) { -1.0f32 } else { 1.0 }) * 2f32.powi((i % 5) as i32 - 2);
            let bf = |v: f32| v.to_bits() >> 16;
            let x: Vec<u32> = (0..pairs_n).map(|q| bf(xv(2 * q)) | bf(xv(2 * q + 1)) << 16).collect();
            let sw: Vec<Vec<f32>> =
                (0..ROWS).map(|r| (0..nseg).map(|s| 2f32.powi((r + s) as i32 % 3)).collect()).collect();
            let sx: Vec<f32> = (0..nseg).map(|s| 2f32.powi(-(s as i32 % 2))).collect();
            for (unit, k) in kernel_sets(&DotUnit::available()) {
                let args = RowArgs {
                    pairs: pairs_n,
                    seg_pairs,
                    x: &[&x[..]],
                    w: std::array::from_fn(|r| &w[r][..]),
                    sw: std::array::from_fn(|r| &sw[r][..]),
                    sx: &[&sx[..]],
                    left: usize::MAX,
                    skip: 0,
                    fresh: false,
                };
                let mut t: [Totals; 1] = [[[0.0; LANES]; ROWS]];
                (k.rows_fp8)(&args, e4m3, &mut t);
                for r in 0..ROWS {
                    let want: f64 = (0..2 * pairs_n)
                        .map(|i| {
                            let s = i / 2 / seg_pairs;
                            decode(w[r][i]) as f64 * xv(i) as f64 * sw[r][s] as f64 * sx[s] as f64
                        })
                        .sum();
                    let got: f64 = t[0][r].iter().map(|&v| v as f64).sum();
                    assert_eq!(got, want, "{unit} e4m3={e4m3} pairs={pairs_n} seg={seg_pairs} row {r}");
                }
            }
        }
    }
}

/// Round-to-odd: the exact sum when representable, else the truncation with its last bit set.
#[test]
fn round_to_odd_is_truncation_with_a_sticky_last_bit() {
    let one = 1.0f32;
    let ulp = f32::EPSILON; // ulp of 1
    assert_eq!(add_round_to_odd(one, 0.5), 1.5);
    // 1 + ulp/2: between 1 and 1 + ulp; truncation 1 (even), inexact → 1 + ulp.
    assert_eq!(add_round_to_odd(one, ulp / 2.0), one + ulp);
    // 1 + 3ulp/2 → truncation 1 + ulp (already odd).
    assert_eq!(add_round_to_odd(one, 1.5 * ulp), one + ulp);
    // 2 - tiny: truncation toward zero is the f32 below 2 (odd), not 2.
    assert_eq!(add_round_to_odd(2.0, -1e-30), f32::from_bits(2.0f32.to_bits() - 1));
    assert_eq!(add_round_to_odd(-2.0, 1e-30), -f32::from_bits(2.0f32.to_bits() - 1));
    // A tiny addend far below the last bit still sets it.
    assert_eq!(add_round_to_odd(4.0, 1e-30), f32::from_bits(4.0f32.to_bits() | 1));
    assert_eq!(add_round_to_odd(1.0, -1.0), 0.0);
    // Denormal results flush.
    assert_eq!(add_round_to_odd(f32::MIN_POSITIVE, -f32::MIN_POSITIVE / 2.0), 0.0);
}

/// The two twins differ where the vendors do: Intel adds the odd product first with RNE, Arm
/// rounds the pair sum (and the accumulation) to odd. Both flush a denormal operand.
#[test]
fn the_twins_follow_their_vendors_rounding() {
    let pair = |lo: f32, hi: f32| (lo.to_bits() >> 16) | (hi.to_bits() >> 16) << 16;
    let t = 2f32.powi(-24);
    // acc = 1; products 1.5·2^-24 (odd element) and 2^-24 (even). Intel: 1 + 1.5·2^-24 rounds
    // to 1 + 2^-23, then + 2^-24 is a tie, to even: 1 + 2^-22.
    let a = pair(t, 1.5 * t);
    let b = pair(1.0, 1.0);
    let intel = Soft::<false>::step(1.0, a, b);
    assert_eq!(intel, 1.0 + 2f32.powi(-22));
    // Arm: pair = 2.5·2^-24 exact; 1 + 2.5·2^-24 → truncation 1 + 2^-23, inexact, already odd.
    let arm = Soft::<true>::step(1.0, a, b);
    assert_eq!(arm, 1.0 + 2f32.powi(-23));
    // A denormal bf16 input reads as zero on both.
    let tiny = pair(f32::from_bits(0x0001_0000), 0.0);
    assert_eq!(Soft::<false>::step(0.0, tiny, pair(1.0, 1.0)), 0.0);
    assert_eq!(Soft::<true>::step(0.0, tiny, pair(1.0, 1.0)), 0.0);
}

/// The pair conversion of packing (SIMD where the unit has one, BF16 copied in place) gives the
/// portable conversion's bits for every code of every format, at every offset and ragged length
/// (an odd length's zero partner included); NaN codes give a NaN.
#[test]
fn pair_conversion_matches_its_portable_twin_on_every_code() {
    fn check<E: Element>(codes: &[E]) {
        for (start, len) in [(0, codes.len()), (1, 95), (3, 64), (0, 33), (5, 1), (7, 250)] {
            let span = &codes[start..start + len];
            let (mut f, mut got, mut want) =
                (vec![0f32; len + 2], vec![7u32; len.div_ceil(2)], vec![9u32; len.div_ceil(2)]);
            row_pairs(span, &mut f, &mut got);
            row_pairs_portable(span, &mut f, &mut want);
            // Both x86-64 conversions, where the CPU has them.
            #[cfg(target_arch = "x86_64")]
            if E::FORMAT.is_fp8() {
                for vbmi in [false, true] {
                    let mut other = want.clone();
                    let codes: &[u8] = bytemuck::cast_slice(span);
                    let done = super::super::x86_bf16::fp8_pairs_on(
                        vbmi,
                        E::FORMAT == Format::E4M3,
                        codes,
                        &mut other,
                    );
                    let same = |a: u32, b: u32| {
                        a == b || (f32::from_bits(a << 16).is_nan() && f32::from_bits(b << 16).is_nan())
                    };
                    for (i, (&o, &w)) in other[..done / 2].iter().zip(&want).enumerate() {
                        assert!(
                            same(o & 0xFFFF, w & 0xFFFF) && same(o >> 16, w >> 16),
                            "vbmi={vbmi} pair {i}"
                        );
                    }
                }
            }
            for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
                for half in [0, 16] {
                    let (g, w) = ((g >> half) & 0xFFFF, (w >> half) & 0xFFFF);
                    let nan = |b: u32| f32::from_bits(b << 16).is_nan();
                    assert!(
                        g == w || (nan(g) && nan(w)),
                        "{} start {start} len {len} pair {i}: {g:#06x} vs {w:#06x}",
                        E::FORMAT
                    );
                }
            }
        }
    }
    // Every FP8 code, twice over, so each lands in both halves of a pair and of a 32-code group.
    let bytes: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).chain(0..=255u8).collect();
    check::<crate::formats::E4m3>(bytemuck::cast_slice(&bytes));
    check::<crate::formats::E5m2>(bytemuck::cast_slice(&bytes));
    let halves: Vec<u16> = (0..800u32).map(|i| (i.wrapping_mul(40503) >> 3) as u16).collect();
    check::<half::bf16>(bytemuck::cast_slice(&halves));
}

/// The code-by-code conversion the portable twin loads FP8 weights with is the formats' decode,
/// for every code (NaN codes: a NaN); and every unit's in-register conversion gives its bits.
#[test]
fn fp8_codes_load_as_their_bf16_values_on_every_unit() {
    for e4m3 in [true, false] {
        let decode = |c: u8| fp8_value(c, e4m3);
        for c in 0..=255u8 {
            let (got, want) = (f32::from_bits((fp8_bf16(c, e4m3) as u32) << 16), decode(c));
            assert!(
                got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                "{c:#04x} e4m3={e4m3}"
            );
        }
        let codes: Vec<u8> = (0..=255u8).collect();
        for (unit, k) in kernel_sets(&DotUnit::available()) {
            // 16 pairs per row = 32 codes; rows are 8 windows of the 256 codes, x = 1.0 in the
            // even lane, 0 in the odd one, so each lane total is the even code's value (scale 1).
            let one = 0x3F80u32;
            for hi in [false, true] {
                let x = [if hi { one << 16 } else { one }; LANES];
                for g in (0..256).step_by(32 * ROWS) {
                    let w: [&[u8]; ROWS] = std::array::from_fn(|r| &codes[g + 32 * r..g + 32 * r + 32]);
                    let s = [1.0f32];
                    let args = RowArgs {
                        pairs: LANES,
                        seg_pairs: LANES,
                        x: &[&x[..]],
                        w,
                        sw: [&s[..]; ROWS],
                        sx: &[&s[..]],
                        left: usize::MAX,
                        skip: 0,
                        fresh: false,
                    };
                    let mut t: [Totals; 1] = [[[0.0; LANES]; ROWS]];
                    (k.rows_fp8)(&args, e4m3, &mut t);
                    for (r, lanes) in t[0].iter().enumerate() {
                        for (l, &v) in lanes.iter().enumerate() {
                            let c = (g + 32 * r + 2 * l + hi as usize) as u8;
                            // The partner (times 0) still turns the lane into NaN when it is NaN.
                            let (want, partner) = (decode(c), decode(c ^ 1));
                            let want = if partner.is_nan() { f32::NAN } else { want };
                            assert!(
                                v == want || (v.is_nan() && want.is_nan()),
                                "{unit} {c:#04x} e4m3={e4m3}: {v} vs {want}"
                            );
                        }
                    }
                }
            }
        }
    }
}

/// The compile-time byte tables of the table-lookup conversions hold [`fp8_bf16`] of every
/// magnitude of both formats.
#[test]
fn fp8_byte_tables_hold_every_magnitudes_bf16_bits() {
    for (f, e4m3) in [(0, true), (1, false)] {
        for mag in 0..128u8 {
            let got =
                FP8_BF16_BYTES[f][0][mag as usize] as u16 | (FP8_BF16_BYTES[f][1][mag as usize] as u16) << 8;
            assert_eq!(got, fp8_bf16(mag, e4m3), "{mag:#04x} e4m3={e4m3}");
        }
    }
}

/// A row-kernel call from zero on `w` (no prefetch stream).
fn row_args<'a, T>(
    w: [&'a [T]; ROWS],
    (pairs, seg_pairs): (usize, usize),
    (x, sx): (&'a [&'a [u32]], &'a [&'a [f32]]),
    sw: [&'a [f32]; ROWS],
) -> RowArgs<'a, T> {
    RowArgs { pairs, seg_pairs, x, w, sw, sx, left: usize::MAX, skip: 0, fresh: true }
}

/// A group-kernel call on `w`, rows `stride` apart.
fn group_args<'a, T>(
    w: &'a [T],
    stride: usize,
    (pairs, seg_pairs): (usize, usize),
    (x, sx): (&'a [&'a [u32]], &'a [&'a [f32]]),
    (groups, (sw, sw_rows, sw_first), out_stride): (usize, (&'a [f32], usize, usize), usize),
) -> GroupArgs<'a, T> {
    GroupArgs { pairs, seg_pairs, x, sx, w, stride, groups, sw, sw_rows, sw_first, out_stride }
}

/// The group kernels (many groups of one-chunk rows, reduced to outputs) of every unit, the
/// twin's included, give the bits of the twin's row kernel called group by group from zero and
/// reduced by `reduce16`: pairs and both FP8 formats, 1–4 activation rows, rows spaced wider
/// than they are long, outputs strided, a row of scales per weight row or shared by 5 rows
/// from the third on (DeepSeek-V3's 128-row blocks, a call starting inside one).
#[test]
fn group_kernels_match_the_row_kernel_group_by_group() {
    let twin = DotUnit::Portable.kernels();
    let units: Vec<DotUnit> = DotUnit::available();
    let (groups, out_stride) = (3, 6);
    for (unit, k) in kernel_sets(&units) {
        for ((pairs_n, seg_pairs), (sw_rows, sw_first)) in
            [(16, 16), (64, 64), (64, 16), (96, 32)].into_iter().flat_map(|s| [(s, (1, 0)), (s, (5, 2))])
        {
            let nseg = pairs_n / seg_pairs;
            let rows = groups * ROWS;
            let xs: Vec<Vec<u32>> = (0..MX_MAX).map(|i| pairs(pairs_n, 40 + i as u32)).collect();
            let sx: Vec<Vec<f32>> =
                (0..MX_MAX).map(|i| (0..nseg).map(|s| 2f32.powi((i + s) as i32 % 3 - 1)).collect()).collect();
            let scale_rows = (sw_first + rows - 1) / sw_rows + 1;
            let sw: Vec<f32> = (0..scale_rows * nseg).map(|i| 0.5 + (i % 5) as f32 * 0.25).collect();
            let sw_of = |j: usize| &sw[(sw_first + j) / sw_rows * nseg..][..nseg];
            let (xr, sxr): (Vec<&[u32]>, Vec<&[f32]>) =
                (xs.iter().map(|v| &v[..]).collect(), sx.iter().map(|v| &v[..]).collect());
            // Row j of the pair matrix, `stride` pairs apart; the FP8 matrix walks the codes
            // finite in both formats (a NaN's sign is not part of the contract).
            let stride = pairs_n + LANES;
            let wp = pairs(rows * stride, 77);
            let finite: Vec<u8> = (0..=255u8)
                .filter(|&c| fp8_value(c, true).is_finite() && fp8_value(c, false).is_finite())
                .collect();
            let w8: Vec<u8> = (0..rows * 2 * stride).map(|i| finite[i * 5 % finite.len()]).collect();
            for mx in 1..=MX_MAX {
                let want = |fp8: Option<bool>| {
                    let mut out = vec![0f32; rows * out_stride];
                    for g in 0..groups {
                        let mut t: Vec<Totals> = vec![[[0.0; LANES]; ROWS]; mx];
                        let swr: [&[f32]; ROWS] = std::array::from_fn(|r| sw_of(g * ROWS + r));
                        let (x, sx) = (&xr[..mx], &sxr[..mx]);
                        let shape = (pairs_n, seg_pairs);
                        match fp8 {
                            None => {
                                let w = std::array::from_fn(|r| &wp[(g * ROWS + r) * stride..][..pairs_n]);
                                (twin.rows)(&row_args(w, shape, (x, sx), swr), &mut t);
                            }
                            Some(e4m3) => {
                                let w = std::array::from_fn(|r| {
                                    &w8[(g * ROWS + r) * 2 * stride..][..2 * pairs_n]
                                });
                                (twin.rows_fp8)(&row_args(w, shape, (x, sx), swr), e4m3, &mut t);
                            }
                        }
                        for r in 0..ROWS {
                            for (i, t) in t.iter().enumerate() {
                                out[(g * ROWS + r) * out_stride + i] =
                                    crate::kernels::cpu::gemv::reduce16(&t[r]);
                            }
                        }
                    }
                    out
                };
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                let mut got = vec![0f32; rows * out_stride];
                let (shape, acts, layout) = (
                    (pairs_n, seg_pairs),
                    (&xr[..mx], &sxr[..mx]),
                    (groups, (&sw[..], sw_rows, sw_first), out_stride),
                );
                (k.groups)(&group_args(&wp, stride, shape, acts, layout), &mut got);
                assert_eq!(
                    bits(&got),
                    bits(&want(None)),
                    "{unit} groups pairs={pairs_n} seg={seg_pairs} mx={mx} sw_rows={sw_rows}"
                );
                for e4m3 in [true, false] {
                    let mut got = vec![0f32; rows * out_stride];
                    (k.groups_fp8)(&group_args(&w8, 2 * stride, shape, acts, layout), e4m3, &mut got);
                    let label = if e4m3 { "e4m3" } else { "e5m2" };
                    assert_eq!(
                        bits(&got),
                        bits(&want(Some(e4m3))),
                        "{unit} groups {label} pairs={pairs_n} mx={mx} sw_rows={sw_rows}"
                    );
                }
            }
        }
    }
}

/// A tile unit's operands: `pairs_n` pairs of a 32-row A panel in the tile layout and of a
/// 32-column W panel, zero past `pairs_n` up to a whole step (as the packing leaves them).
fn tile_operands(pairs_n: usize, seed: u32) -> (Vec<u32>, Vec<u32>) {
    use tiles::{a_index, padded, TM, TN};
    let p = padded(pairs_n);
    let (src_a, src_b) = (pairs(pairs_n * TM, seed), pairs(pairs_n * TN, seed + 1));
    let mut a = vec![0u32; p * TM];
    for r in 0..TM {
        for q in 0..pairs_n {
            a[a_index(TM, r, q)] = src_a[r * pairs_n + q];
        }
    }
    let mut b = vec![0u32; p * TN];
    b[..pairs_n * TN].copy_from_slice(&src_b);
    (a, b)
}

/// The native tile-matrix unit (AMX) gives its twin's bits on every segment length (MX 16
/// pairs, DeepSeek 64, whole blocks of 128 and 512 pairs), ragged pair counts, with and without a fresh C;
/// and the twin's sums lie within the f32 rounding of the exact products' sums (so the twin is a
/// dot product, not merely the unit's echo).
#[test]
fn tile_units_match_their_twin_bit_for_bit() {
    use tiles::{padded, TM, TN};
    let native: Vec<TileUnit> =
        TileUnit::available().into_iter().filter(|&u| u != TileUnit::Portable).collect();
    if native.is_empty() {
        eprintln!("SKIPPED: no tile-matrix unit on this CPU (the twin is tested end to end)");
    }
    let twin = TileUnit::Portable.kernels(DotUnit::Portable.kernels());
    let shapes =
        [(7, 16), (16, 16), (64, 16), (100, 64), (128, 64), (128, 128), (40, 48), (512, 512), (300, 64)];
    for ((pairs_n, seg_pairs), fresh) in shapes.into_iter().flat_map(|s| [(s, false), (s, true)]) {
        let seg_pairs = if seg_pairs >= pairs_n { padded(pairs_n) } else { seg_pairs };
        let nseg = pairs_n.div_ceil(seg_pairs);
        let (mut a, mut b) = tile_operands(pairs_n, 5);
        if fresh {
            // Denormal inputs (read as zero), products that underflow (flushed) and huge ones.
            for (i, v) in a.iter_mut().enumerate().filter(|(i, _)| i % 5 == 0) {
                *v = (*v & 0xFFFF_0000) | [0x0041, 0x1F23, 0x5F10][i % 3];
            }
            for (i, v) in b.iter_mut().enumerate().filter(|(i, _)| i % 7 == 0) {
                *v = (*v & 0x0000_FFFF) | [0x2000_0000u32, 0x0003_0000][i % 2];
            }
        }
        let sa: Vec<f32> = (0..nseg * TM).map(|i| 2f32.powi(i as i32 % 5 - 2)).collect();
        let sw: Vec<f32> = (0..nseg * TN).map(|i| 0.75 + (i % 7) as f32 * 0.125).collect();
        let t = Tile { pairs: pairs_n, seg_pairs, fresh, a: &a, b: &b, sa: &sa, sw: &sw };
        let c0: Vec<f32> =
            (0..TM * TN).map(|i| if fresh { f32::NAN } else { (i % 9) as f32 * 0.5 - 2.0 }).collect();
        let run = |tile: fn(&Tile, &mut [&mut [f32]], usize)| {
            let mut c = c0.clone();
            tile(&t, &mut c.chunks_exact_mut(TN).collect::<Vec<_>>(), 0);
            c
        };
        let want = run(twin.tile);
        // The twin against exact sums: per segment the f64 dot product, scaled, accumulated.
        let half = |p: u32, hi: bool| f32::from_bits(if hi { p & 0xFFFF_0000 } else { p << 16 }) as f64;
        for r in 0..TM {
            for j in 0..TN {
                let (mut exact, mut mag) = (if fresh { 0.0 } else { c0[r * TN + j] as f64 }, 0f64);
                for s in 0..nseg {
                    let (mut d, mut m) = (0f64, 0f64);
                    for q in s * seg_pairs..((s + 1) * seg_pairs).min(pairs_n) {
                        let (x, y) = (a[tiles::a_index(TM, r, q)], b[q * TN + j]);
                        let p = half(x, false) * half(y, false) + half(x, true) * half(y, true);
                        d += p;
                        m += (half(x, false) * half(y, false)).abs() + (half(x, true) * half(y, true)).abs();
                    }
                    let scale = sa[s * TM + r] as f64 * sw[s * TN + j] as f64;
                    exact += d * scale;
                    mag += m * scale.abs();
                }
                let got = want[r * TN + j] as f64;
                let bound = (mag + exact.abs()) * (2 * pairs_n + 4) as f64 * f32::EPSILON as f64;
                assert!(
                    (got - exact).abs() <= bound,
                    "twin ({r},{j}) {got} vs exact {exact} (bound {bound})"
                );
            }
        }
        for unit in &native {
            let k = unit.kernels(DotUnit::Portable.kernels());
            let got = run(k.tile);
            assert_eq!(
                got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                "{unit} pairs={pairs_n} seg={seg_pairs} fresh={fresh}"
            );
        }
    }
}
