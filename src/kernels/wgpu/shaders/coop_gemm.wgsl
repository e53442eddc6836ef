// Cooperative-matrix GEMM template: C[m×n] = A[m×k] · Wᵀ on tensor cores (16×16×16 f16 × f16 →
// f32 subgroup matrices), W n×k row-major as stored. Same prelude (common.wgsl) as gemm.wgsl.
//
// A workgroup of four subgroups computes a BM × BN tile of C; subgroup s owns the 32×32 quarter
// (s / 2, s % 2) as 2 × 2 accumulator matrices. K advances BK elements at a time: every thread
// loads its share of the A and W code groups into registers (with the prefetch variant, the next
// step's during this step's multiply-adds) and decodes them to f16 in workgroup memory (the value
// is exact: F16 codes are f16s, and every E4M3/E5M2 value is an f16), rows STRIDE elements apart;
// then each subgroup multiplies its tiles. Scales are NOT applied to the f16 operands: the
// accumulators hold unscaled f32 partial sums over at most one scale block along K and at most
// the tuning's promotion depth (the DeepGEMM promotion scheme: the tensor cores' own f32
// accumulation is not round-to-nearest); at the end of each run they are spilled to workgroup
// memory and every thread adds its outputs' partial sums times the two block scales to f32
// registers.

const SG: u32 = {{SUBGROUP}}u;
const WG: u32 = 4u * SG;
const BM: u32 = {{BM}}u;
const BN: u32 = {{BN}}u;
const BK: u32 = {{BK}}u;
// Row stride of the staged tiles (BK plus padding against bank conflicts).
const STRIDE: u32 = {{STRIDE}}u;
// Code groups (4 elements) per tile row.
const BKG: u32 = BK / 4u;

// Row-major [row][k] tiles: A is loaded row-major, W's rows are B's columns (column-major B).
var<workgroup> a_sh: array<f16, BM * STRIDE>;
var<workgroup> w_sh: array<f16, BN * STRIDE>;
// One block's partial sums, row-major [row][col].
var<workgroup> c_sh: array<f32, BM * BN>;

@compute @workgroup_size(WG, 1, 1)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
    @builtin(subgroup_id) sg: u32,
) {
    let a_row0 = wg.y * BM;
    let w_row0 = wg.x * BN;
    // This subgroup's quarter of the tile.
    let sm = (sg / 2u) * 32u;
    let sn = (sg % 2u) * 32u;
{{ACC_DECLARE}}
    // The f32 outputs of this thread: tile elements li, li + WG, ... (row-major).
{{OUT_DECLARE}}
    let k_tiles = (params.kg + BKG - 1u) / BKG;
{{CODES_DECLARE}}{{PRELOAD}}    for (var t = 0u; t < k_tiles; t++) {
        workgroupBarrier();
{{STAGE}}        workgroupBarrier();
{{PREFETCH}}{{MMA_STEPS}}
        // Uniform across the workgroup: the end of a scale block along K, or of K.
        if ({{BLOCK_END}}) {
            let kb = {{BLOCK_START}};
{{ACC_SPILL}}
            workgroupBarrier();
{{PROMOTE}}
{{ACC_RESET}}
        }
    }
{{OUT_STORE}}
}

// Code group `i` of K step `t` of the operand whose tile starts at row `row0` of `rows`: its index
// (clamped into the matrix) and 1 if it lies inside the matrix, 0 if it is zero padding.
fn at(row0: u32, rows: u32, t: u32, i: u32) -> vec2<u32> {
    let r = i / BKG;
    let kg = t * BKG + i % BKG;
    let inside = row0 + r < rows && kg < params.kg;
    return vec2<u32>(min(row0 + r, rows - 1u) * params.kg + min(kg, params.kg - 1u), select(0u, 1u, inside));
}

{{PUT}}
// Tile element `e`'s partial sum of the block starting at element `kb` along K, scaled.
fn promoted(row0: u32, col0: u32, e: u32, kb: u32) -> f32 {
    let r = e / BN;
    let c = e % BN;
    let row = min(row0 + r, params.m - 1u);
    let col = min(col0 + c, params.n - 1u);
    return c_sh[e] * (scale_a(row, kb) * scale_w(col, kb));
}

fn store_out(row0: u32, col0: u32, e: u32, v: f32) {
    let row = row0 + e / BN;
    let col = col0 + e % BN;
    if (row < params.m && col < params.n) {
        c_out[row * params.n + col] = v;
    }
}
