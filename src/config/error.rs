//! Config errors that say where: `file:line:col: field: message`.
//!
//! The TOML deserializer gives a byte span and a message but not the dotted field
//! path; [`field_path_at`] recovers it from the text (the enclosing `[table]` or
//! `[[array]]` header, with the array index, then the keys of any inline tables
//! around the span), so operators read `route[2].mock.status`, not just a column.

use std::fmt;
use std::path::Path;

use super::Source;

/// A config that cannot be loaded or compiled.
#[derive(Debug, Clone)]
pub struct ConfigError {
    pub file: String,
    /// 1-based line and column; 0 when the error is about the whole file.
    pub line: usize,
    pub col: usize,
    pub field: Option<String>,
    pub message: String,
}

impl ConfigError {
    pub(crate) fn io(path: &Path, e: std::io::Error) -> Self {
        ConfigError {
            file: path.display().to_string(),
            line: 0,
            col: 0,
            field: None,
            message: format!("cannot read config: {e}"),
        }
    }

    /// A panic caught while loading or compiling the config at `path`.
    pub(crate) fn panicked(path: &Path, payload: &(dyn std::any::Any + Send)) -> Self {
        let what = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("unknown cause");
        ConfigError {
            file: path.display().to_string(),
            line: 0,
            col: 0,
            field: None,
            message: format!(
                "internal error while loading this config (please report it): panic: {what}"
            ),
        }
    }

    /// An error at byte offset `pos` of `source`.
    pub(crate) fn at(source: &Source, pos: usize, field: Option<String>, message: String) -> Self {
        let (line, col) = line_col(&source.text, pos);
        let (file, line) = source.locate(line);
        ConfigError {
            file: file.display().to_string(),
            line,
            col,
            field,
            message,
        }
    }

    pub(crate) fn from_toml(source: &Source, e: &toml::de::Error) -> Self {
        let pos = e.span().map(|s| s.start).unwrap_or(0);
        let field = field_path_at(&source.text, pos);
        let message = e.message().trim().replace('\n', " ");
        let mut err = ConfigError::at(source, pos, field, message);
        if e.span().is_none() {
            err.line = 0;
        }
        err
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.col)?;
        }
        if let Some(field) = &self.field {
            write!(f, ": {field}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// The largest char boundary of `text` at or before byte `pos` (clamped to its
/// length): parser spans are byte offsets and may fall inside a character.
/// (`str::floor_char_boundary` is newer than our minimum Rust.)
fn floor_boundary(text: &str, pos: usize) -> usize {
    let mut pos = pos.min(text.len());
    while !text.is_char_boundary(pos) {
        pos -= 1;
    }
    pos
}

pub(super) fn line_col(text: &str, pos: usize) -> (usize, usize) {
    let pos = floor_boundary(text, pos);
    let before = &text.as_bytes()[..pos];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    (line, pos - line_start + 1)
}

/// The dotted path of the field at byte `pos`, e.g. `route[1].mock.status`.
fn field_path_at(text: &str, pos: usize) -> Option<String> {
    let pos = floor_boundary(text, pos);
    let line_start = text[..pos].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[pos..].find('\n').map_or(text.len(), |i| pos + i);
    let line = &text[line_start..line_end];
    let col = pos - line_start;

    let mut path = table_path(&text[..line_start]);
    let trimmed = line.trim_start();
    if trimmed.starts_with('[') {
        // The error is about the table header itself (e.g. a missing field).
        let header = table_path(&text[..line_end]);
        return (!header.is_empty()).then_some(header);
    }
    for key in inline_keys(line, col) {
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(&key);
    }
    (!path.is_empty()).then_some(path)
}

/// The table a position falls in, from the last header in `before`, with array
/// indices: the third `[[route]]` is `route[2]`.
fn table_path(before: &str) -> String {
    let mut current = String::new();
    let mut counts: Vec<(String, usize)> = Vec::new();
    for line in before.lines() {
        let t = line.trim();
        if let Some(inner) = t.strip_prefix("[[").and_then(|r| r.split("]]").next()) {
            let name = inner.trim().to_string();
            let n = match counts.iter_mut().find(|(k, _)| *k == name) {
                Some((_, c)) => {
                    *c += 1;
                    *c - 1
                }
                None => {
                    counts.push((name.clone(), 1));
                    0
                }
            };
            current = format!("{name}[{n}]");
        } else if let Some(inner) = t.strip_prefix('[').and_then(|r| r.split(']').next()) {
            let name = inner.trim();
            // `[server.tls]`-style subtables of an array keep the array's index.
            current = match counts
                .iter()
                .find(|(k, _)| name.starts_with(&format!("{k}.")))
            {
                Some((k, c)) => format!("{k}[{}]{}", c - 1, &name[k.len()..]),
                None => name.to_string(),
            };
        }
    }
    current
}

/// The keys leading to column `col` of one line: `a = { b = { c = 1 } }` at `1` → a, b, c.
/// When `col` is on a key itself (an unknown field), that key ends the list.
fn inline_keys(line: &str, col: usize) -> Vec<String> {
    let bytes = line.as_bytes();
    let mut stack: Vec<String> = Vec::new();
    let mut last_key: Option<String> = None;
    let mut i = 0;
    let mut in_str = false;
    while i < col.min(bytes.len()) {
        let b = bytes[i];
        if in_str {
            if b == b'\\' {
                i += 1;
            } else if b == b'"' {
                in_str = false;
            }
        } else if b == b'"' {
            in_str = true;
        } else if b == b'{' {
            if let Some(k) = last_key.take() {
                stack.push(k);
            }
        } else if b == b'}' {
            stack.pop();
        } else if b == b'=' {
            let before = line[..i].trim_end();
            // The key is the run of key characters before `=`; the character that
            // ends it may be multi-byte, so step past it by its own length.
            let start = before
                .char_indices()
                .rfind(|&(_, c)| !(c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '"'))
                .map_or(0, |(j, c)| j + c.len_utf8());
            last_key = Some(before[start..].trim_matches('"').to_string());
        } else if b == b',' {
            last_key = None;
        }
        i += 1;
    }
    // On a key: `bogus = 1` with the span at `bogus`.
    let rest = &line[floor_boundary(line, col)..];
    let key_here: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect();
    if !key_here.is_empty() && rest[key_here.len()..].trim_start().starts_with('=') {
        stack.push(key_here);
    } else if let Some(k) = last_key {
        stack.push(k);
    }
    stack
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let t = "[server]\nworkers = \"x\"\n";
        assert_eq!(
            field_path_at(t, t.find("\"x\"").unwrap()).unwrap(),
            "server.workers"
        );
        let t = "[[route]]\na = 1\n[[route]]\nmock = { status = 9 }\n";
        assert_eq!(
            field_path_at(t, t.find('9').unwrap()).unwrap(),
            "route[1].mock.status"
        );
        let t = "[[route]]\nbogus = 1\n";
        assert_eq!(
            field_path_at(t, t.find("bogus").unwrap()).unwrap(),
            "route[0].bogus"
        );
        assert_eq!(line_col("a\nbc\n", 3), (2, 2));
    }

    /// Found by the `config` fuzz target: a key run ending at a multi-byte character
    /// sliced the line inside it (a panic that killed a gateway on SIGHUP).
    #[test]
    fn multi_byte_text_is_sliced_at_char_boundaries() {
        let t = "#\u{79e}2- =K\0i2";
        for pos in 0..=t.len() + 1 {
            let _ = field_path_at(t, pos);
            let _ = line_col(t, pos);
        }
        assert_eq!(inline_keys("\u{79e}ab = 1", 6), vec!["ab".to_string()]);
        // Non-ASCII bare keys are not TOML keys; what matters is that no column panics.
        let t = "é = { ü = 1 }";
        for col in 0..=t.len() + 1 {
            let _ = inline_keys(t, col);
        }
    }

    /// The fuzz target's crash input, through the whole parser: an error, rendered.
    #[test]
    fn fuzz_crash_input_is_a_config_error() {
        let source = crate::config::Source::new("fuzz.toml", "#\u{79e}2- =K\0i2");
        let e = crate::config::parse(&source).expect_err("not a valid config");
        let shown = e.to_string();
        assert!(shown.starts_with("fuzz.toml:1:"), "{shown}");
    }

    #[test]
    fn a_caught_panic_names_the_file_and_its_message() {
        let payload: Box<dyn std::any::Any + Send> = Box::new("index out of range");
        let e = ConfigError::panicked(Path::new("gw.toml"), payload.as_ref());
        assert_eq!(
            e.to_string(),
            "gw.toml: internal error while loading this config (please report it): panic: index out of range"
        );
    }
}
