//! Macro text (`%{tx.critical_anomaly_score}`, `%{MATCHED_VAR}`,
//! `%{request_headers.host}`): parsed once at load into literal and variable
//! pieces, expanded per use against the transaction.

/// One piece of macro text.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(Vec<u8>),
    /// A variable: the collection name upper-cased (`TX`, `MATCHED_VAR`) and the
    /// key after the first `.`, lower-cased (`critical_anomaly_score`).
    Var(String, Option<String>),
}

/// Appends one variable's value: (collection, key, out).
pub type VarWriter<'f> = &'f mut dyn FnMut(&str, Option<&str>, &mut Vec<u8>);

/// Text with `%{…}` references.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Macro(Vec<Piece>);

impl Macro {
    pub fn parse(text: &str) -> Result<Macro, String> {
        let mut pieces = Vec::new();
        let mut rest = text;
        while let Some(at) = rest.find("%{") {
            if at > 0 {
                pieces.push(Piece::Literal(rest.as_bytes()[..at].to_vec()));
            }
            let after = &rest[at + 2..];
            let Some(end) = after.find('}') else {
                return Err(format!("macro {:?} has no closing brace", &rest[at..]));
            };
            let name = after[..end].trim();
            if name.is_empty() {
                return Err("empty macro %{}".into());
            }
            let (coll, key) = match name.split_once('.') {
                Some((c, k)) => (c, Some(k.to_ascii_lowercase())),
                None => (name, None),
            };
            pieces.push(Piece::Var(coll.to_ascii_uppercase(), key));
            rest = &after[end + 1..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Literal(rest.as_bytes().to_vec()));
        }
        Ok(Macro(pieces))
    }

    /// The text itself when it holds no variable.
    pub fn literal(&self) -> Option<&[u8]> {
        match self.0.as_slice() {
            [] => Some(b""),
            [Piece::Literal(l)] => Some(l),
            _ => None,
        }
    }

    /// Appends the expansion to `out`; `var(collection, key, out)` appends one
    /// variable's value (nothing for an unset one).
    pub fn expand_with(&self, var: VarWriter<'_>, out: &mut Vec<u8>) {
        for p in &self.0 {
            match p {
                Piece::Literal(l) => out.extend_from_slice(l),
                Piece::Var(c, k) => var(c, k.as_deref(), out),
            }
        }
    }

    /// The variables referenced, as (collection, key).
    pub fn vars(&self) -> impl Iterator<Item = (&str, Option<&str>)> {
        self.0.iter().filter_map(|p| match p {
            Piece::Var(c, k) => Some((c.as_str(), k.as_deref())),
            Piece::Literal(_) => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_expands() {
        let m = Macro::parse("score %{TX.Anomaly_Score} in %{MATCHED_VAR_NAME}!").unwrap();
        let mut out = Vec::new();
        m.expand_with(
            &mut |c, k, o| o.extend_from_slice(format!("[{c}:{k:?}]").as_bytes()),
            &mut out,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "score [TX:Some(\"anomaly_score\")] in [MATCHED_VAR_NAME:None]!"
        );
        assert_eq!(
            Macro::parse("plain").unwrap().literal(),
            Some(&b"plain"[..])
        );
        assert!(Macro::parse("%{tx.x").is_err());
    }
}
