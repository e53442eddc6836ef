// Shared prelude of gemm.wgsl and gemv.wgsl: parameters, bindings and the slots the host fills
// with the decode functions and scale look-ups of one (activation, weight, scaling) choice.
{{ENABLES}}
struct Params {
    m: u32,
    n: u32,
    // K in groups of 4 elements: the row stride of A and W.
    kg: u32,
    // Columns of the scale grids (blocks along K).
    a_grid_cols: u32,
    w_grid_cols: u32,
    // Workgroups along x in the dispatch (GEMV rows beyond one dispatch dimension).
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
