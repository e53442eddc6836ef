// GEMM template: C[m×n] = A[m×k] · Wᵀ with f32 accumulation (W is n×k, row-major, as stored).
//
// Generated per (activation format, weight format, scaling) by the host: the double-braced slots
// (in common.wgsl, prepended by the host) receive the decode functions (code group → vec4<f32>), the scale look-ups and the tile sizes.
// Rows of A and W are padded with zero codes to a whole number of 4-element groups, so every
// format loads one group per storage element and block scales never split a group.
//
// Each workgroup of 16×16 threads computes a TILE_M × TILE_N block of C; each thread holds a
// TM × TN register block of accumulators, made of 4×4 sub-blocks 64 rows/columns apart (thread
// (x, y) owns rows 4y..4y+3 of every 64 and columns 4x..4x+3). K advances TILE_K elements at a
// time through two workgroup-memory tiles, filled with decoded and scaled f32 values (decode is
// O(n²) work, the product O(n³)). The tiles hold vec4s along M and N, so each K step costs a
// thread TM/4 + TN/4 workgroup-memory loads for TM × TN fused multiply-adds.

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
    // TM × TN accumulators as named scalars (the host unrolls these loops: arrays indexed in
    // loops may live in scratch memory instead of registers).
{{ACC_DECLARE}}
    for (var kg0 = 0u; kg0 < params.kg; kg0 += TILE_KG) {
        // Load: each of the 256 threads fetches whole groups (one storage element each).
        for (var t = li; t < TILE_M * TILE_KG; t += 256u) {
            let r = t / TILE_KG;
            let lg = t % TILE_KG;
            let g = kg0 + lg;
            let row = wg.y * TILE_M + r;
            var v = vec4<f32>(0.0);
            if (row < params.m && g < params.kg) {
                v = decode_a(a_codes[row * params.kg + g]) * scale_a(row, g * 4u);
            }
            a_tile[lg * 4u][r / 4u][r % 4u] = v.x;
            a_tile[lg * 4u + 1u][r / 4u][r % 4u] = v.y;
            a_tile[lg * 4u + 2u][r / 4u][r % 4u] = v.z;
            a_tile[lg * 4u + 3u][r / 4u][r % 4u] = v.w;
        }
        for (var t = li; t < TILE_N * TILE_KG; t += 256u) {
            let r = t / TILE_KG;
            let lg = t % TILE_KG;
            let g = kg0 + lg;
            let col = wg.x * TILE_N + r;
            var v = vec4<f32>(0.0);
            if (col < params.n && g < params.kg) {
                v = decode_w(w_codes[col * params.kg + g]) * scale_w(col, g * 4u);
            }
            w_tile[lg * 4u][r / 4u][r % 4u] = v.x;
            w_tile[lg * 4u + 1u][r / 4u][r % 4u] = v.y;
            w_tile[lg * 4u + 2u][r / 4u][r % 4u] = v.z;
            w_tile[lg * 4u + 3u][r / 4u][r % 4u] = v.w;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TILE_K; kk++) {
{{ACC_STEP}}
        }
        workgroupBarrier();
    }
{{ACC_STORE}}
}

fn store(row: u32, col: u32, v: f32) {
    if (row < params.m && col < params.n) {
        c_out[row * params.n + col] = v;
    }
}
