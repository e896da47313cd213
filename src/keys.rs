//! `portcullis keys create|list|revoke`: API key management from the command line.
//!
//! Keys go straight into the store named by the config (`store.path`). The store
//! is opened only per operation, by the running gateway too, so these commands work
//! while it runs; the gateway polls the store and applies a created or revoked key
//! on every core within about a second, without a reload. A key's text is printed
//! once, at creation: only its SHA-256 is stored.

use std::path::PathBuf;
use std::time::Duration;

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
}

fn open(config: &std::path::Path) -> Result<(crate::gateway::Gateway, Store), String> {
    let (_, _, gw) = crate::gateway::load(config).map_err(|e| e.to_string())?;
    let store = Store::new(&gw.store.path)
        .map_err(|e| e.to_string())?
        .with_wait(Duration::from_secs(10));
    Ok((gw, store))
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
            if !gw.plans.contains_key(plan.as_str()) {
                let mut known: Vec<&str> = gw.plans.keys().map(|p| &**p).collect();
                known.sort_unstable();
                return Err(format!(
                    "unknown plan {plan:?} (the config has: {})",
                    if known.is_empty() {
                        "no plans".to_string()
                    } else {
                        known.join(", ")
                    }
                ));
            }
            let expires = match expires {
                Some(e) => {
                    let t = parse_rfc3339(&e).map_err(|m| format!("--expires {e:?}: {m}"))?;
                    if t <= now() {
                        return Err(format!("--expires {e:?} is in the past"));
                    }
                    Some(t)
                }
                None => None,
            };
            if let Some(n) = &name {
                if !is_field_safe(n) {
                    return Err(format!(
                        "--name {n:?}: use 1-128 visible ASCII characters (it is sent upstream in a header)"
                    ));
                }
            }
            let text = generate_key().map_err(|e| format!("cannot generate a key: {e}"))?;
            let hash = hash_key(text.as_bytes());
            let name = name.unwrap_or_else(|| format!("key-{}", &hex(&hash)[..8]));
            store
                .create_key(&StoredKey {
                    hash,
                    name: name.clone(),
                    plan: plan.clone(),
                    expires,
                    revoked: false,
                    created: now(),
                })
                .map_err(|e| e.to_string())?;
            println!("{text}");
            eprintln!(
                "created key {name:?} for plan {plan:?} (sha256:{}); this is the only time it is shown",
                hex(&hash)
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
                let state = if k.revoked {
                    "revoked"
                } else if k.expires.is_some_and(|e| e <= t) {
                    "expired"
                } else {
                    "active"
                };
                println!(
                    "{:<24} {:<16} {:<8} {:<21} sha256:{}",
                    k.name,
                    k.plan,
                    state,
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
    }
}
