// GEMM template: C[m×n] = A[m×k] · Wᵀ with f32 accumulation (W is n×k, row-major, as stored).
//
// Generated per (activation format, weight format, scaling) by the host: the double-braced slots
// (in common.wgsl, prepended by the host) receive the decode functions (code group → vec4<f32>),
// the scale look-ups, the tile sizes and the unrolled loads and steps. Rows of A and W are padded
// with zero codes to a whole number of 4-element groups, so every format loads one group per
// storage element and block scales never split a group.
//
// Each workgroup of 16×16 threads computes a TILE_M × TILE_N block of C; each thread holds a
// TM × TN register block of accumulators, made of 4×4 sub-blocks 64 rows/columns apart (thread
// (x, y) owns rows 4y..4y+3 of every 64 and columns 4x..4x+3). K advances TILE_K elements at a
// time through two workgroup-memory tiles of decoded, scaled f32 values (decode is O(n²) work,
// the product O(n³)), stored as vec4s along M and N so that a K step costs a thread TM/4 + TN/4
// workgroup-memory loads for TM × TN fused multiply-adds. The codes of the next K tile are
// fetched into registers before the multiply-adds of the current one, so their global-memory
// latency is hidden behind arithmetic; the K steps are unrolled by the host.

const TM: u32 = {{TM}}u;
const TN: u32 = {{TN}}u;
const TILE_KG: u32 = {{TILE_KG}}u;
const TILE_M: u32 = 16u * TM;
const TILE_N: u32 = 16u * TN;
const TILE_K: u32 = 4u * TILE_KG;

// [k][row / 4]: neighbouring threads read neighbouring vec4s.
var<workgroup> a_tile: array<array<vec4<f32>, TILE_M / 4u>, TILE_K>;
var<workgroup> w_tile: array<array<vec4<f32>, TILE_N / 4u>, TILE_K>;

@compute @workgroup_size(16, 16, 1)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let row0 = wg.y * TILE_M + 4u * lid.y;
    let col0 = wg.x * TILE_N + 4u * lid.x;
    let a_row0 = wg.y * TILE_M;
    let w_row0 = wg.x * TILE_N;
    // TM × TN accumulators as named scalars (the host unrolls these loops: arrays indexed in
    // loops may live in scratch memory instead of registers).
{{ACC_DECLARE}}
    // Each thread's share of a tile load: whole groups (one storage element each), fetched as
    // raw codes for the first K tile.
{{FETCH_FIRST}}
    for (var kg0 = 0u; kg0 < params.kg; kg0 += TILE_KG) {
        workgroupBarrier();
{{STORE_TILES}}
        workgroupBarrier();
        let next = kg0 + TILE_KG;
{{FETCH_NEXT}}
{{ACC_STEPS}}
    }
{{ACC_STORE}}
}

fn fetch_a(row: u32, g: u32) -> {{A_STORE}} {
    if (row < params.m && g < params.kg) {
        return a_codes[row * params.kg + g];
    }
    return {{A_STORE}}();
}

fn fetch_w(row: u32, g: u32) -> {{W_STORE}} {
    if (row < params.n && g < params.kg) {
        return w_codes[row * params.kg + g];
    }
    return {{W_STORE}}();
}

// Decoded and scaled group of A (row `row`, group `g`); zero outside the matrix.
fn value_a(row: u32, g: u32, raw: {{A_STORE}}) -> vec4<f32> {
    if (row < params.m && g < params.kg) {
        return decode_a(raw) * scale_a(row, g * 4u);
    }
    return vec4<f32>(0.0);
}

fn value_w(row: u32, g: u32, raw: {{W_STORE}}) -> vec4<f32> {
    if (row < params.n && g < params.kg) {
        return decode_w(raw) * scale_w(row, g * 4u);
    }
    return vec4<f32>(0.0);
}

fn store(row: u32, col: u32, v: f32) {
    if (row < params.m && col < params.n) {
        c_out[row * params.n + col] = v;
    }
}
