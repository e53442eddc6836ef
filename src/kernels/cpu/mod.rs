//! Native CPU backend: BLIS-style GEMM and streaming GEMV.
