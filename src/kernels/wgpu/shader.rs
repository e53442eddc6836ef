//! WGSL generation: one template per op (shaders/gemm.wgsl, shaders/gemv.wgsl), one decode step
//! per storage format substituted into it. Formats never get their own copy of a kernel; FP8
//! formats even share one decode source, parameterised by their [`Fp8Spec`].
//!
//! Storage: every matrix row is padded with zero codes to a multiple of 4 elements (a "group"),
//! and each format stores one group per WGSL array element: `vec4<f32>` (F32), `vec2<u32>`
//! (BF16, emulated F16: two 16-bit codes per u32), `vec4<f16>` (F16 with `SHADER_F16`) and `u32`
//! (FP8: four codes per u32). Decoding a group yields a `vec4<f32>`.

use super::coop::Coop;
use crate::formats::{Format, Fp8Spec, QuantizedMatrix, E4M3, E5M2};
use crate::kernels::Op;

const COMMON: &str = include_str!("shaders/common.wgsl");
const GEMM: &str = include_str!("shaders/gemm.wgsl");
const GEMV: &str = include_str!("shaders/gemv.wgsl");
const DECODE_FP8: &str = include_str!("shaders/decode_fp8.wgsl");

/// Elements per group: rows are padded to a multiple of this.
pub(crate) const GROUP: usize = 4;

/// Kernel shapes. GEMM register blocking: each of the 16×16 threads computes `tm × tn` outputs;
/// K advances `4 · kg` elements per workgroup-memory tile. GEMV: `gemv_threads` per output row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tile {
    pub tm: u32,
    pub tn: u32,
    pub kg: u32,
    /// Threads per GEMV workgroup (a power of two: the reduction halves it).
    pub gemv_threads: u32,
}

impl Tile {
    /// 64×64 tiles, 4×4 per thread, K step 16, 64 GEMV threads: a CPU rasteriser runs a
    /// workgroup's invocations in SIMD loops, where every barrier costs (64 measured 3× faster
    /// than 256 for GEMV on lavapipe).
    pub const SMALL: Tile = Tile { tm: 4, tn: 4, kg: 4, gemv_threads: 64 };
    /// 128×128 tiles, 8×8 per thread, K step 16, 256 GEMV threads: the usual shape for GPUs
    /// (16 KiB of workgroup memory, WebGPU's default limit).
    pub const LARGE: Tile = Tile { tm: 8, tn: 8, kg: 4, gemv_threads: 256 };

    /// One line per accumulator `(i, j)`.
    fn unrolled(self, line: impl Fn(u32, u32) -> String) -> String {
        (0..self.tm).flat_map(|i| (0..self.tn).map(move |j| (i, j))).map(|(i, j)| line(i, j) + "\n").collect()
    }

    /// Offset of a thread's `i`-th row (or column) from its first: 4×4 sub-blocks 64 apart.
    fn offset(i: u32) -> u32 {
        64 * (i / 4) + i % 4
    }

    /// One K step of the register block: load TM/4 vec4s of A and TN/4 of W from the tiles, then
    /// TM × TN fused multiply-adds.
    fn accumulate_step(self, kk: u32) -> String {
        let mut s = String::from("        {\n");
        for b in 0..self.tm / 4 {
            s += &format!("            let a{b} = a_tile[{kk}u][lid.y + {}u];\n", 16 * b);
        }
        for b in 0..self.tn / 4 {
            s += &format!("            let b{b} = w_tile[{kk}u][lid.x + {}u];\n", 16 * b);
        }
        const LANE: [&str; 4] = ["x", "y", "z", "w"];
        s += &self.unrolled(|i, j| {
            let (a, b) = (
                format!("a{}.{}", i / 4, LANE[i as usize % 4]),
                format!("b{}.{}", j / 4, LANE[j as usize % 4]),
            );
            format!("            acc_{i}_{j} = fma({a}, {b}, acc_{i}_{j});")
        });
        s + "        }\n"
    }

    /// Every K step of one tile, unrolled.
    fn accumulate_steps(self) -> String {
        (0..4 * self.kg).map(|kk| self.accumulate_step(kk)).collect()
    }

    /// The tile loads of one operand (`a`: `rows` = TILE_M rows of A; `w`: TILE_N rows of W),
    /// spread over the 256 threads: `(declarations, tile stores, next fetch)`. Slot `i` of
    /// thread `li` is tile row `(li + 256 i) / TILE_KG`, group `(li + 256 i) % TILE_KG`.
    fn operand_loads(self, op: &str, rows: u32) -> [String; 3] {
        assert!((rows * self.kg).is_multiple_of(256), "a tile load must give every thread the same share");
        let mut s = [String::new(), String::new(), String::new()];
        for i in 0..rows * self.kg / 256 {
            let (r, lg, raw) = (format!("{op}_r{i}"), format!("{op}_lg{i}"), format!("{op}_raw{i}"));
            s[0] += &format!(
                "    let {r} = (li + {t}u) / TILE_KG;\n    let {lg} = (li + {t}u) % TILE_KG;\n    \
                 var {raw} = fetch_{op}({op}_row0 + {r}, {lg});\n",
                t = 256 * i
            );
            s[1] += &format!(
                "        {{\n            let v = value_{op}({op}_row0 + {r}, kg0 + {lg}, {raw});\n{}        }}\n",
                (0..4)
                    .map(|c| format!("            {op}_tile[{lg} * 4u + {c}u][{r} / 4u][{r} % 4u] = v[{c}];\n"))
                    .collect::<String>()
            );
            s[2] += &format!("        {raw} = fetch_{op}({op}_row0 + {r}, next + {lg});\n");
        }
        s
    }

    pub fn rows(self) -> u32 {
        16 * self.tm
    }
    pub fn cols(self) -> u32 {
        16 * self.tn
    }
}

/// How one operand's element is decoded: the storage format plus whether f16 is native.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Decode {
    pub format: Format,
    /// F16 through the `f16` type (`SHADER_F16`) rather than `unpack2x16float`.
    pub native_f16: bool,
}

impl Decode {
    /// Bytes of one group of 4 codes in storage.
    fn group_bytes(self) -> u32 {
        self.format.bits() / 2
    }

    /// The WGSL type holding one group of 4 codes.
    fn store(self) -> &'static str {
        match self.format {
            Format::F32 => "vec4<f32>",
            Format::F16 if self.native_f16 => "vec4<f16>",
            Format::BF16 | Format::F16 => "vec2<u32>",
            Format::E4M3 | Format::E5M2 => "u32",
        }
    }

    /// WGSL function `name(v: store) -> vec4<f32>`.
    fn function(self, name: &str) -> String {
        let store = self.store();
        let body = match self.format {
            Format::F32 => "return v;".to_string(),
            Format::F16 if self.native_f16 => "return vec4<f32>(v);".to_string(),
            Format::F16 => "return vec4<f32>(unpack2x16float(v.x), unpack2x16float(v.y));".to_string(),
            // A bf16 code is the top half of the f32 with the same value.
            Format::BF16 => "return vec4<f32>(bitcast<f32>(v.x << 16u), bitcast<f32>(v.x & 0xffff0000u), \
                             bitcast<f32>(v.y << 16u), bitcast<f32>(v.y & 0xffff0000u));"
                .to_string(),
            Format::E4M3 => return fp8_function(&E4M3, name),
            Format::E5M2 => return fp8_function(&E5M2, name),
        };
        format!("fn {name}(v: {store}) -> vec4<f32> {{\n    {body}\n}}\n")
    }
}

/// The shared FP8 decode source with one format's constants filled in.
fn fp8_function(spec: &Fp8Spec, name: &str) -> String {
    let man_mask = (1u32 << spec.man_bits) - 1;
    let is_special = if spec.ieee_specials {
        let exp_ones = ((1u32 << spec.exp_bits) - 1) << spec.man_bits;
        format!("mag >= {exp_ones:#x}u")
    } else {
        "mag == 0x7fu".to_string()
    };
    // The first special magnitude: E4M3FN's 0x7f, or the all-ones exponent.
    let first_special =
        if spec.ieee_specials { ((1u32 << spec.exp_bits) - 1) << spec.man_bits } else { 0x7f };
    DECODE_FP8
        .replace("NAME", name)
        .replace("SPECIAL_ADD", &format!("{:#x}", (0x80 - first_special) * 0x0101_0101))
        .replace("F16_SHIFT", &(10 - spec.man_bits).to_string())
        // 2^(15 − bias) as a power of two: `{:e}` prints it exactly.
        .replace("F16_FACTOR", &format!("{:e}", 2f32.powi(15 - spec.bias)))
        .replace("MAN_SHIFT", &(23 - spec.man_bits).to_string())
        .replace("REBIAS", &format!("{:#x}", ((127 - spec.bias) as u32) << 23))
        // A power of two: `{:e}` prints it exactly.
        .replace("MIN_SUBNORMAL", &format!("{:e}", spec.min_subnormal()))
        .replace("MAN_MASK", &format!("{man_mask:#x}"))
        .replace("IS_SPECIAL", &is_special)
}

/// How one operand's block scale is looked up, from the matrix's scale grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum ScaleLookup {
    /// `none` scaling: no multiply at all.
    One,
    /// One scale for the whole matrix (per-tensor, or a block scheme on a matrix of one block).
    Single,
    /// Block `rows × cols` (cols a multiple of [`GROUP`], so a group never straddles blocks).
    Block { rows: u32, cols: u32 },
}

impl ScaleLookup {
    pub fn of(q: &QuantizedMatrix) -> ScaleLookup {
        let (br, bc) = q.scale_grid();
        if q.scaling.scheme == crate::formats::scaling::Scheme::None {
            ScaleLookup::One
        } else if br * bc == 1 {
            ScaleLookup::Single
        } else {
            ScaleLookup::Block { rows: q.block.rows as u32, cols: q.block.cols as u32 }
        }
    }

    /// Whether the group layout can express this lookup.
    pub fn fits_groups(self) -> bool {
        match self {
            ScaleLookup::Block { cols, .. } => (cols as usize).next_multiple_of(GROUP) == cols as usize,
            _ => true,
        }
    }

    /// WGSL function `name(r: u32, c: u32) -> f32` (c is the element column of a group start).
    fn function(self, name: &str, buffer: &str, grid_cols: &str) -> String {
        let body = match self {
            ScaleLookup::One => "return 1.0;".to_string(),
            ScaleLookup::Single => format!("return {buffer}[0];"),
            ScaleLookup::Block { rows, cols } => {
                format!("return {buffer}[(r / {rows}u) * params.{grid_cols} + c / {cols}u];")
            }
        };
        format!("fn {name}(r: u32, c: u32) -> f32 {{\n    {body}\n}}\n")
    }
}

/// Everything that makes one generated shader different from another: the pipeline cache key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct ShaderKey {
    pub op: Op,
    pub a: Decode,
    pub w: Decode,
    pub a_scale: ScaleLookup,
    pub w_scale: ScaleLookup,
    pub tile: Tile,
    /// GEMM on cooperative matrices (tensor cores) instead of f32 multiply-adds.
    pub coop: Option<Coop>,
}

impl ShaderKey {
    pub fn label(&self) -> String {
        let path = if self.coop.is_some() { " coop-matrix" } else { "" };
        format!("chipbench {}{path} a={} w={}", self.op, self.a.format, self.w.format)
    }

    /// GEMV groups a thread loads before it uses any: 16 bytes of weights in flight per thread
    /// whatever the format (a GPU hides HBM latency with bytes in flight; one 4-byte FP8 word per
    /// thread left an H100 at a third of its bandwidth).
    fn gemv_unroll(&self) -> u32 {
        (16 / self.w.group_bytes()).max(1)
    }

    /// The unrolled GEMV step: all loads first, then the decodes and multiply-adds.
    fn gemv_body(&self) -> String {
        let u = self.gemv_unroll();
        let mut s = String::new();
        for i in 0..u {
            s += &format!("            let w{i} = w_codes[base + g + {i}u * WG];\n");
        }
        for i in 0..u {
            s += &format!("            sum += term(row, g + {i}u * WG, w{i});\n");
        }
        s
    }

    /// The complete WGSL source.
    pub fn source(&self) -> String {
        assert!(
            self.tile.tm.is_multiple_of(4) && self.tile.tn.is_multiple_of(4),
            "GEMM register blocks are made of 4×4 sub-blocks"
        );
        let template = match (self.op, self.coop) {
            (Op::Gemm, Some(coop)) => super::coop::template(coop),
            (Op::Gemm, None) => GEMM.to_string(),
            (Op::Gemv, _) => GEMV.to_string(),
        };
        let needs_f16 = [self.a, self.w].iter().any(|d| d.format == Format::F16 && d.native_f16);
        let enables = match self.coop {
            Some(_) => "enable f16;\nenable wgpu_cooperative_matrix;\n",
            None if needs_f16 => "enable f16;\n",
            None => "",
        };
        let (a_loads, w_loads) = match self.op {
            Op::Gemm => (
                self.tile.operand_loads("a", self.tile.rows()),
                self.tile.operand_loads("w", self.tile.cols()),
            ),
            Op::Gemv => Default::default(),
        };
        format!("{COMMON}{template}")
            .replace("{{ENABLES}}", enables)
            .replace("{{A_STORE}}", self.a.store())
            .replace("{{W_STORE}}", self.w.store())
            .replace("{{DECODE_A}}", &self.a.function("decode_a"))
            .replace("{{DECODE_W}}", &self.w.function("decode_w"))
            .replace("{{SCALE_A}}", &self.a_scale.function("scale_a", "a_scales", "a_grid_cols"))
            .replace("{{SCALE_W}}", &self.w_scale.function("scale_w", "w_scales", "w_grid_cols"))
            .replace("{{TM}}", &self.tile.tm.to_string())
            .replace("{{TN}}", &self.tile.tn.to_string())
            .replace("{{TILE_KG}}", &self.tile.kg.to_string())
            .replace("{{ACC_DECLARE}}", &self.tile.unrolled(|i, j| format!("    var acc_{i}_{j} = 0.0;")))
            .replace("{{ACC_STEPS}}", &self.tile.accumulate_steps())
            .replace("{{FETCH_FIRST}}", &(a_loads[0].clone() + &w_loads[0]))
            .replace("{{STORE_TILES}}", &(a_loads[1].clone() + &w_loads[1]))
            .replace("{{FETCH_NEXT}}", &(a_loads[2].clone() + &w_loads[2]))
            .replace(
                "{{ACC_STORE}}",
                &self.tile.unrolled(|i, j| {
                    format!(
                        "    store(row0 + {}u, col0 + {}u, acc_{i}_{j});",
                        Tile::offset(i),
                        Tile::offset(j)
                    )
                }),
            )
            .replace("{{GEMV_WG}}", &self.tile.gemv_threads.to_string())
            .replace("{{GEMV_UNROLL}}", &self.gemv_unroll().to_string())
            .replace("{{GEMV_BODY}}", &self.gemv_body())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(op: Op, a: Format, w: Format, native_f16: bool) -> ShaderKey {
        ShaderKey {
            op,
            a: Decode { format: a, native_f16 },
            w: Decode { format: w, native_f16 },
            a_scale: ScaleLookup::One,
            w_scale: ScaleLookup::Block { rows: 128, cols: 128 },
            tile: Tile::SMALL,
            coop: None,
        }
    }

    /// Parse and validate `key`'s source with the naga validator wgpu builds for a device with
    /// `features` (no adapter needed), and write SPIR-V from it, as wgpu does for Vulkan.
    pub(crate) fn validate(key: &ShaderKey, features: ::wgpu::Features) {
        use ::wgpu::naga;
        let what =
            format!("{} a={} w={} {:?} {:?}", key.op, key.a.format, key.w.format, key.a_scale, key.w_scale);
        let src = key.source();
        assert!(!src.contains("{{"), "unfilled slot in {what}");
        let module = naga::front::wgsl::parse_str(&src)
            .unwrap_or_else(|e| panic!("{what}: {}\n{src}", e.emit_to_string(&src)));
        let flags = naga::valid::ValidationFlags::all();
        let info = wgpu_naga_bridge::create_validator(features, ::wgpu::DownlevelFlags::all(), flags)
            .validate(&module)
            .unwrap_or_else(|e| panic!("{what}: {}", e.emit_to_string(&src)));
        let options =
            naga::back::spv::Options { lang_version: (1, 3), capabilities: None, ..Default::default() };
        naga::back::spv::write_vec(&module, &info, &options, None)
            .unwrap_or_else(|e| panic!("{what}: SPIR-V: {e}"));
    }

    /// Every generated source of the shader f32 kernels validates (what a device without
    /// cooperative matrices runs: no feature beyond SHADER_F16 where f16 is native).
    #[test]
    fn every_generated_shader_validates() {
        for op in [Op::Gemm, Op::Gemv] {
            for a in Format::ALL {
                for w in Format::ALL {
                    for native in [false, true] {
                        let features =
                            if native { ::wgpu::Features::SHADER_F16 } else { ::wgpu::Features::empty() };
                        validate(&key(op, a, w, native), features);
                    }
                }
            }
        }
    }

    /// Every cooperative-matrix GEMM (every format pair the path takes, every kind of scale
    /// look-up, three subgroup sizes) validates with exactly the capabilities a device created
    /// with the path's features has, and becomes SPIR-V: a shader a GPU would reject fails here.
    #[test]
    fn every_coop_matrix_shader_validates() {
        let features = super::super::coop::required_features();
        let scales = [
            ScaleLookup::One,
            ScaleLookup::Single,
            ScaleLookup::Block { rows: 1, cols: 128 },
            ScaleLookup::Block { rows: 128, cols: 128 },
            ScaleLookup::Block { rows: 1, cols: 32 },
        ];
        let formats = [Format::F16, Format::E4M3, Format::E5M2];
        // Three subgroup sizes with the default kernel, and the other variants at 32.
        use super::super::coop::Tuning;
        let tunings = [
            (16, Tuning::DEFAULT),
            (32, Tuning::DEFAULT),
            (64, Tuning::DEFAULT),
            (32, Tuning { bk: 64, pad: 8, prefetch: true, promote_k: 128 }),
            (64, Tuning { bk: 32, pad: 8, prefetch: true, promote_k: 0 }),
        ];
        let mut n = 0;
        for a in formats {
            for w in formats {
                for (a_scale, w_scale) in [
                    (scales[0], scales[0]),
                    (scales[1], scales[1]),
                    (scales[2], scales[3]),
                    (scales[4], scales[4]),
                ] {
                    for (subgroup, tuning) in tunings {
                        let device = super::super::coop::CoopDevice { subgroup, tuning };
                        let planned = super::super::coop::plan(device, a, w, a_scale, w_scale);
                        // MX-32 blocks are shorter than a 64-deep K step: that GEMM runs the shader kernel.
                        if tuning.bk == 64 && a_scale == scales[4] {
                            assert!(planned.is_err());
                            continue;
                        }
                        let coop = planned.unwrap();
                        let mut k = key(Op::Gemm, a, w, true);
                        (k.a_scale, k.w_scale, k.coop) = (a_scale, w_scale, Some(coop));
                        validate(&k, features);
                        n += 1;
                    }
                }
            }
        }
        assert_eq!(n, 3 * 3 * (4 * tunings.len() - 1));
        // Without the cooperative-matrix capability naga refuses it: the capability is checked.
        let mut k = key(Op::Gemm, Format::F16, Format::E4M3, true);
        k.coop = Some(super::super::coop::Coop { subgroup: 32, tuning: Tuning::DEFAULT, promote_tiles: 4 });
        let module = ::wgpu::naga::front::wgsl::parse_str(&k.source()).unwrap();
        let refused = wgpu_naga_bridge::create_validator(
            features - ::wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX,
            ::wgpu::DownlevelFlags::all(),
            ::wgpu::naga::valid::ValidationFlags::all(),
        )
        .validate(&module);
        assert!(refused.is_err(), "validated without COOPERATIVE_MATRIX");
    }

    #[test]
    fn fp8_constants_come_from_the_spec() {
        let e4 = fp8_function(&E4M3, "d");
        assert!(e4.contains("mag << 20u") && e4.contains("0x3c000000u") && e4.contains("mag == 0x7fu"));
        assert!(e4.contains("0x1010101u") && e4.contains("<< 7u") && e4.contains("* 2.56e2f"), "{e4}");
        let e5 = fp8_function(&E5M2, "d");
        assert!(e5.contains("mag << 21u") && e5.contains("0x38000000u") && e5.contains("mag >= 0x7cu"));
        assert!(e5.contains("0x4040404u") && e5.contains("<< 8u") && e5.contains("* 1e0f"), "{e5}");
    }
}
