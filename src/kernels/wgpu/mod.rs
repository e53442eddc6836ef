//! GPU backend through wgpu (WGSL compute shaders).
