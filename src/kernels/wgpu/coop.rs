//! Tensor cores through wgpu's cooperative matrices: when the GEMM can take the
//! `coop_mat16x16<f16, A/B>` × → `coop_mat16x16<f32, C>` path, and the WGSL it runs.
//!
//! What wgpu 30 offers (read from its sources, not its doc comments, which still say "8×8 f32
//! only"): naga's WGSL front end takes `coop_mat8x8` and `coop_mat16x16` with `f16` or `f32`
//! elements and a `C` role of another element type than `A`/`B`; its SPIR-V back end emits
//! `OpCooperativeMatrixMulAddKHR`. On Vulkan, `Adapter::cooperative_matrix_properties()` is the
//! driver's `vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR` list filtered to subgroup scope,
//! M, N, K ∈ {8, 16}, A = B and C = result types among f16/f32/i32/u32: FP8, BF16 and int8
//! configurations are dropped before chipbench can see them, and WGSL has no non-square type for
//! the 16×8×16 ones that survive the filter.
//!
//! Everything here that decides is a pure function of the adapter's facts ([`DeviceFacts`]) and
//! the problem's formats and scale blocks, so it is unit-tested without a GPU; the generated WGSL
//! is validated by naga with the capabilities the device would have (see shader.rs's tests).

use super::shader::ScaleLookup;
use crate::formats::Format;
use ::wgpu::{CooperativeMatrixProperties as Props, CooperativeScalarType as Scalar};

const TEMPLATE: &str = include_str!("shaders/coop_gemm.wgsl");

/// The one configuration the kernel is written for: 16×16×16, f16 × f16 → f32.
pub(crate) const SHAPE: u32 = 16;
/// Workgroup tile: BM × BN outputs; four subgroups of 32×32 outputs each.
pub(crate) const BM: u32 = 64;
pub(crate) const BN: u32 = 64;
/// Subgroups per workgroup (2 × 2 quarters of the tile).
const SUBGROUPS: u32 = 4;
/// The environment variable that overrides [`Tuning::DEFAULT`] (kernel variants on a lent GPU).
pub(crate) const TUNING_VAR: &str = "CHIPBENCH_COOP";

/// The kernel's knobs. [`Tuning::DEFAULT`] is what runs; `CHIPBENCH_COOP` (e.g.
/// `bk=64,pad=8,prefetch=1,promote_k=128`) picks another variant to compare on a GPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Tuning {
    /// K elements staged per step (32 or 64).
    pub bk: u32,
    /// f16 elements of padding after each staged row (0 or 8): the row stride is `bk + pad`, so
    /// the rows a 16×16 load reads start in different workgroup-memory banks.
    pub pad: u32,
    /// Fetch the next K step's codes into registers before the current step's multiply-adds.
    pub prefetch: bool,
    /// Longest run of K the tensor cores accumulate before the partial sums are promoted to the
    /// f32 outputs (a multiple of `bk`; 0: only scale blocks bound it). NVIDIA's tensor cores do
    /// not add in IEEE f32 round-to-nearest: on an H200 an F16 GEMM accumulated over all of
    /// K = 4096 failed validation with a systematic error 35× its expected size (docs/gpu.md),
    /// the reason DeepGEMM promotes every 128.
    pub promote_k: u32,
}

impl Tuning {
    pub const DEFAULT: Tuning = Tuning { bk: 32, pad: 0, prefetch: false, promote_k: 128 };
    const ALLOWED: &'static str =
        "comma-separated bk=32|64, pad=0|8, prefetch=0|1, promote_k=0 or a multiple of bk";

    /// `Tuning::DEFAULT` with the overrides of `spec` (the value of [`TUNING_VAR`]).
    pub fn parse(spec: &str) -> Result<Tuning, crate::error::Error> {
        let bad = || crate::error::Error::invalid(TUNING_VAR, spec, Self::ALLOWED);
        let mut t = Tuning::DEFAULT;
        for item in spec.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (key, value) = item.split_once('=').ok_or_else(bad)?;
            let v: u32 = value.trim().parse().map_err(|_| bad())?;
            match key.trim() {
                "bk" if v == 32 || v == 64 => t.bk = v,
                "pad" if v == 0 || v == 8 => t.pad = v,
                "prefetch" if v <= 1 => t.prefetch = v == 1,
                "promote_k" => t.promote_k = v,
                _ => return Err(bad()),
            }
        }
        if !t.promote_k.is_multiple_of(t.bk) {
            return Err(bad());
        }
        Ok(t)
    }

    /// [`Tuning::DEFAULT`], or the variant `CHIPBENCH_COOP` names.
    pub fn from_env() -> Result<Tuning, crate::error::Error> {
        std::env::var(TUNING_VAR).map_or(Ok(Tuning::DEFAULT), |s| Tuning::parse(&s))
    }

    /// Row stride of the staged f16 tiles, in elements.
    fn stride(self) -> u32 {
        self.bk + self.pad
    }

    /// Workgroup memory of one workgroup: f16 A and W tiles plus the f32 promotion tile.
    pub fn workgroup_bytes(self) -> u32 {
        (BM + BN) * self.stride() * 2 + BM * BN * 4
    }
}

/// What the record's `compute` says for GEMMs on this path.
pub(crate) const COMPUTE: &str = "coop-matrix 16x16x16 f16->f32";

/// The adapter facts the path depends on (copied out of wgpu so tests can make them up).
#[derive(Debug, Clone, Default)]
pub(crate) struct DeviceFacts {
    pub features: ::wgpu::Features,
    pub properties: Vec<Props>,
    pub subgroup_min: u32,
    pub subgroup_max: u32,
    pub workgroup_storage: u32,
    pub invocations: u32,
    /// The caller turned the path off (tests, `no_shader_f16`).
    pub disabled: Option<&'static str>,
}

impl DeviceFacts {
    pub fn of(adapter: &::wgpu::Adapter) -> DeviceFacts {
        let info = adapter.get_info();
        let limits = adapter.limits();
        DeviceFacts {
            features: adapter.features(),
            properties: adapter.cooperative_matrix_properties(),
            subgroup_min: info.subgroup_min_size,
            subgroup_max: info.subgroup_max_size,
            workgroup_storage: limits.max_compute_workgroup_storage_size,
            invocations: limits.max_compute_invocations_per_workgroup,
            disabled: None,
        }
    }
}

/// The device side of the path: which subgroup size the shaders are generated for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct CoopDevice {
    pub subgroup: u32,
    pub tuning: Tuning,
}

impl std::fmt::Display for Tuning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let prefetch = if self.prefetch { "next step prefetched" } else { "no prefetch" };
        let promote = match self.promote_k {
            0 => "promoted at scale-block ends only".to_string(),
            k => format!("promoted every {k} along K"),
        };
        write!(f, "K step {}, row stride {}, {prefetch}, {promote}", self.bk, self.stride())
    }
}

/// Features the device must be created with for [`CoopDevice`].
pub(crate) fn required_features() -> ::wgpu::Features {
    ::wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX
        | ::wgpu::Features::SHADER_F16
        | ::wgpu::Features::SUBGROUP
}

fn scalar_name(s: Scalar) -> &'static str {
    match s {
        Scalar::F32 => "f32",
        Scalar::F16 => "f16",
        Scalar::I32 => "i32",
        Scalar::U32 => "u32",
    }
}

/// "16x16x16 f16*f16->f32 subgroup": one configuration as `info` lists it (wgpu keeps only
/// subgroup-scope configurations).
pub(crate) fn describe(p: &Props) -> String {
    let t = scalar_name(p.ab_type);
    let sat = if p.saturating_accumulation { " saturating" } else { "" };
    format!("{}x{}x{} {t}*{t}->{} subgroup{sat}", p.m_size, p.n_size, p.k_size, scalar_name(p.cr_type))
}

/// The configuration the kernel needs, if the adapter lists it.
pub(crate) fn select(properties: &[Props]) -> Result<Props, String> {
    properties
        .iter()
        .find(|p| {
            (p.m_size, p.n_size, p.k_size) == (SHAPE, SHAPE, SHAPE)
                && p.ab_type == Scalar::F16
                && p.cr_type == Scalar::F32
        })
        .copied()
        .ok_or_else(|| {
            let listed = if properties.is_empty() {
                "none".to_string()
            } else {
                properties.iter().map(describe).collect::<Vec<_>>().join(", ")
            };
            format!("no 16x16x16 f16->f32 configuration (the adapter lists: {listed})")
        })
}

/// Whether a device with these facts can run the path, and for which subgroup size.
pub(crate) fn device_plan(facts: &DeviceFacts, tuning: Tuning) -> Result<CoopDevice, String> {
    if let Some(why) = facts.disabled {
        return Err(why.to_string());
    }
    if !facts.features.contains(::wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX) {
        return Err("the adapter has no cooperative-matrix feature (Vulkan: VK_KHR_cooperative_matrix \
                    with vulkanMemoryModelDeviceScope)"
            .into());
    }
    select(&facts.properties)?;
    for (f, name) in [(::wgpu::Features::SHADER_F16, "shader-f16"), (::wgpu::Features::SUBGROUP, "subgroup")]
    {
        if !facts.features.contains(f) {
            return Err(format!("the adapter lacks the {name} feature"));
        }
    }
    let sg = facts.subgroup_min;
    if sg != facts.subgroup_max || !sg.is_power_of_two() || !(4..=128).contains(&sg) {
        return Err(format!(
            "subgroup size {}..{} is not one fixed power of two: the tile split needs it",
            facts.subgroup_min, facts.subgroup_max
        ));
    }
    if facts.workgroup_storage < tuning.workgroup_bytes() {
        return Err(format!(
            "max_compute_workgroup_storage_size {} < the {} bytes the tiles need",
            facts.workgroup_storage,
            tuning.workgroup_bytes()
        ));
    }
    if facts.invocations < SUBGROUPS * sg {
        return Err(format!(
            "max_compute_invocations_per_workgroup {} < {}",
            facts.invocations,
            SUBGROUPS * sg
        ));
    }
    Ok(CoopDevice { subgroup: sg, tuning })
}

/// Why a format cannot feed f16 tensor cores, if it cannot: only exact f16 values go in.
pub(crate) fn format_reason(format: Format) -> Option<&'static str> {
    match format {
        // Every E4M3 and E5M2 value (specials included) has an f16 with the same value.
        Format::F16 | Format::E4M3 | Format::E5M2 => None,
        Format::BF16 => Some("bf16 does not fit f16's range (bf16 reaches 3.4e38, f16 65504)"),
        Format::F32 => Some("f32 values are not exact in f16"),
    }
}

/// One problem's plan on the path: the generated-shader parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Coop {
    pub subgroup: u32,
    pub tuning: Tuning,
    /// K steps of `tuning.bk` between promotions (partial sums scaled and added to the f32
    /// outputs): within one scale block along K and at most `tuning.promote_k` long. 0: one
    /// promotion at the end.
    pub promote_tiles: u32,
}

impl Coop {
    /// Whether K tile `t` of `k_tiles` ends a scale block (the shader's `{{BLOCK_END}}`; the
    /// Rust twin the emulation test walks with).
    #[cfg(test)]
    pub(crate) fn block_end(self, t: u32, k_tiles: u32) -> bool {
        t + 1 == k_tiles || (self.promote_tiles != 0 && (t + 1).is_multiple_of(self.promote_tiles))
    }

    /// First K element of the scale block holding K tile `t` (the shader's `{{BLOCK_START}}`).
    #[cfg(test)]
    pub(crate) fn block_start(self, t: u32) -> u32 {
        t.checked_div(self.promote_tiles).map_or(0, |b| b * self.promote_tiles * self.tuning.bk)
    }

    /// WGSL of [`Coop::block_end`] and [`Coop::block_start`] (`t`, `k_tiles` in scope).
    fn block_wgsl(self) -> (String, String) {
        match self.promote_tiles {
            0 => ("t + 1u == k_tiles".into(), "0u".into()),
            p => (
                format!("t + 1u == k_tiles || (t + 1u) % {p}u == 0u"),
                format!("(t / {p}u) * {}u", p * self.tuning.bk),
            ),
        }
    }
}

/// K steps between promotions: the longest run within which both operands' scales are constant
/// (0: all of K) and that is no longer than `tuning.promote_k` (0: unbounded), as a divisor of
/// the scale block so that a run never straddles one.
fn promotion(a: ScaleLookup, w: ScaleLookup, tuning: Tuning) -> Result<u32, String> {
    let bk = tuning.bk;
    let depth = |s: ScaleLookup| match s {
        ScaleLookup::Block { cols, .. } => Some(cols),
        ScaleLookup::One | ScaleLookup::Single => None,
    };
    let block = match (depth(a), depth(w)) {
        (None, None) => None,
        (Some(d), None) | (None, Some(d)) => Some(d),
        (Some(x), Some(y)) if x.max(y) % x.min(y) == 0 => Some(x.min(y)),
        (Some(x), Some(y)) => return Err(format!("scale blocks of {x} and {y} along K do not nest")),
    };
    let cap = tuning.promote_k / bk;
    match block {
        Some(d) if d % bk != 0 => {
            Err(format!("scale blocks of {d} along K are not a multiple of the {bk}-deep K step"))
        }
        Some(d) if cap == 0 => Ok(d / bk),
        Some(d) => Ok((1..=cap.min(d / bk)).rev().find(|p| (d / bk).is_multiple_of(*p)).unwrap_or(1)),
        None => Ok(cap),
    }
}

/// The path for one GEMM on a device that has it, or why the shader f32 kernel runs instead.
pub(crate) fn plan(
    device: CoopDevice,
    a: Format,
    w: Format,
    a_scale: ScaleLookup,
    w_scale: ScaleLookup,
) -> Result<Coop, String> {
    for (name, f) in [("activations", a), ("weights", w)] {
        if let Some(why) = format_reason(f) {
            return Err(format!("{name} {f}: {why}"));
        }
    }
    let promote_tiles = promotion(a_scale, w_scale, device.tuning)?;
    Ok(Coop { subgroup: device.subgroup, tuning: device.tuning, promote_tiles })
}

/// One line per subgroup tile `(i, j)` of a subgroup's 2 × 2.
fn per_tile(line: impl Fn(u32, u32) -> String) -> String {
    (0..2).flat_map(|i| (0..2).map(move |j| (i, j))).map(|(i, j)| line(i, j) + "\n").collect()
}

/// WGSL `put_{op}(i, v)`: store the four f16 values of code group `i` of a K step in `{op}_sh`.
fn put_function(op: &str) -> String {
    let stores: String = ["x", "y", "z", "w"]
        .iter()
        .enumerate()
        .map(|(c, lane)| format!("    {op}_sh[o + {c}u] = v.{lane};\n"))
        .collect();
    format!("fn put_{op}(i: u32, v: vec4<f16>) {{\n    let o = (i / BKG) * STRIDE + 4u * (i % BKG);\n{stores}}}\n")
}

/// The staging code of one operand (`op` = `a` or `w`, its tile starting at row `row0` of
/// `params.{rows}`): this thread's `slots` code groups of a K step, `wg` groups apart.
#[derive(Clone, Copy)]
struct Staging {
    op: &'static str,
    rows: &'static str,
    row0: &'static str,
    slots: u32,
    wg: u32,
}

impl Staging {
    /// The registers: `c{op}_j` holds code group j, `o{op}_j` is 1 where it lies inside the matrix.
    fn declare(self) -> String {
        let op = self.op;
        (0..self.slots)
            .map(|j| format!("    var c{op}_{j} = {op}_codes[0];\n    var o{op}_{j} = 0u;\n"))
            .collect()
    }

    /// Load the code groups of K step `t` (WGSL expression) into the registers.
    fn fetch(self, t: &str) -> String {
        let Staging { op, rows, row0, .. } = self;
        (0..self.slots)
            .map(|j| {
                format!(
                    "        {{ let x = at({row0}, params.{rows}, {t}, li + {}u); c{op}_{j} = {op}_codes[x.x]; o{op}_{j} = x.y; }}\n",
                    j * self.wg
                )
            })
            .collect()
    }

    /// Decode the registers to f16 in workgroup memory (zero outside the matrix).
    fn put(self) -> String {
        let op = self.op;
        (0..self.slots)
            .map(|j| {
                format!(
                    "        put_{op}(li + {}u, select(vec4<f16>(), vec4<f16>(decode_{op}(c{op}_{j})), o{op}_{j} != 0u));\n",
                    j * self.wg
                )
            })
            .collect()
    }
}

/// The cooperative-matrix GEMM template with its own slots filled; the decode, scale and binding
/// slots of common.wgsl are filled by [`ShaderKey::source`] as for every template.
pub(crate) fn template(coop: Coop) -> String {
    let tuning = coop.tuning;
    let (bk, stride) = (tuning.bk, tuning.stride());
    let wg = SUBGROUPS * coop.subgroup;
    let outputs = BM * BN / wg;
    let steps: String = (0..bk / SHAPE)
        .map(|s| {
            let kk = s * SHAPE;
            let mut t = String::from("        {\n");
            for i in 0..2 {
                t += &format!(
                    "            let a{i} = coopLoadT<coop_mat16x16<f16, A>>(&a_sh[(sm + {}u) * STRIDE + {kk}u], STRIDE);\n",
                    16 * i
                );
                t += &format!(
                    "            let b{i} = coopLoad<coop_mat16x16<f16, B>>(&w_sh[(sn + {}u) * STRIDE + {kk}u], STRIDE);\n",
                    16 * i
                );
            }
            t += &per_tile(|i, j| format!("            acc_{i}_{j} = coopMultiplyAdd(a{i}, b{j}, acc_{i}_{j});"));
            t + "        }\n"
        })
        .collect();
    let slots = |rows: u32| rows * (bk / 4) / wg;
    let operands = [
        Staging { op: "a", rows: "m", row0: "a_row0", slots: slots(BM), wg },
        Staging { op: "w", rows: "n", row0: "w_row0", slots: slots(BN), wg },
    ];
    let both = |f: &dyn Fn(Staging) -> String| operands.iter().map(|&o| f(o)).collect::<String>();
    let fetch = |t: &str| both(&|o| o.fetch(t));
    let (preload, stage, prefetch) = if tuning.prefetch {
        (
            fetch("0u"),
            both(&|o| o.put()),
            format!("        if (t + 1u < k_tiles) {{\n{}        }}\n", fetch("t + 1u")),
        )
    } else {
        (String::new(), fetch("t") + &both(&|o| o.put()), String::new())
    };
    let (block_end, block_start) = coop.block_wgsl();
    let outs = |f: &dyn Fn(u32) -> String| (0..outputs).map(|i| f(i) + "\n").collect::<String>();
    TEMPLATE
        .replace("{{SUBGROUP}}", &coop.subgroup.to_string())
        .replace("{{PUT}}", &(put_function("a") + "\n" + &put_function("w")))
        .replace("{{BM}}", &BM.to_string())
        .replace("{{BN}}", &BN.to_string())
        .replace("{{BK}}", &bk.to_string())
        .replace("{{STRIDE}}", &stride.to_string())
        .replace(
            "{{ACC_DECLARE}}",
            &per_tile(|i, j| format!("    var acc_{i}_{j} = coop_mat16x16<f32, C>();")),
        )
        .replace("{{OUT_DECLARE}}", &outs(&|i| format!("    var out_{i} = 0.0;")))
        .replace("{{CODES_DECLARE}}", &both(&|o| o.declare()))
        .replace("{{PRELOAD}}", &preload)
        .replace("{{STAGE}}", &stage)
        .replace("{{PREFETCH}}", &prefetch)
        .replace("{{MMA_STEPS}}", &steps)
        .replace("{{BLOCK_END}}", &block_end)
        .replace("{{BLOCK_START}}", &block_start)
        .replace(
            "{{ACC_SPILL}}",
            &per_tile(|i, j| {
                format!(
                    "            coopStoreT(acc_{i}_{j}, &c_sh[(sm + {}u) * BN + sn + {}u], BN);",
                    16 * i,
                    16 * j
                )
            }),
        )
        .replace(
            "{{ACC_RESET}}",
            &per_tile(|i, j| format!("            acc_{i}_{j} = coop_mat16x16<f32, C>();")),
        )
        .replace(
            "{{PROMOTE}}",
            &outs(&|i| format!("            out_{i} += promoted(a_row0, w_row0, li + {}u, kb);", i * wg)),
        )
        .replace(
            "{{OUT_STORE}}",
            &outs(&|i| format!("    store_out(a_row0, w_row0, li + {}u, out_{i});", i * wg)),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(m: u32, n: u32, k: u32, ab: Scalar, cr: Scalar) -> Props {
        Props { m_size: m, n_size: n, k_size: k, ab_type: ab, cr_type: cr, saturating_accumulation: false }
    }

    /// What `Adapter::cooperative_matrix_properties()` returns on an H100 (assumed, not measured
    /// here). NVIDIA's Vulkan driver lists these subgroup-scope configurations for sm_80 and later
    /// (the VK_KHR_cooperative_matrix property list): 16×16×16, 16×8×16 and 16×8×8 with f16 A/B
    /// and f16 or f32 C; 16×16×32 and 16×8×32 with s8/u8 A/B and s32/u32 C; and, on drivers with
    /// VK_KHR_shader_bfloat16 / VK_EXT_shader_float8, bf16 and e4m3/e5m2 A/B types. wgpu-hal keeps
    /// only M, N, K ∈ {8, 16} with A = B and C = result among f16/f32/i32/u32: every int8 entry
    /// (A type s8/u8 is not one of those) and every bf16/fp8 entry is dropped, 16×8×16 and
    /// 16×8×8 survive (though WGSL has no type for them).
    fn hopper() -> Vec<Props> {
        use Scalar::*;
        vec![
            props(16, 16, 16, F16, F16),
            props(16, 16, 16, F16, F32),
            props(16, 8, 16, F16, F16),
            props(16, 8, 16, F16, F32),
            props(16, 8, 8, F16, F16),
            props(16, 8, 8, F16, F32),
        ]
    }

    fn hopper_facts() -> DeviceFacts {
        DeviceFacts {
            features: required_features() | ::wgpu::Features::TIMESTAMP_QUERY,
            properties: hopper(),
            subgroup_min: 32,
            subgroup_max: 32,
            workgroup_storage: 49152,
            invocations: 1024,
            disabled: None,
        }
    }

    #[test]
    fn hopper_list_selects_16x16x16_f16_to_f32() {
        let p = select(&hopper()).unwrap();
        assert_eq!(describe(&p), "16x16x16 f16*f16->f32 subgroup");
        let default = Tuning::DEFAULT;
        assert_eq!(device_plan(&hopper_facts(), default), Ok(CoopDevice { subgroup: 32, tuning: default }));
    }

    #[test]
    fn empty_or_unsuitable_lists_say_why() {
        assert_eq!(select(&[]).unwrap_err(), "no 16x16x16 f16->f32 configuration (the adapter lists: none)");
        // f16 accumulation or a non-square shape is not what the kernel is written for.
        let e = select(&[hopper()[0], hopper()[3]]).unwrap_err();
        assert!(e.contains("16x16x16 f16*f16->f16 subgroup, 16x8x16 f16*f16->f32 subgroup"), "{e}");
        let facts = DeviceFacts { properties: vec![], ..hopper_facts() };
        assert!(device_plan(&facts, Tuning::DEFAULT)
            .unwrap_err()
            .starts_with("no 16x16x16 f16->f32 configuration"));
    }

    #[test]
    fn device_facts_gate_the_path() {
        // Lavapipe: no cooperative-matrix feature at all.
        let lavapipe = DeviceFacts {
            features: ::wgpu::Features::SHADER_F16 | ::wgpu::Features::SUBGROUP,
            subgroup_min: 8,
            subgroup_max: 8,
            ..hopper_facts()
        };
        assert!(device_plan(&lavapipe, Tuning::DEFAULT)
            .unwrap_err()
            .contains("no cooperative-matrix feature"));
        let no_f16 =
            DeviceFacts { features: required_features() - ::wgpu::Features::SHADER_F16, ..hopper_facts() };
        assert!(device_plan(&no_f16, Tuning::DEFAULT).unwrap_err().contains("shader-f16"));
        let varying = DeviceFacts { subgroup_min: 32, subgroup_max: 64, ..hopper_facts() };
        assert!(device_plan(&varying, Tuning::DEFAULT).unwrap_err().contains("subgroup size 32..64"));
        let small = DeviceFacts { workgroup_storage: 16384, ..hopper_facts() };
        assert!(device_plan(&small, Tuning::DEFAULT).unwrap_err().contains("16384 < the 24576 bytes"));
        let off = DeviceFacts { disabled: Some("turned off"), ..hopper_facts() };
        assert_eq!(device_plan(&off, Tuning::DEFAULT).unwrap_err(), "turned off");
        let amd = DeviceFacts { subgroup_min: 64, subgroup_max: 64, ..hopper_facts() };
        assert_eq!(device_plan(&amd, Tuning::DEFAULT).map(|d| d.subgroup), Ok(64));
        // The larger variant needs more workgroup memory than the default.
        let big = Tuning { bk: 64, pad: 8, ..Tuning::DEFAULT };
        assert_eq!(big.workgroup_bytes(), 34816);
        let e = device_plan(&DeviceFacts { workgroup_storage: 32768, ..hopper_facts() }, big).unwrap_err();
        assert!(e.contains("32768 < the 34816 bytes"), "{e}");
    }

    #[test]
    fn formats_and_scale_blocks_choose_the_plan() {
        let dev = CoopDevice { subgroup: 32, tuning: Tuning::DEFAULT };
        let (one, single) = (ScaleLookup::One, ScaleLookup::Single);
        let deepseek_a = ScaleLookup::Block { rows: 1, cols: 128 };
        let deepseek_w = ScaleLookup::Block { rows: 128, cols: 128 };
        let mx = ScaleLookup::Block { rows: 1, cols: 32 };
        let p = |a, w, sa, sw| plan(dev, a, w, sa, sw).map(|c| c.promote_tiles);
        // Without scale blocks the tensor cores still accumulate at most 128 along K.
        assert_eq!(p(Format::F16, Format::F16, one, one), Ok(4));
        assert_eq!(p(Format::E4M3, Format::E4M3, single, single), Ok(4));
        assert_eq!(p(Format::E4M3, Format::E4M3, deepseek_a, deepseek_w), Ok(4));
        assert_eq!(p(Format::F16, Format::E5M2, one, deepseek_w), Ok(4));
        assert_eq!(p(Format::E5M2, Format::E5M2, mx, mx), Ok(1));
        assert_eq!(p(Format::E4M3, Format::E4M3, mx, deepseek_w), Ok(1));
        let e = p(Format::BF16, Format::BF16, one, one).unwrap_err();
        assert_eq!(e, "activations bf16: bf16 does not fit f16's range (bf16 reaches 3.4e38, f16 65504)");
        assert!(p(Format::F16, Format::F32, one, one).unwrap_err().starts_with("weights f32"));
        let odd = ScaleLookup::Block { rows: 1, cols: 48 };
        assert!(p(Format::E4M3, Format::E4M3, odd, one).unwrap_err().contains("48 along K"));
        let e = p(Format::E4M3, Format::E4M3, odd, ScaleLookup::Block { rows: 1, cols: 64 }).unwrap_err();
        assert!(e.contains("do not nest"), "{e}");
        // The promotion depth: unbounded, longer than the block, shorter than the block, not a
        // divisor of it, and with 64-deep K steps.
        let with = |t: Tuning| {
            move |sa, sw| {
                plan(CoopDevice { subgroup: 32, tuning: t }, Format::F16, Format::E4M3, sa, sw)
                    .map(|c| c.promote_tiles)
            }
        };
        let unbounded = with(Tuning { promote_k: 0, ..Tuning::DEFAULT });
        assert_eq!(unbounded(one, one), Ok(0));
        assert_eq!(unbounded(one, deepseek_w), Ok(4));
        assert_eq!(with(Tuning { promote_k: 512, ..Tuning::DEFAULT })(one, deepseek_w), Ok(4));
        assert_eq!(with(Tuning { promote_k: 64, ..Tuning::DEFAULT })(one, deepseek_w), Ok(2));
        let odd = ScaleLookup::Block { rows: 1, cols: 96 };
        assert_eq!(with(Tuning { promote_k: 64, ..Tuning::DEFAULT })(one, odd), Ok(1));
        let bk64 = with(Tuning { bk: 64, ..Tuning::DEFAULT });
        assert_eq!(bk64(one, one), Ok(2));
        assert_eq!(
            bk64(mx, mx).unwrap_err(),
            "scale blocks of 32 along K are not a multiple of the 64-deep K step"
        );
    }

    #[test]
    fn tuning_parses_its_variable_and_refuses_the_rest() {
        assert_eq!(Tuning::parse("").unwrap(), Tuning::DEFAULT);
        assert_eq!(
            Tuning::DEFAULT.to_string(),
            "K step 32, row stride 32, no prefetch, promoted every 128 along K"
        );
        let t = Tuning::parse("bk=64, pad=8,prefetch=1,promote_k=256").unwrap();
        assert_eq!(t, Tuning { bk: 64, pad: 8, prefetch: true, promote_k: 256 });
        for bad in ["bk=48", "pad=4", "prefetch=2", "promote_k=100", "bk=64,promote_k=96", "tile=128", "bk"] {
            let e = Tuning::parse(bad).unwrap_err().to_string();
            assert!(e.contains(TUNING_VAR) && e.contains("bk=32|64"), "{bad}: {e}");
        }
    }

    /// The shader's walk in Rust, step for step: workgroup tiles, K tiles staged as f16 with zero
    /// fill, each subgroup's 2 × 2 16×16×16 multiply-adds into f32 partial sums, promotion with
    /// both block scales at [`Coop::block_end`], and the outputs of thread `li` at tile elements
    /// `li + i·WG`. Tensor cores are modelled as exact f16 products summed in f32 — or, with
    /// `truncate`, as one exact 16-product sum per multiply-add step added to the accumulator
    /// with rounding toward zero (see [`truncated_accumulation_needs_the_128_bound`]).
    fn emulate(p: &crate::kernels::Problem, coop: Coop, truncate: bool) -> Vec<f32> {
        use crate::formats::scaling::{QuantizedMatrix, Scheme};
        let (m, n, k) = (p.m(), p.n(), p.k());
        let staged = |q: &QuantizedMatrix| -> Vec<f32> {
            let v = q.codes.decode();
            for &x in &v {
                let h = half::f16::from_f32(x).to_f32();
                assert!(h == x || (h.is_nan() && x.is_nan()), "{} value {x} is not exact in f16", q.format());
            }
            v
        };
        let scale = |q: &QuantizedMatrix, r: usize, c: usize| {
            if q.scaling.scheme == Scheme::None {
                1.0
            } else {
                q.scale_at(r, c)
            }
        };
        let (a, w) = (staged(&p.a), staged(&p.w));
        let (bm, bn, bk) = (BM as usize, BN as usize, coop.tuning.bk as usize);
        let wg = (SUBGROUPS * coop.subgroup) as usize;
        let kg = k.div_ceil(4) as u32;
        let k_tiles = kg.div_ceil(coop.tuning.bk / 4);
        let mut c = vec![0f32; m * n];
        for wy in 0..m.div_ceil(bm) {
            for wx in 0..n.div_ceil(bn) {
                let (row0, col0) = (wy * bm, wx * bn);
                let mut acc = vec![0f32; bm * bn];
                let mut out = vec![0f32; bm * bn];
                for t in 0..k_tiles {
                    let tile = |v: &[f32], rows: usize, row0: usize| {
                        let mut sh = vec![0f32; rows * bk];
                        for r in 0..rows {
                            for x in 0..bk {
                                let kk = t as usize * bk + x;
                                if row0 + r < v.len() / k.max(1) && kk < k {
                                    sh[r * bk + x] = v[(row0 + r) * k + kk];
                                }
                            }
                        }
                        sh
                    };
                    let (a_sh, w_sh) = (tile(&a, bm, row0), tile(&w, bn, col0));
                    for sg in 0..SUBGROUPS as usize {
                        let (sm, sn) = ((sg / 2) * 32, (sg % 2) * 32);
                        for kk in (0..bk).step_by(16) {
                            for (i, j) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                                for r in 0..16 {
                                    for cc in 0..16 {
                                        let (ar, wr) = (sm + 16 * i + r, sn + 16 * j + cc);
                                        let (a, w) = (&a_sh[ar * bk + kk..], &w_sh[wr * bk + kk..]);
                                        let c = &mut acc[ar * bn + wr];
                                        if truncate {
                                            let dot: f64 = (0..16).map(|x| a[x] as f64 * w[x] as f64).sum();
                                            *c = toward_zero(*c as f64 + dot);
                                        } else {
                                            *c += (0..16).map(|x| a[x] * w[x]).sum::<f32>();
                                        }
                                    }
                                }
                            }
                        }
                    }
                    if coop.block_end(t, k_tiles) {
                        let kb = coop.block_start(t) as usize;
                        for li in 0..wg {
                            for e in (li..bm * bn).step_by(wg) {
                                let row = (row0 + e / bn).min(m - 1);
                                let col = (col0 + e % bn).min(n - 1);
                                out[e] += acc[e] * (scale(&p.a, row, kb) * scale(&p.w, col, kb));
                            }
                        }
                        acc.fill(0.0);
                    }
                }
                for (e, &v) in out.iter().enumerate() {
                    let (row, col) = (row0 + e / bn, col0 + e % bn);
                    if row < m && col < n {
                        c[row * n + col] = v;
                    }
                }
            }
        }
        c
    }

    /// The tiling and scale promotion, checked on the CPU against the f64 reference for every
    /// format pair and kind of scale block, at odd shapes with ragged tiles: the index math of
    /// the GPU kernel is tested without a GPU. A wrong promotion depth must fail.
    #[test]
    fn emulated_tile_walk_matches_the_f64_reference() {
        use crate::formats::Scaling;
        use crate::kernels::Op;
        use crate::measure::inputs::ProblemSpec;
        use crate::measure::validate::{validate, Reference};
        let formats = [Format::F16, Format::E4M3, Format::E5M2];
        let scalings = [Scaling::NONE, Scaling::PER_TENSOR, Scaling::DEEPSEEK, Scaling::MX32];
        let bk64 = Tuning { bk: 64, pad: 8, prefetch: true, promote_k: 128 };
        for (act, wf, scaling, tuning) in formats.into_iter().flat_map(|a| {
            formats.into_iter().flat_map(move |w| {
                scalings.into_iter().flat_map(move |s| [(a, w, s, Tuning::DEFAULT), (a, w, s, bk64)])
            })
        }) {
            if tuning.bk == 64 && scaling == Scaling::MX32 {
                continue;
            }
            for (m, n, k) in [(1, 17, 33), (70, 67, 300), (3, 130, 257)] {
                let p =
                    ProblemSpec::new(Op::Gemm, m, n, k, wf, scaling).with_act_format(act).build().unwrap();
                let (sa, sw) = (ScaleLookup::of(&p.a), ScaleLookup::of(&p.w));
                let coop = plan(CoopDevice { subgroup: 32, tuning }, act, wf, sa, sw).unwrap();
                let label = format!("a={act} w={wf} {scaling} {m}x{n}x{k} {coop:?}");
                let v = validate(&emulate(&p, coop, false), &Reference::compute(&p), 0.0);
                assert!(v.valid, "{label}: {}", v.reason);
            }
        }
        // Promoting DeepSeek blocks only once (as if the scales were per-tensor) is caught.
        let p = ProblemSpec::new(Op::Gemm, 70, 67, 300, Format::E4M3, Scaling::DEEPSEEK)
            .with_act_format(Format::E4M3)
            .build()
            .unwrap();
        let wrong = Coop { subgroup: 32, tuning: Tuning::DEFAULT, promote_tiles: 0 };
        assert!(!validate(&emulate(&p, wrong, false), &Reference::compute(&p), 0.0).valid);
    }

    /// `x` rounded to f32 toward zero.
    fn toward_zero(x: f64) -> f32 {
        let f = x as f32;
        if (f as f64).abs() > x.abs() {
            f32::from_bits(f.to_bits() - 1)
        } else {
            f
        }
    }

    /// Why the tensor cores' partial sums are promoted every 128 along K even without scale
    /// blocks. On an H200, an F16 GEMM 4096³ summed over all of K in the tensor cores failed
    /// validation with an aggregate signed error 35× its expected size. An accumulator that adds
    /// each 16-deep multiply-add step's exact sum with rounding toward zero fails the same way
    /// (24× here at 64×64 outputs, rising to 41× at 512×512 in a one-off run), and passes when
    /// promoted every 128 (0.9× here, 1.4× at 512×512; the limit is 4×).
    #[test]
    fn truncated_accumulation_needs_the_128_bound() {
        use crate::formats::Scaling;
        use crate::kernels::Op;
        use crate::measure::inputs::ProblemSpec;
        use crate::measure::validate::{validate, Reference};
        let p = ProblemSpec::new(Op::Gemm, 64, 64, 4096, Format::F16, Scaling::NONE)
            .with_act_format(Format::F16)
            .build()
            .unwrap();
        let reference = Reference::compute(&p);
        let (one, dev) = (ScaleLookup::One, CoopDevice { subgroup: 32, tuning: Tuning::DEFAULT });
        let bounded = plan(dev, Format::F16, Format::F16, one, one).unwrap();
        assert_eq!(bounded.promote_tiles, 4);
        let whole_k = Coop { promote_tiles: 0, ..bounded };
        let unbounded = validate(&emulate(&p, whole_k, true), &reference, 0.0);
        assert!(!unbounded.valid && unbounded.check.aggregate_ratio > 10.0, "{:?}", unbounded.check);
        let promoted = validate(&emulate(&p, bounded, true), &reference, 0.0);
        assert!(promoted.valid && promoted.check.aggregate_ratio < 2.0, "{:?}", promoted.check);
        // Round-to-nearest accumulation passes either way: it is the truncation the bound is for.
        assert!(validate(&emulate(&p, whole_k, false), &reference, 0.0).valid);
    }
}
