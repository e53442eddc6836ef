// GEMV template: y[n] = W[n×k] · x[k] with f32 accumulation, the memory-bound decode step.
//
// Same slots and buffer layout as gemm.wgsl. One workgroup per output row: its threads stream
// the row's code groups (consecutive threads, consecutive words), decode them in registers (no
// staging copy), and reduce their partial sums in workgroup memory. A group never straddles a
// scale block, so each group costs one scale look-up per operand.
{{ENABLES}}
struct Params {
    m: u32,
    n: u32,
    kg: u32,
    a_grid_cols: u32,
    w_grid_cols: u32,
    groups_x: u32,
}

@group(0) @binding(0) var<storage, read> a_codes: array<{{A_STORE}}>;
@group(0) @binding(1) var<storage, read> a_scales: array<f32>;
@group(0) @binding(2) var<storage, read> w_codes: array<{{W_STORE}}>;
@group(0) @binding(3) var<storage, read> w_scales: array<f32>;
@group(0) @binding(4) var<storage, read_write> c_out: array<f32>;
@group(0) @binding(5) var<uniform> params: Params;

{{DECODE_A}}
{{DECODE_W}}
{{SCALE_A}}
{{SCALE_W}}

const WG: u32 = {{GEMV_WG}}u;

var<workgroup> partial: array<f32, WG>;

@compute @workgroup_size(WG, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    // Rows past one dispatch dimension continue along y; `row` is uniform across the workgroup.
    let row = wg.x + wg.y * params.groups_x;
    var sum = 0.0;
    if (row < params.n) {
        let base = row * params.kg;
        for (var g = li; g < params.kg; g += WG) {
            let w = decode_w(w_codes[base + g]);
            let x = decode_a(a_codes[g]);
            sum += dot(w, x) * (scale_w(row, g * 4u) * scale_a(0u, g * 4u));
        }
    }
    partial[li] = sum;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (li < s) {
            partial[li] += partial[li + s];
        }
        workgroupBarrier();
    }
    if (li == 0u && row < params.n) {
        c_out[row] = partial[0];
    }
}
