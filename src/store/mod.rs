//! The embedded store (one redb file): API keys, kept only as hashes, and quota
//! counters.
//!
//! The store is opened for the length of one operation and closed again. redb
//! lets one process at a time hold a database file (it takes an exclusive `flock`),
//! so by opening briefly, the running gateway (which flushes its quota counters
//! about once a second) and the `portcullis keys` command can share the same file
//! safely. An open that finds the file held by another process retries every
//! 20 ms for up to `wait` (default 5 s, see [`Store::with_wait`]) before failing
//! with an error saying the store is busy.
//!
//! Layout (all writes are durable when the call returns):
//! - `keys`: SHA-256 of the key's text (`[u8; 32]`) → the [`StoredKey`] as JSON.
//! - `meta`: `"keys_version"` → a `u64` bumped by every change to `keys`, so the
//!   gateway can notice new and revoked keys with one cheap read.
//! - `quota`: key hash ++ period start (big-endian `u64`), 40 bytes → used count.
//!
//! Commits use redb's quick-repair mode, so closing after every operation costs no
//! extra commit and the file reopens quickly after a crash.
//!
//! A missing file reads as an empty store (and is not created by reads); tables are
//! created by the first write that needs them.

use std::fmt;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use redb::{
    Database, DatabaseError, ReadTransaction, ReadableTable, ReadableTableMetadata,
    TableDefinition, TableError,
};

/// SHA-256 of an API key's text.
pub type KeyHash = [u8; 32];

/// One API key as stored: never the key itself, only its hash.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoredKey {
    /// Written as 64 lowercase hex digits in JSON.
    #[serde(with = "hex32")]
    pub hash: KeyHash,
    pub name: String,
    pub plan: String,
    /// Unix seconds.
    pub expires: Option<u64>,
    pub revoked: bool,
    /// Unix seconds.
    pub created: u64,
}

/// Identity of one quota counter: a key, and the start (unix seconds) of the period it counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct QuotaId {
    pub key: KeyHash,
    pub period_start: u64,
}

/// A store failure; the message names the store file.
#[derive(Debug)]
pub struct StoreError(pub String);

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StoreError {}

const KEYS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("keys");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const QUOTA: TableDefinition<&[u8; 40], u64> = TableDefinition::new("quota");
const KEYS_VERSION: &str = "keys_version";

/// How long to sleep between attempts to open a file another process holds.
const RETRY: Duration = Duration::from_millis(20);

/// The store file, opened per operation.
#[derive(Debug, Clone)]
pub struct Store {
    path: PathBuf,
    wait: Duration,
}

impl Store {
    /// A store at `path`; creates the parent directory if missing. Does not open the file yet.
    pub fn new(path: &Path) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError(format!(
                    "{}: cannot create the store's directory {}: {e}",
                    path.display(),
                    dir.display()
                ))
            })?;
        }
        Ok(Store {
            path: path.to_path_buf(),
            wait: Duration::from_secs(5),
        })
    }

    /// How long an open waits for another process to release the file (default 5 s).
    pub fn with_wait(self, wait: Duration) -> Store {
        Store { wait, ..self }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Adds a key. Error if a key with the same name or hash exists (the message says which).
    pub fn create_key(&self, key: &StoredKey) -> Result<(), StoreError> {
        let json = serde_json::to_vec(key).map_err(|e| self.err("cannot encode the key", e))?;
        self.write(|tx| {
            let mut keys = tx.open_table(KEYS).map_err(|e| self.err("keys table", e))?;
            if let Some(old) = keys.get(&key.hash).map_err(|e| self.err("read key", e))? {
                let old = self.decode(&key.hash, old.value())?;
                return Err(StoreError(format!(
                    "{}: a key with the same hash already exists (named \"{}\")",
                    self.path.display(),
                    old.name
                )));
            }
            for entry in keys.iter().map_err(|e| self.err("read keys", e))? {
                let (hash, json) = entry.map_err(|e| self.err("read keys", e))?;
                if self.decode(hash.value(), json.value())?.name == key.name {
                    return Err(StoreError(format!(
                        "{}: a key named \"{}\" already exists",
                        self.path.display(),
                        key.name
                    )));
                }
            }
            keys.insert(&key.hash, json.as_slice())
                .map_err(|e| self.err("write key", e))?;
            drop(keys);
            self.bump_version(tx)
        })
    }

    /// All keys, sorted by name.
    pub fn list_keys(&self) -> Result<Vec<StoredKey>, StoreError> {
        Ok(self.read(|tx| self.read_keys(tx))?.unwrap_or_default())
    }

    /// Marks revoked every key whose name equals `selector` or whose hex hash starts
    /// with `selector` (at least 8 hex digits, either case, for a hash prefix).
    /// Returns how many keys changed: 0 when none matched or all were already revoked.
    pub fn revoke_key(&self, selector: &str) -> Result<usize, StoreError> {
        // A hash prefix is written `sha256:<hex>`, so a key named like hex digits
        // never revokes keys whose hash happens to start that way.
        let prefix = selector
            .strip_prefix("sha256:")
            .filter(|h| h.len() >= 8 && h.bytes().all(|c| c.is_ascii_hexdigit()))
            .map(str::to_ascii_lowercase);
        self.write(|tx| {
            let mut keys = tx.open_table(KEYS).map_err(|e| self.err("keys table", e))?;
            let mut changed = Vec::new();
            for entry in keys.iter().map_err(|e| self.err("read keys", e))? {
                let (hash, json) = entry.map_err(|e| self.err("read keys", e))?;
                let key = self.decode(hash.value(), json.value())?;
                let hit = key.name == selector
                    || prefix
                        .as_ref()
                        .is_some_and(|p| crate::hex::encode(&key.hash).starts_with(p));
                if hit && !key.revoked {
                    changed.push(StoredKey {
                        revoked: true,
                        ..key
                    });
                }
            }
            for key in &changed {
                let json =
                    serde_json::to_vec(key).map_err(|e| self.err("cannot encode the key", e))?;
                keys.insert(&key.hash, json.as_slice())
                    .map_err(|e| self.err("write key", e))?;
            }
            drop(keys);
            if !changed.is_empty() {
                self.bump_version(tx)?;
            }
            Ok(changed.len())
        })
    }

    /// Rotates the active keys named `name`: adds `new` (under the same name)
    /// and makes every active key of that name expire at `until` at the
    /// latest, in one transaction. Returns how many old keys were cut short;
    /// an error when no active key has that name or `new`'s hash exists.
    pub fn rotate_key(
        &self,
        name: &str,
        new: &StoredKey,
        until: u64,
        now: u64,
    ) -> Result<usize, StoreError> {
        let json = serde_json::to_vec(new).map_err(|e| self.err("cannot encode the key", e))?;
        self.write(|tx| {
            let mut keys = tx.open_table(KEYS).map_err(|e| self.err("keys table", e))?;
            if keys
                .get(&new.hash)
                .map_err(|e| self.err("read key", e))?
                .is_some()
            {
                return Err(StoreError(format!(
                    "{}: a key with the same hash already exists",
                    self.path.display()
                )));
            }
            let mut old = Vec::new();
            for entry in keys.iter().map_err(|e| self.err("read keys", e))? {
                let (hash, json) = entry.map_err(|e| self.err("read keys", e))?;
                let key = self.decode(hash.value(), json.value())?;
                let active = !key.revoked && key.expires.is_none_or(|e| e > now);
                if key.name == name && active {
                    let expires = Some(key.expires.map_or(until, |e| e.min(until)));
                    old.push(StoredKey { expires, ..key });
                }
            }
            if old.is_empty() {
                return Err(StoreError(format!("no active key named {name:?}")));
            }
            for key in &old {
                let json =
                    serde_json::to_vec(key).map_err(|e| self.err("cannot encode the key", e))?;
                keys.insert(&key.hash, json.as_slice())
                    .map_err(|e| self.err("write key", e))?;
            }
            keys.insert(&new.hash, json.as_slice())
                .map_err(|e| self.err("write key", e))?;
            drop(keys);
            self.bump_version(tx)?;
            Ok(old.len())
        })
    }

    /// The keys with their version (a counter bumped by every create and revoke that
    /// changed something; 0 for a new store), only when the version differs from
    /// `seen`. One read transaction.
    pub fn keys_if_changed(&self, seen: u64) -> Result<Option<(u64, Vec<StoredKey>)>, StoreError> {
        let found = self.read(|tx| {
            let version = match tx.open_table(META) {
                Ok(meta) => meta
                    .get(KEYS_VERSION)
                    .map_err(|e| self.err("read the keys version", e))?
                    .map_or(0, |v| v.value()),
                Err(TableError::TableDoesNotExist(_)) => 0,
                Err(e) => return Err(self.err("meta table", e)),
            };
            if version == seen {
                return Ok(None);
            }
            Ok(Some((version, self.read_keys(tx)?)))
        })?;
        // No file yet: version 0, no keys.
        Ok(found.unwrap_or_else(|| (seen != 0).then(|| (0, Vec::new()))))
    }

    /// Every stored quota counter with its used count.
    pub fn load_quotas(&self) -> Result<Vec<(QuotaId, u64)>, StoreError> {
        let found = self.read(|tx| {
            let table = match tx.open_table(QUOTA) {
                Ok(table) => table,
                Err(TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
                Err(e) => return Err(self.err("quota table", e)),
            };
            let mut out = Vec::with_capacity(table.len().unwrap_or(0) as usize);
            for entry in table.iter().map_err(|e| self.err("read quotas", e))? {
                let (id, used) = entry.map_err(|e| self.err("read quotas", e))?;
                out.push((quota_id(id.value()), used.value()));
            }
            Ok(out)
        })?;
        Ok(found.unwrap_or_default())
    }

    /// Sets (overwrites) the used counts in one write transaction, durable on return,
    /// and deletes every counter whose period started before `drop_before` (unix
    /// seconds) so old periods don't pile up. Counts in `counts` for such periods are
    /// not written.
    pub fn save_quotas(
        &self,
        counts: &[(QuotaId, u64)],
        drop_before: u64,
    ) -> Result<(), StoreError> {
        self.write(|tx| {
            let mut table = tx
                .open_table(QUOTA)
                .map_err(|e| self.err("quota table", e))?;
            table
                .retain(|id, _| quota_id(id).period_start >= drop_before)
                .map_err(|e| self.err("drop old quotas", e))?;
            for (id, used) in counts
                .iter()
                .filter(|(id, _)| id.period_start >= drop_before)
            {
                table
                    .insert(&quota_key(id), used)
                    .map_err(|e| self.err("write quotas", e))?;
            }
            Ok(())
        })
    }

    /// Opens the file, waiting up to `self.wait` while another process holds it.
    fn open(&self) -> Result<Database, StoreError> {
        let started = Instant::now();
        loop {
            match Database::create(&self.path) {
                Ok(db) => return Ok(db),
                Err(DatabaseError::DatabaseAlreadyOpen) => {
                    let waited = started.elapsed();
                    if waited >= self.wait {
                        return Err(StoreError(format!(
                            "{}: the store is busy (held by another process) and was not \
                             released within {:.1} s; is a portcullis process stuck?",
                            self.path.display(),
                            self.wait.as_secs_f64()
                        )));
                    }
                    thread::sleep(RETRY.min(self.wait - waited));
                }
                Err(e) => return Err(self.err("cannot open the store", e)),
            }
        }
    }

    /// Runs `f` in one read transaction; `None` when the file does not exist yet
    /// (reads never create it).
    fn read<T>(
        &self,
        f: impl FnOnce(&ReadTransaction) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        if !self.path.exists() {
            return Ok(None);
        }
        let db = self.open()?;
        let tx = db
            .begin_read()
            .map_err(|e| self.err("cannot start a read", e))?;
        f(&tx).map(Some)
    }

    /// Runs `f` in one write transaction and commits it (durably) if `f` succeeds.
    fn write<T>(
        &self,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let db = self.open()?;
        let mut tx = db
            .begin_write()
            .map_err(|e| self.err("cannot start a write", e))?;
        // Saves the allocator state with the commit: closing the database then has
        // nothing left to write, and reopening after a crash needs no full repair.
        tx.set_quick_repair(true);
        let out = f(&tx)?;
        tx.commit().map_err(|e| self.err("cannot commit", e))?;
        Ok(out)
    }

    fn read_keys(&self, tx: &ReadTransaction) -> Result<Vec<StoredKey>, StoreError> {
        let table = match tx.open_table(KEYS) {
            Ok(table) => table,
            Err(TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(self.err("keys table", e)),
        };
        let mut keys = Vec::new();
        for entry in table.iter().map_err(|e| self.err("read keys", e))? {
            let (hash, json) = entry.map_err(|e| self.err("read keys", e))?;
            keys.push(self.decode(hash.value(), json.value())?);
        }
        keys.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(keys)
    }

    fn bump_version(&self, tx: &redb::WriteTransaction) -> Result<(), StoreError> {
        let mut meta = tx.open_table(META).map_err(|e| self.err("meta table", e))?;
        let version = meta
            .get(KEYS_VERSION)
            .map_err(|e| self.err("read the keys version", e))?
            .map_or(0, |v| v.value());
        meta.insert(KEYS_VERSION, version + 1)
            .map_err(|e| self.err("write the keys version", e))?;
        Ok(())
    }

    fn decode(&self, hash: &KeyHash, json: &[u8]) -> Result<StoredKey, StoreError> {
        serde_json::from_slice(json).map_err(|e| {
            StoreError(format!(
                "{}: the record of key {} is corrupt: {e}",
                self.path.display(),
                crate::hex::encode(hash)
            ))
        })
    }

    fn err(&self, what: &str, e: impl fmt::Display) -> StoreError {
        StoreError(format!("{}: {what}: {e}", self.path.display()))
    }
}

fn quota_key(id: &QuotaId) -> [u8; 40] {
    let mut k = [0; 40];
    k[..32].copy_from_slice(&id.key);
    k[32..].copy_from_slice(&id.period_start.to_be_bytes());
    k
}

fn quota_id(k: &[u8; 40]) -> QuotaId {
    let mut key = [0; 32];
    key.copy_from_slice(&k[..32]);
    let mut start = [0; 8];
    start.copy_from_slice(&k[32..]);
    QuotaId {
        key,
        period_start: u64::from_be_bytes(start),
    }
}

/// Serde for [`KeyHash`] as 64 lowercase hex digits.
mod hex32 {
    use super::KeyHash;
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(hash: &KeyHash, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::hex::encode(hash))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<KeyHash, D::Error> {
        let text = String::deserialize(d)?;
        let bytes = text.as_bytes();
        if bytes.len() != 64 {
            return Err(D::Error::custom(format!(
                "key hash must be 64 hex digits, got {} characters",
                text.len()
            )));
        }
        crate::hex::decode32(&text)
            .ok_or_else(|| D::Error::custom(format!("key hash {text:?} is not hex")))
    }
}

#[cfg(test)]
mod tests;
