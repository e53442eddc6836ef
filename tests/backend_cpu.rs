//! The backend suite on the native CPU kernels.
mod common;

backend_suite!(|| Some(
    Box::new(chipbench::kernels::cpu::CpuBackend::new(0)) as Box<dyn chipbench::kernels::Backend>
));
