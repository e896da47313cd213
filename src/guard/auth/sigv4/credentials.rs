//! The SigV4 credentials file: access key ids, their secrets and principals.

use super::*;

/// One SigV4 key from the credentials file.
#[derive(Clone)]
pub struct AccessKey {
    pub id: String,
    pub secret: String,
    pub principal: String,
}

impl fmt::Debug for AccessKey {
    // The secret never reaches a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessKey")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .field("principal", &self.principal)
            .finish()
    }
}

/// The credentials file: TOML `[[key]] id = "AKID…" secret = "…" principal = "billing-service"`.
#[derive(Debug, Default)]
pub struct Credentials {
    pub(super) keys: HashMap<String, AccessKey>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFile {
    #[serde(default)]
    pub(super) key: Vec<Spanned<BTreeMap<String, Spanned<toml::Value>>>>,
}

impl Credentials {
    /// Parses the file text; errors name the 1-based line and the field (e.g.
    /// "line 3: key[0].secret: missing"). Duplicate ids are an error. An id is
    /// 1 to 128 ASCII letters, digits, `-`, `_` or `.`; a secret is non-empty;
    /// a principal is non-empty printable ASCII (it is sent upstream in a header).
    pub fn parse(text: &str) -> Result<Credentials, String> {
        let raw: RawFile = toml::from_str(text).map_err(|e| match e.span() {
            Some(span) => format!("line {}: {}", line_of(text, span.start), e.message()),
            None => e.message().to_string(),
        })?;
        let mut keys = HashMap::with_capacity(raw.key.len());
        let mut id_lines: HashMap<String, usize> = HashMap::with_capacity(raw.key.len());
        for (i, table) in raw.key.iter().enumerate() {
            let table_line = line_of(text, table.span().start);
            let fields = table.get_ref();
            let field = |name: &str| -> Result<(&str, usize), String> {
                let Some(v) = fields.get(name) else {
                    return Err(format!("line {table_line}: key[{i}].{name}: missing"));
                };
                let line = line_of(text, v.span().start);
                match v.get_ref() {
                    toml::Value::String(s) if s.is_empty() => {
                        Err(format!("line {line}: key[{i}].{name}: empty"))
                    }
                    toml::Value::String(s) => Ok((s.as_str(), line)),
                    other => Err(format!(
                        "line {line}: key[{i}].{name}: expected a string, found {}",
                        other.type_str()
                    )),
                }
            };
            let (id, id_line) = field("id")?;
            if id.len() > MAX_KEY_ID_LEN
                || !id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            {
                return Err(format!(
                    "line {id_line}: key[{i}].id: must be 1 to {MAX_KEY_ID_LEN} ASCII letters, digits, '-', '_' or '.'"
                ));
            }
            let (secret, _) = field("secret")?;
            let (principal, principal_line) = field("principal")?;
            if !principal.bytes().all(|b| (0x20..0x7f).contains(&b)) {
                return Err(format!(
                    "line {principal_line}: key[{i}].principal: must be printable ASCII"
                ));
            }
            if let Some((name, v)) = fields
                .iter()
                .find(|(name, _)| !matches!(name.as_str(), "id" | "secret" | "principal"))
            {
                return Err(format!(
                    "line {}: key[{i}].{name}: unknown field (expected id, secret, principal)",
                    line_of(text, v.span().start)
                ));
            }
            if let Some(first) = id_lines.get(id) {
                return Err(format!(
                    "line {id_line}: key[{i}].id: duplicate id \"{id}\" (first at line {first})"
                ));
            }
            id_lines.insert(id.to_string(), id_line);
            keys.insert(
                id.to_string(),
                AccessKey {
                    id: id.to_string(),
                    secret: secret.to_string(),
                    principal: principal.to_string(),
                },
            );
        }
        Ok(Credentials { keys })
    }

    pub fn get(&self, id: &str) -> Option<&AccessKey> {
        self.keys.get(id)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// The 1-based line of byte `offset` in `text`.
pub(super) fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()
        .get(..end)
        .map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count())
        + 1
}
