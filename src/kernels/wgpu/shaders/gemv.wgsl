// GEMV template: y[n] = W[n×k] · x[k] with f32 accumulation, the memory-bound decode step.
//
// Same prelude (common.wgsl) as gemm.wgsl. One workgroup per output row: its threads stream
// the row's code groups (consecutive threads, consecutive words), decode them in registers (no
// staging copy), and reduce their partial sums in workgroup memory. A group never straddles a
// scale block, so each group costs one scale look-up per operand. Each thread issues UNROLL
// loads (16 bytes of weights) before it uses any, so narrow formats keep as many bytes in
// flight as f32 does.

const WG: u32 = {{GEMV_WG}}u;
const UNROLL: u32 = {{GEMV_UNROLL}}u;

var<workgroup> partial: array<f32, WG>;

@compute @workgroup_size(WG, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    // Rows past one dispatch dimension continue along y; `row` is uniform across the workgroup.
    let row = wg.x + wg.y * params.groups_x;
    var sum = 0.0;
    if (row < params.n) {
        let base = row * params.kg;
        var g = li;
        for (; g + (UNROLL - 1u) * WG < params.kg; g += UNROLL * WG) {
{{GEMV_BODY}}        }
        for (; g < params.kg; g += WG) {
            sum += term(row, g, w_codes[base + g]);
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

// One group's contribution: decoded weights · decoded activations, times both block scales.
fn term(row: u32, g: u32, w: {{W_STORE}}) -> f32 {
    return dot(decode_w(w), decode_a(a_codes[g])) * (scale_w(row, g * 4u) * scale_a(0u, g * 4u));
}
