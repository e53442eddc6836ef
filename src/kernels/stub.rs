//! A placeholder backend for backends that are not built yet: runs nothing, says why.

use super::{Capability, Support};
use crate::formats::Format;
use crate::Error;

pub(crate) fn unsupported_capabilities(why: &str) -> Vec<Capability> {
    [super::Op::Gemm, super::Op::Gemv]
        .into_iter()
        .flat_map(|op| {
            Format::ALL.into_iter().map(move |format| Capability {
                op,
                format,
                support: Support::Unsupported(why.to_string()),
            })
        })
        .collect()
}

pub(crate) fn not_built(name: &'static str) -> Error {
    Error::Unsupported(format!("the {name} backend is not built yet"))
}

/// Implements [`Backend`] for a unit struct that refuses everything.
macro_rules! stub_backend {
    ($ty:ident, $name:literal) => {
        #[derive(Debug, Default)]
        pub struct $ty;
        impl Backend for $ty {
            fn name(&self) -> &'static str {
                $name
            }
            fn device(&self) -> DeviceInfo {
                DeviceInfo::default()
            }
            fn threads(&self) -> usize {
                1
            }
            fn capabilities(&self) -> Vec<Capability> {
                unsupported_capabilities("not built yet")
            }
            fn support(&self, _p: &Problem) -> Support {
                Support::Unsupported("not built yet".into())
            }
            fn prepare<'a>(&'a self, _p: &'a Problem) -> Result<Box<dyn Prepared + 'a>> {
                Err(not_built($name))
            }
        }
    };
}
pub(crate) use stub_backend;
