//! `BoundedMap`: a hash map with a hard capacity. Inserting into a full map evicts
//! the least valuable of a few sampled entries (the way Redis approximates LRU), so
//! insertion stays O(1) however the map is flooded.
//!
//! Entries live in a dense `Vec` indexed by a hash map from key to slot, so a caller
//! can look an entry up once and then reach it again by slot, and sampling a random
//! entry is one index.

use std::hash::Hash;

use rustc_hash::FxHashMap;

/// How many entries an insertion into a full map samples for eviction.
const SAMPLES: usize = 8;

pub struct BoundedMap<K, V> {
    index: FxHashMap<K, u32>,
    slots: Vec<(K, V)>,
    cap: usize,
    rng: u64,
}

impl<K: Copy + Eq + Hash, V> BoundedMap<K, V> {
    pub fn new(cap: usize) -> Self {
        BoundedMap {
            index: FxHashMap::default(),
            slots: Vec::new(),
            cap: cap.max(1),
            rng: 0x2545_f491_4f6c_dd1d,
        }
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub fn slot_of(&self, key: &K) -> Option<usize> {
        self.index.get(key).map(|&i| i as usize)
    }

    pub fn at(&mut self, slot: usize) -> &mut V {
        &mut self.slots[slot].1
    }

    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        let slot = self.slot_of(key)?;
        Some(self.at(slot))
    }

    /// Inserts `key` (which must be absent). When the map is full, the sampled
    /// entry with the lowest `worth` is evicted and returned, and the new entry
    /// takes its slot: no other entry moves, so slots the caller holds stay valid.
    /// Returns the new entry's slot.
    pub fn insert(
        &mut self,
        key: K,
        value: V,
        worth: impl Fn(&V) -> u64,
    ) -> (usize, Option<(K, V)>) {
        debug_assert!(!self.index.contains_key(&key));
        if self.slots.len() >= self.cap {
            let mut victim = self.random_slot();
            for _ in 1..SAMPLES {
                let s = self.random_slot();
                if worth(&self.slots[s].1) < worth(&self.slots[victim].1) {
                    victim = s;
                }
            }
            let old = std::mem::replace(&mut self.slots[victim], (key, value));
            self.index.remove(&old.0);
            self.index.insert(key, victim as u32);
            return (victim, Some(old));
        }
        let slot = self.slots.len();
        self.index.insert(key, slot as u32);
        self.slots.push((key, value));
        (slot, None)
    }

    fn random_slot(&mut self) -> usize {
        // xorshift64: sampling needs spread, not secrecy.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng % self.slots.len() as u64) as usize
    }

    fn remove_slot(&mut self, slot: usize) -> (K, V) {
        let (key, value) = self.slots.swap_remove(slot);
        self.index.remove(&key);
        if let Some((moved, _)) = self.slots.get(slot) {
            self.index.insert(*moved, slot as u32);
        }
        (key, value)
    }

    /// Keeps the entries for which `keep` is true; the others are handed to `gone`.
    pub fn retain(&mut self, mut keep: impl FnMut(&K, &mut V) -> bool, mut gone: impl FnMut(K, V)) {
        let mut i = 0;
        while i < self.slots.len() {
            let (k, v) = &mut self.slots[i];
            if keep(k, v) {
                i += 1;
            } else {
                let (k, v) = self.remove_slot(i);
                gone(k, v);
            }
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &(K, V)> {
        self.slots.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_the_least_worth_of_a_sample_when_full() {
        let mut m = BoundedMap::new(4);
        for k in 0..4u32 {
            assert!(m.insert(k, k, |v| u64::from(*v)).1.is_none());
        }
        let before: Vec<(u32, usize)> = (0..4).map(|k| (k, m.slot_of(&k).unwrap())).collect();
        let (slot, evicted) = m.insert(10, 10, |v| u64::from(*v));
        let (gone, _) = evicted.unwrap();
        // The new entry took the victim's slot; every other entry kept its own.
        assert_eq!(before[gone as usize].1, slot);
        for (k, s) in before.into_iter().filter(|(k, _)| *k != gone) {
            assert_eq!(m.slot_of(&k), Some(s));
        }
        assert_eq!(m.len(), 4);
        assert!(m.slot_of(&10).is_some());
        for k in [1, 2, 3, 10] {
            let s = m.slot_of(&k);
            if let Some(s) = s {
                assert_eq!(*m.at(s), k);
            }
        }
    }

    #[test]
    fn flood_stays_bounded_and_index_consistent() {
        let mut m = BoundedMap::new(100);
        for k in 0..10_000u32 {
            m.insert(k, k, |v| u64::from(*v));
            assert!(m.len() <= 100);
        }
        let keys: Vec<u32> = m.iter().map(|(k, _)| *k).collect();
        for k in keys {
            let s = m.slot_of(&k).unwrap();
            assert_eq!(*m.at(s), k);
        }
    }

    #[test]
    fn retain_hands_back_removed_entries() {
        let mut m = BoundedMap::new(10);
        for k in 0..10u32 {
            m.insert(k, k, |_| 0);
        }
        let mut gone = Vec::new();
        m.retain(|k, _| k % 2 == 0, |k, _| gone.push(k));
        gone.sort();
        assert_eq!(gone, vec![1, 3, 5, 7, 9]);
        for k in [0, 2, 4, 6, 8] {
            let s = m.slot_of(&k).unwrap();
            assert_eq!(*m.at(s), k);
        }
    }
}
