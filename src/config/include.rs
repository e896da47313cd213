//! `include = ["routes/*.toml", "stage/prod.toml"]`: other files merged into
//! the config, so a stage (dev, staging, prod) is one small file that
//! includes the shared routes and sets its own listeners, limits and secrets.
//!
//! The files are appended to the main file's text in the order listed (a
//! pattern's matches in name order) and parsed as one document, so TOML's own
//! rules apply across them: a `[server]` in two files is a duplicate table,
//! `[[route]]`s add up. An included file holds tables only (no top-level key,
//! so no nested `include`). Each part's place in the merged text is kept in
//! the [`Source`], and every error names the file and line the value came
//! from. Relative paths inside included files, like everywhere in the
//! config, are resolved against the main file's directory.
//!
//! Patterns: a path relative to the main file's directory whose last
//! component may hold `*` and `?`; a pattern without them must name an
//! existing file, one with them may match none.

use std::path::{Path, PathBuf};

use super::{ConfigError, Source};

/// Where an included file starts in the merged text.
#[derive(Debug, Clone)]
pub struct Part {
    /// Byte offset of its first byte in [`Source::text`].
    pub start: usize,
    /// The merged text's line number (1-based) of its first line.
    pub first_line: usize,
    pub path: PathBuf,
}

/// `*` (any run) and `?` (one character) against a file name.
fn matches(pattern: &[u8], name: &[u8]) -> bool {
    match (pattern.first(), name.first()) {
        (None, None) => true,
        (Some(b'*'), _) => {
            matches(&pattern[1..], name) || (!name.is_empty() && matches(pattern, &name[1..]))
        }
        (Some(b'?'), Some(_)) => matches(&pattern[1..], &name[1..]),
        (Some(p), Some(n)) if p == n => matches(&pattern[1..], &name[1..]),
        _ => false,
    }
}

/// The files `pattern` names, in name order.
fn expand(dir: &Path, pattern: &str) -> Result<Vec<PathBuf>, String> {
    let full = dir.join(pattern);
    let name = full
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| format!("include {pattern:?}: no file name"))?
        .to_string();
    if !name.contains(['*', '?']) {
        return if full.is_file() {
            Ok(vec![full])
        } else {
            Err(format!(
                "include {pattern:?}: {} is not a file",
                full.display()
            ))
        };
    }
    let parent = full.parent().unwrap_or(dir);
    let entries = std::fs::read_dir(parent)
        .map_err(|e| format!("include {pattern:?}: {}: {e}", parent.display()))?;
    let mut found: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| matches(name.as_bytes(), n.as_bytes()))
        })
        .collect();
    found.sort();
    Ok(found)
}

/// The `include` list of the main file's text, if any (read before the
/// merge: it decides what is merged).
fn patterns(source: &Source) -> Result<Vec<String>, ConfigError> {
    let table: toml::Table =
        toml::from_str(&source.text).map_err(|e| ConfigError::from_toml(source, &e))?;
    let Some(v) = table.get("include") else {
        return Ok(Vec::new());
    };
    let pos = source.text.find("include").unwrap_or(0);
    let field = Some("include".to_string());
    let list = v.as_array().ok_or_else(|| {
        ConfigError::at(
            source,
            pos,
            field.clone(),
            "expected a list of file patterns".into(),
        )
    })?;
    list.iter()
        .map(|p| {
            p.as_str().map(str::to_string).ok_or_else(|| {
                ConfigError::at(
                    source,
                    pos,
                    field.clone(),
                    "expected a list of strings".into(),
                )
            })
        })
        .collect()
}

/// Appends the files the main file includes to `source`'s text.
pub fn merge(source: &mut Source) -> Result<(), ConfigError> {
    let patterns = patterns(source)?;
    if patterns.is_empty() {
        return Ok(());
    }
    let dir = source.dir().to_path_buf();
    let pos = source.text.find("include").unwrap_or(0);
    let mut files = Vec::new();
    for p in &patterns {
        let found =
            expand(&dir, p).map_err(|m| ConfigError::at(source, pos, Some("include".into()), m))?;
        files.extend(found);
    }
    for path in files {
        let text = std::fs::read_to_string(&path).map_err(|e| ConfigError::io(&path, e))?;
        if let Some((n, line)) = text.lines().enumerate().find(|(_, l)| {
            let t = l.trim();
            !t.is_empty() && !t.starts_with('#')
        }) {
            if !line.trim_start().starts_with('[') {
                return Err(ConfigError {
                    file: path.display().to_string(),
                    line: n + 1,
                    col: 1,
                    field: None,
                    message: "an included file holds tables only ([[route]], [[upstream]], [waf.NAME], …): move top-level keys, and include, to the main file".into(),
                });
            }
        }
        if !source.text.ends_with('\n') {
            source.text.push('\n');
        }
        let first_line = source.text.bytes().filter(|&b| b == b'\n').count() + 1;
        source.parts.push(Part {
            start: source.text.len(),
            first_line,
            path,
        });
        source.text.push_str(&text);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(matches(b"*.toml", b"routes.toml"));
        assert!(matches(b"r?.toml", b"r1.toml"));
        assert!(!matches(b"*.toml", b"routes.toml.bak"));
        assert!(matches(b"*", b""));
        assert!(!matches(b"a?", b"a"));
    }
}
