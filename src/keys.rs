//! API key management: the operations (`create`, `list`, `revoke`, `rotate`)
//! that `portcullis keys …` and the admin API's `/keys` endpoints share.
//!
//! Keys go straight into the store named by the config (`store.path`). The store
//! is opened only per operation, by the running gateway too, so these work
//! while it runs; the gateway polls the store and applies a created, revoked or
//! rotated key on every core within about a second, without a reload. A key's
//! text is shown once, at creation: only its SHA-256 is stored.
//!
//! Rotation adds a new key under the same name and plan, and makes the old
//! one expire when the grace period ends: both work until then, so a client
//! can switch without a moment of refusals; after it, the old key is refused
//! as expired.

use std::path::PathBuf;
use std::time::Duration;

use crate::gateway::Gateway;
use crate::guard::api_key::{generate_key, hash_key, is_field_safe};
use crate::hex::encode as hex;
use crate::limit::period::{format_rfc3339, parse_rfc3339, unix_now as now};
use crate::store::{Store, StoredKey};

pub enum Command {
    Create {
        config: PathBuf,
        plan: String,
        name: Option<String>,
        expires: Option<String>,
    },
    List {
        config: PathBuf,
    },
    Revoke {
        config: PathBuf,
        selector: String,
    },
    Rotate {
        config: PathBuf,
        name: String,
        grace: String,
    },
}

/// A key just made: its text (shown once) and what is stored.
pub struct Created {
    pub text: String,
    pub key: StoredKey,
}

/// The store `gw` names, waiting up to 10 s for a running gateway's flush.
pub fn open_store(gw: &Gateway) -> Result<Store, String> {
    Ok(Store::new(&gw.store.path)
        .map_err(|e| e.to_string())?
        .with_wait(Duration::from_secs(10)))
}

fn open(config: &std::path::Path) -> Result<(Gateway, Store), String> {
    let (_, _, gw) = crate::gateway::load(config).map_err(|e| e.to_string())?;
    let store = open_store(&gw)?;
    Ok((gw, store))
}

fn check_plan(gw: &Gateway, plan: &str) -> Result<(), String> {
    if gw.plans.contains_key(plan) {
        return Ok(());
    }
    let mut known: Vec<&str> = gw.plans.keys().map(|p| &**p).collect();
    known.sort_unstable();
    Err(format!(
        "unknown plan {plan:?} (the config has: {})",
        if known.is_empty() {
            "no plans".to_string()
        } else {
            known.join(", ")
        }
    ))
}

fn new_key(name: Option<&str>, plan: &str, expires: Option<u64>) -> Result<Created, String> {
    if let Some(n) = name {
        if !is_field_safe(n) {
            return Err(format!(
                "name {n:?}: use 1-128 visible ASCII characters (it is sent upstream in a header)"
            ));
        }
    }
    let text = generate_key().map_err(|e| format!("cannot generate a key: {e}"))?;
    let hash = hash_key(text.as_bytes());
    let name = name.map_or_else(|| format!("key-{}", &hex(&hash)[..8]), str::to_string);
    Ok(Created {
        text,
        key: StoredKey {
            hash,
            name,
            plan: plan.to_string(),
            expires,
            revoked: false,
            created: now(),
        },
    })
}

/// Creates a key for `plan`; `expires`: RFC 3339, in the future.
pub fn create(
    gw: &Gateway,
    store: &Store,
    plan: &str,
    name: Option<&str>,
    expires: Option<&str>,
) -> Result<Created, String> {
    check_plan(gw, plan)?;
    let expires = match expires {
        Some(e) => {
            let t = parse_rfc3339(e).map_err(|m| format!("expires {e:?}: {m}"))?;
            if t <= now() {
                return Err(format!("expires {e:?} is in the past"));
            }
            Some(t)
        }
        None => None,
    };
    let created = new_key(name, plan, expires)?;
    store.create_key(&created.key).map_err(|e| e.to_string())?;
    Ok(created)
}

/// Rotates the active key(s) named `name`: a new key with the same plan (and
/// expiry, if any), the old one(s) valid for `grace` more. Returns the new
/// key and when the old ones stop working (Unix seconds).
pub fn rotate(store: &Store, name: &str, grace: &str) -> Result<(Created, u64), String> {
    let grace: crate::config::ConfigDuration =
        grace.parse().map_err(|e: String| format!("grace: {e}"))?;
    let t = now();
    let active: Vec<StoredKey> = store
        .list_keys()
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|k| k.name == name && !k.revoked && k.expires.is_none_or(|e| e > t))
        .collect();
    let Some(first) = active.first() else {
        return Err(format!("no active key named {name:?}"));
    };
    if active.iter().any(|k| k.plan != first.plan) {
        return Err(format!(
            "the active keys named {name:?} are on different plans: revoke the ones to drop first"
        ));
    }
    // The new key lives as long as the longest-lived of them (a key cut short
    // by an earlier rotation's grace must not pass its cut on).
    let expires = active
        .iter()
        .map(|k| k.expires)
        .reduce(|a, b| match (a, b) {
            (Some(x), Some(y)) => Some(x.max(y)),
            _ => None,
        })
        .flatten();
    let created = new_key(Some(name), &first.plan, expires)?;
    let until = t.saturating_add(grace.0.as_secs());
    store
        .rotate_key(name, &created.key, until, t)
        .map_err(|e| e.to_string())?;
    // When the old keys stop working: the grace's end, or earlier if they expire first.
    let old_until = active
        .iter()
        .map(|k| k.expires.map_or(until, |e| e.min(until)))
        .max()
        .unwrap_or(until);
    Ok((created, old_until))
}

/// `active`, `revoked` or `expired` at `t`.
pub fn state(k: &StoredKey, t: u64) -> &'static str {
    if k.revoked {
        "revoked"
    } else if k.expires.is_some_and(|e| e <= t) {
        "expired"
    } else {
        "active"
    }
}

/// A stored key as the admin API shows it (never the key's text).
pub fn to_json(k: &StoredKey, t: u64) -> serde_json::Value {
    serde_json::json!({
        "name": k.name,
        "plan": k.plan,
        "state": state(k, t),
        "expires": k.expires.map(format_rfc3339),
        "created": format_rfc3339(k.created),
        "hash": format!("sha256:{}", hex(&k.hash)),
    })
}

pub fn run(cmd: Command) -> Result<(), String> {
    match cmd {
        Command::Create {
            config,
            plan,
            name,
            expires,
        } => {
            let (gw, store) = open(&config)?;
            let c = create(&gw, &store, &plan, name.as_deref(), expires.as_deref())?;
            println!("{}", c.text);
            eprintln!(
                "created key {:?} for plan {plan:?} (sha256:{}); this is the only time it is shown",
                c.key.name,
                hex(&c.key.hash)
            );
            Ok(())
        }
        Command::List { config } => {
            let (_, store) = open(&config)?;
            let keys = store.list_keys().map_err(|e| e.to_string())?;
            println!(
                "{:<24} {:<16} {:<8} {:<21} hash",
                "name", "plan", "state", "expires"
            );
            let t = now();
            for k in keys {
                println!(
                    "{:<24} {:<16} {:<8} {:<21} sha256:{}",
                    k.name,
                    k.plan,
                    state(&k, t),
                    k.expires.map_or_else(|| "-".to_string(), format_rfc3339),
                    hex(&k.hash)
                );
            }
            Ok(())
        }
        Command::Revoke { config, selector } => {
            let (_, store) = open(&config)?;
            let n = store.revoke_key(&selector).map_err(|e| e.to_string())?;
            if n == 0 {
                return Err(format!("no active key matches {selector:?}"));
            }
            eprintln!("revoked {n} key(s) matching {selector:?}");
            Ok(())
        }
        Command::Rotate {
            config,
            name,
            grace,
        } => {
            let (_, store) = open(&config)?;
            let (c, until) = rotate(&store, &name, &grace)?;
            println!("{}", c.text);
            eprintln!(
                "rotated key {name:?} (new sha256:{}); the old key works until {}; the new one is shown only now",
                hex(&c.key.hash),
                format_rfc3339(until)
            );
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (Store, std::path::PathBuf) {
        let mut r = [0u8; 8];
        crate::random::fill(&mut r).unwrap();
        let dir = std::env::temp_dir().join(format!(
            "portcullis-keys-{}-{}",
            std::process::id(),
            crate::hex::encode(&r)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        (Store::new(&dir.join("k.redb")).unwrap(), dir)
    }

    fn key(name: &str, plan: &str, expires: Option<u64>) -> StoredKey {
        new_key(Some(name), plan, expires).unwrap().key
    }

    #[test]
    fn a_second_rotation_within_the_grace_keeps_the_new_key_unbounded() {
        let (s, dir) = store();
        s.create_key(&key("acme", "basic", None)).unwrap();
        let (first, _) = rotate(&s, "acme", "1h").unwrap();
        let (second, until) = rotate(&s, "acme", "1h").unwrap();
        assert_eq!(first.key.expires, None);
        assert_eq!(second.key.expires, None, "not the earlier key's grace cut");
        let keys = s.list_keys().unwrap();
        let newest = keys.iter().find(|k| k.hash == second.key.hash).unwrap();
        assert_eq!(newest.expires, None);
        assert!(keys
            .iter()
            .filter(|k| k.hash != second.key.hash)
            .all(|k| k.expires.is_some_and(|e| e <= until)));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn rotation_refuses_keys_of_one_name_on_two_plans_and_reports_an_earlier_expiry() {
        let (s, dir) = store();
        let soon = now() + 60;
        s.create_key(&key("acme", "basic", Some(soon))).unwrap();
        let (c, until) = rotate(&s, "acme", "24h").unwrap();
        assert_eq!(until, soon, "the old key expires before the grace ends");
        assert_eq!(c.key.expires, Some(soon));
        let mut other = key("acme", "pro", None);
        other.name = "acme".into();
        // Two plans under one name (written straight into the store).
        s.rotate_key("acme", &other, now() + 3600, now()).unwrap();
        let e = rotate(&s, "acme", "1h").err().unwrap();
        assert!(e.contains("different plans"), "{e}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
