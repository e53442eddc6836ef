//! One error type for the library. Every message is one line that names the file or argument,
//! the field, the bad value and what is allowed.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A bad value for a named field or argument.
    #[error("invalid {} '{}': allowed values are {allowed}", one_line(field), one_line(value))]
    Invalid { field: String, value: String, allowed: String },
    /// A problem in a config or results file.
    #[error("{}: {}: {}", one_line(&path.display().to_string()), one_line(field), one_line(message))]
    Config { path: PathBuf, field: String, message: String },
    #[error("shape: {}", one_line(.0))]
    Shape(String),
    /// The run would not fit in memory (checked before allocating).
    #[error("{} needs {needed_gib:.2} GiB, {available_gib:.2} GiB available", one_line(what))]
    TooLarge { what: String, needed_gib: f64, available_gib: f64 },
    #[error("unsupported: {}", one_line(.0))]
    Unsupported(String),
    /// A backend or device failure at run time.
    #[error("{backend}: {}", one_line(message))]
    Device { backend: String, message: String },
    #[error("{}: {}", one_line(&path.display().to_string()), one_line(&source.to_string()))]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{}", one_line(.0))]
    Other(String),
}

/// Messages are one line whatever the input held: control characters in a value, a file name or
/// a library's message (newlines, escape sequences) are shown escaped (`\n`, `\u{1b}`).
fn one_line(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return s.into();
    }
    s.chars()
        .flat_map(|c| {
            let esc: Vec<char> = if c.is_control() { c.escape_default().collect() } else { vec![c] };
            esc
        })
        .collect::<String>()
        .into()
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

    /// A TOML syntax or schema error as one line naming the file and the dotted key it points at
    /// (`memory.value`, `shapes[2].n`), with the line number; `text` is what was parsed.
    pub fn toml(path: impl Into<PathBuf>, text: &str, e: &toml::de::Error) -> Self {
        let msg = e.message().trim().replace('\n', " ");
        let start = e.span().map(|s| {
            let mut i = s.start.min(text.len());
            while !text.is_char_boundary(i) {
                i -= 1;
            }
            i
        });
        let (table, key) = start.map(|i| toml_key_at(text, i)).unwrap_or_default();
        let quoted = msg.split('`').nth(1).filter(|q| !q.is_empty()).map(str::to_string);
        let named = msg.starts_with("unknown field") || msg.starts_with("missing field");
        let leaf = if named { quoted.or(key) } else { key.or(quoted.filter(|_| table.is_empty())) };
        let field = match (table.is_empty(), leaf) {
            (false, Some(k)) => format!("{table}.{k}"),
            (true, Some(k)) => k,
            (false, None) => table,
            (true, None) => "toml".into(),
        };
        let at =
            start.map(|i| format!(" (line {})", text[..i].matches('\n').count() + 1)).unwrap_or_default();
        Error::config(path, field, format!("{}{at}", msg.replace("expected one of", "allowed fields:")))
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

/// The table (`peak.fp8`, `shapes[1]`) and key of the TOML line holding byte `at`.
fn toml_key_at(text: &str, at: usize) -> (String, Option<String>) {
    let line_start = text[..at].rfind('\n').map_or(0, |p| p + 1);
    let mut lines_before = text[..line_start].lines().rev();
    let this = text[line_start..].lines().next().unwrap_or("").trim();
    let header = |l: &str, before: &str| -> Option<String> {
        let l = l.trim();
        let name = l.strip_prefix("[[").and_then(|r| r.split("]]").next()).map(|n| (n.trim(), true));
        let name =
            name.or_else(|| l.strip_prefix('[').and_then(|r| r.split(']').next()).map(|n| (n.trim(), false)));
        let (name, array) = name?;
        if !array {
            return Some(name.to_string());
        }
        let marker = format!("[[{name}]]");
        let index = before.lines().filter(|b| b.trim().replace(' ', "") == marker.replace(' ', "")).count();
        Some(format!("{name}[{index}]"))
    };
    if this.starts_with('[') && !this.contains('=') {
        return (header(this, &text[..line_start]).unwrap_or_default(), None);
    }
    let key_of = |l: &str| l.split_once('=').map(|(k, _)| k.trim().trim_matches('"').to_string());
    let mut key = key_of(this).filter(|k| !k.is_empty() && !k.starts_with(['{', '[', '"', '#']));
    let mut table = String::new();
    let mut consumed = text[..line_start].len();
    for l in lines_before.by_ref() {
        consumed -= (l.len() + 1).min(consumed);
        let t = l.trim();
        if t.starts_with('[') && !t.contains('=') {
            table = header(t, &text[..consumed]).unwrap_or_default();
            break;
        }
        if key.is_none() && !t.starts_with('#') {
            key = key_of(t).filter(|k| !k.is_empty());
        }
    }
    (table, key)
}
