//! One error type for the library. Every message is one line that names the file or argument,
//! the field, the bad value and what is allowed.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A bad value for a named field or argument.
    #[error("invalid {field} '{value}': allowed values are {allowed}")]
    Invalid { field: String, value: String, allowed: String },
    /// A problem in a config or results file.
    #[error("{}: {field}: {message}", path.display())]
    Config { path: PathBuf, field: String, message: String },
    #[error("shape: {0}")]
    Shape(String),
    /// The run would not fit in memory (checked before allocating).
    #[error("{what} needs {needed_gib:.2} GiB, {available_gib:.2} GiB available")]
    TooLarge { what: String, needed_gib: f64, available_gib: f64 },
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// A backend or device failure at run time.
    #[error("{backend}: {message}")]
    Device { backend: String, message: String },
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Other(String),
}

impl Error {
    pub fn invalid(field: &str, value: &str, allowed: &str) -> Self {
        Error::Invalid { field: field.into(), value: value.into(), allowed: allowed.into() }
    }
    pub fn config(path: impl Into<PathBuf>, field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Config { path: path.into(), field: field.into(), message: message.into() }
    }
    pub fn device(backend: &str, message: impl Into<String>) -> Self {
        Error::Device { backend: backend.into(), message: message.into() }
    }
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }

    /// Documented process exit code: 2 for usage/config errors, 3 for runtime/device errors.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Invalid { .. } | Error::Config { .. } | Error::Shape(_) | Error::TooLarge { .. } => 2,
            Error::Unsupported(_) => 2,
            Error::Device { .. } | Error::Io { .. } | Error::Other(_) => 3,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
