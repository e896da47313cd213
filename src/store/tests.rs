//! Unit tests of `store`.

use super::*;
use sha2::{Digest, Sha256};

/// A store in a fresh temp directory, removed on drop.
struct Temp {
    dir: PathBuf,
    store: Store,
}

impl Temp {
    fn new(tag: &str) -> Temp {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!(
            "portcullis-store-{tag}-{}-{nanos}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        // `new` creates the missing parent directory.
        let store = Store::new(&dir.join("sub").join("store.redb")).unwrap();
        Temp { dir, store }
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn key(text: &str, name: &str) -> StoredKey {
    StoredKey {
        hash: Sha256::digest(text.as_bytes()).into(),
        name: name.into(),
        plan: "free".into(),
        expires: Some(1_798_761_600),
        revoked: false,
        created: 1_700_000_000,
    }
}

#[test]
fn missing_file_reads_empty() {
    let t = Temp::new("empty");
    assert!(t.store.path().parent().unwrap().is_dir());
    assert_eq!(t.store.list_keys().unwrap(), vec![]);
    assert_eq!(t.store.load_quotas().unwrap(), vec![]);
    assert_eq!(t.store.keys_if_changed(0).unwrap(), None);
    assert_eq!(t.store.keys_if_changed(3).unwrap(), Some((0, vec![])));
    assert!(!t.store.path().exists(), "reads must not create the file");
    // A file with quotas but no keys table yet.
    t.store.save_quotas(&[], 0).unwrap();
    assert_eq!(t.store.list_keys().unwrap(), vec![]);
    assert_eq!(t.store.keys_if_changed(0).unwrap(), None);
}

#[test]
fn create_list_revoke() {
    let t = Temp::new("keys");
    let (b, a) = (key("secret-b", "bravo"), key("secret-a", "alpha"));
    t.store.create_key(&b).unwrap();
    t.store.create_key(&a).unwrap();
    assert_eq!(t.store.list_keys().unwrap(), vec![a.clone(), b.clone()]);

    assert_eq!(t.store.revoke_key("bravo").unwrap(), 1);
    assert_eq!(t.store.revoke_key("bravo").unwrap(), 0, "already revoked");
    assert_eq!(t.store.revoke_key("nobody").unwrap(), 0);
    // A hash prefix needs 8 hex digits; case does not matter.
    let prefix = format!(
        "sha256:{}",
        crate::hex::encode(&a.hash)[..8].to_ascii_uppercase()
    );
    assert_eq!(t.store.revoke_key(&prefix[..14]).unwrap(), 0);
    // Bare hex is a name, not a hash prefix.
    assert_eq!(t.store.revoke_key(&prefix[7..]).unwrap(), 0);
    assert_eq!(t.store.revoke_key(&prefix).unwrap(), 1);

    let keys = t.store.list_keys().unwrap();
    assert!(keys.iter().all(|k| k.revoked));
    assert_eq!(keys[0].name, "alpha");
}

#[test]
fn duplicates_are_rejected() {
    let t = Temp::new("dup");
    t.store.create_key(&key("one", "svc")).unwrap();
    let err = t
        .store
        .create_key(&key("two", "svc"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("a key named \"svc\" already exists"), "{err}");
    assert!(err.contains("store.redb"), "{err}");
    let err = t
        .store
        .create_key(&key("one", "other"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("same hash") && err.contains("\"svc\""),
        "{err}"
    );
    assert_eq!(t.store.list_keys().unwrap().len(), 1);
}

#[test]
fn version_tracks_changes() {
    let t = Temp::new("version");
    t.store.create_key(&key("k1", "one")).unwrap();
    let (v1, keys) = t.store.keys_if_changed(0).unwrap().unwrap();
    assert_eq!((v1, keys.len()), (1, 1));
    assert_eq!(t.store.keys_if_changed(v1).unwrap(), None);

    t.store.revoke_key("nobody").unwrap();
    assert_eq!(
        t.store.keys_if_changed(v1).unwrap(),
        None,
        "no change, no bump"
    );
    t.store.save_quotas(&[], 0).unwrap();
    assert_eq!(t.store.keys_if_changed(v1).unwrap(), None);

    t.store.revoke_key("one").unwrap();
    let (v2, keys) = t.store.keys_if_changed(v1).unwrap().unwrap();
    assert!(v2 > v1 && keys[0].revoked);
    assert!(t.store.create_key(&key("k1", "again")).is_err());
    assert_eq!(t.store.keys_if_changed(v2).unwrap(), None, "failed create");
}

#[test]
fn quotas_round_trip_and_old_periods_drop() {
    let t = Temp::new("quota");
    let (k1, k2) = (key("a", "a").hash, key("b", "b").hash);
    let id = |key, period_start| QuotaId { key, period_start };
    t.store
        .save_quotas(&[(id(k1, 100), 5), (id(k1, 200), 7), (id(k2, 200), 1)], 0)
        .unwrap();
    let mut got = t.store.load_quotas().unwrap();
    got.sort_by_key(|(id, _)| (id.key, id.period_start));
    let mut want = vec![(id(k1, 100), 5), (id(k1, 200), 7), (id(k2, 200), 1)];
    want.sort_by_key(|(id, _)| (id.key, id.period_start));
    assert_eq!(got, want);

    // Overwrite one, add one in an old period, drop everything before 200.
    t.store
        .save_quotas(&[(id(k2, 200), 9), (id(k2, 150), 3)], 200)
        .unwrap();
    let mut got = t.store.load_quotas().unwrap();
    got.sort_by_key(|(id, _)| (id.key, id.period_start));
    let mut want = vec![(id(k1, 200), 7), (id(k2, 200), 9)];
    want.sort_by_key(|(id, _)| (id.key, id.period_start));
    assert_eq!(got, want);
}

#[test]
fn hash_is_hex_in_json() {
    let k = key("x", "x");
    let json = serde_json::to_string(&k).unwrap();
    assert!(
        json.contains(&format!("\"hash\":\"{}\"", crate::hex::encode(&k.hash))),
        "{json}"
    );
    assert_eq!(serde_json::from_str::<StoredKey>(&json).unwrap(), k);
    let bad = json.replace(&crate::hex::encode(&k.hash)[..2], "zz");
    assert!(serde_json::from_str::<StoredKey>(&bad).is_err());
}

#[test]
fn busy_file_waits_then_fails() {
    let t = Temp::new("busy");
    t.store.create_key(&key("k", "k")).unwrap();
    let store = t.store.clone().with_wait(Duration::from_millis(200));

    // redb locks the file with flock, which conflicts between two opens even
    // within one process, so this stands in for another process.
    let holder = Database::create(store.path()).unwrap();
    let started = Instant::now();
    let err = store.list_keys().unwrap_err().to_string();
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert!(
        err.contains("the store is busy (held by another process)"),
        "{err}"
    );
    assert!(err.contains("store.redb"), "{err}");
    drop(holder);

    assert_eq!(store.list_keys().unwrap().len(), 1);
}

#[test]
fn unreadable_file_is_a_clear_error() {
    let t = Temp::new("junk");
    std::fs::write(t.store.path(), b"not a database, just some text").unwrap();
    let err = t.store.list_keys().unwrap_err().to_string();
    assert!(err.contains("store.redb: cannot open the store"), "{err}");
}
