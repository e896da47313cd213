//! Request-path counters: what each core counts per route (requests by
//! status code, and a latency histogram), kept so that counting costs the
//! request path no lock, no allocation and no shared write.
//!
//! Every core has its own store ([`CoreStore`]) of [`Slot`]s, one per route
//! name; a slot is written by its core alone, with plain loads and stores
//! (relaxed atomics, so the scraping thread may read them; no
//! read-modify-write, so no bus lock), on cache lines no other core writes.
//! A scrape ([`Registry::routes`]) sums the cores' slots.
//!
//! Slots are numbered by route name for the life of the process
//! ([`Registry::slot`]), so a reload that keeps a route keeps its counters
//! (Prometheus counters never go back) and a renamed route starts new ones.
//! A core maps its snapshot's routes to slots when it picks the snapshot up
//! (a lock once per reload, never per request). Storage grows in chunks,
//! allocated for every core before a slot in them is handed out.
//!
//! Events that are not per route (a WAF rule's matches) are plain counters
//! named by their whole series (`family{labels}`): a core finds a series'
//! counter in its own cache ([`CoreCounters`]), and only the first time it
//! meets a series takes the registry's lock to have one handed out.
//!
//! Status codes: each slot keeps the first [`CODES`] distinct codes it sees
//! exactly; any further code is counted under its class (`"5xx"`), so a
//! route's series stay bounded whatever the upstream answers.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use rustc_hash::FxHashMap;

/// Distinct status codes a slot counts exactly.
pub const CODES: usize = 16;
/// Upper bounds (seconds) of the latency buckets: from a cached or refused
/// answer (well under a millisecond) to a slow upstream near its timeout.
pub const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// The same bounds in microseconds, for the request path.
const BUCKETS_US: [u64; 14] = [
    500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000, 5_000_000, 10_000_000,
];
const CHUNK: usize = 256;
const CHUNKS: usize = 64;
/// Refusal reasons a slot counts (indices below this; the guard layer's
/// `Reason::ALL` must fit).
pub const REASONS: usize = 32;
/// The slot of requests no route matched.
pub const UNMATCHED: &str = "(unmatched)";

/// One route's counters on one core.
#[repr(align(64))]
#[derive(Default)]
pub struct Slot {
    /// (status code, requests); code 0: free.
    codes: [(AtomicU32, AtomicU64); CODES],
    /// Requests whose code found no free entry, by class (index 1–5).
    classes: [AtomicU64; 6],
    /// Requests at or under each bound (not cumulative: one bucket per request).
    buckets: [AtomicU64; BUCKETS.len()],
    /// Over the last bound.
    over: AtomicU64,
    sum_us: AtomicU64,
    /// Refusals by reason (the guard layer's reason index).
    denied: [AtomicU64; REASONS],
}

/// Adds to a counter only this core writes.
fn bump(c: &AtomicU64, by: u64) {
    c.store(c.load(Relaxed).wrapping_add(by), Relaxed);
}

impl Slot {
    fn record(&self, status: u16, took: Duration, denied: Option<usize>) {
        if let Some(c) = denied.and_then(|d| self.denied.get(d)) {
            bump(c, 1);
        }
        let code = u32::from(status);
        // No response (the client left first): code 0 is a free entry's mark,
        // so these count apart, shown as code="000".
        if code == 0 {
            bump(&self.classes[0], 1);
            self.time(took);
            return;
        }
        let counted = self.codes.iter().find_map(|(c, n)| match c.load(Relaxed) {
            0 => {
                c.store(code, Relaxed);
                Some(n)
            }
            x if x == code => Some(n),
            _ => None,
        });
        match counted {
            Some(n) => bump(n, 1),
            None => bump(&self.classes[usize::from(status / 100).clamp(1, 5)], 1),
        }
        self.time(took);
    }

    fn time(&self, took: Duration) {
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        match BUCKETS_US.iter().position(|&b| us <= b) {
            Some(i) => bump(&self.buckets[i], 1),
            None => bump(&self.over, 1),
        }
        bump(&self.sum_us, us);
    }
}

/// Counters per chunk of series.
const CELL_CHUNK: usize = 4096;

/// One core's slots and series counters.
pub struct CoreStore {
    chunks: [OnceLock<Box<[Slot]>>; CHUNKS],
    cells: [OnceLock<Box<[AtomicU64]>>; CHUNKS],
}

impl CoreStore {
    fn new() -> CoreStore {
        CoreStore {
            chunks: std::array::from_fn(|_| OnceLock::new()),
            cells: std::array::from_fn(|_| OnceLock::new()),
        }
    }

    fn cell(&self, id: u32) -> Option<&AtomicU64> {
        let i = id as usize;
        self.cells
            .get(i / CELL_CHUNK)?
            .get()
            .map(|c| &c[i % CELL_CHUNK])
    }

    fn slot(&self, slot: u32) -> Option<&Slot> {
        let s = slot as usize;
        self.chunks.get(s / CHUNK)?.get().map(|c| &c[s % CHUNK])
    }

    /// Counts one request of the route in `slot` (from [`Registry::slot`]).
    /// `denied`: the refusal's reason index, when a stage refused it.
    pub fn record(&self, slot: u32, status: u16, took: Duration, denied: Option<usize>) {
        if let Some(s) = self.slot(slot) {
            s.record(status, took, denied);
        }
    }
}

/// The route names that have slots, and every core's store.
pub struct Registry {
    cores: Box<[CoreStore]>,
    names: Mutex<Names>,
    series: Mutex<Names>,
}

#[derive(Default)]
struct Names {
    list: Vec<Arc<str>>,
    index: FxHashMap<Arc<str>, u32>,
}

impl Names {
    /// The number of `name`, handed out on first sight and kept; `grow(c)`
    /// runs before the first number of chunk `c` (of `chunk` numbers) is
    /// handed out. `u32::MAX` once `CHUNKS` chunks are used.
    fn number(&mut self, name: &str, chunk: usize, grow: impl Fn(usize)) -> u32 {
        if let Some(&n) = self.index.get(name) {
            return n;
        }
        let n = self.list.len();
        if n >= chunk * CHUNKS {
            return u32::MAX;
        }
        if n % chunk == 0 {
            grow(n / chunk);
        }
        let name: Arc<str> = name.into();
        self.list.push(name.clone());
        self.index.insert(name, n as u32);
        n as u32
    }
}

/// The names, whatever a panicking holder left (they are only ever appended).
fn lock(m: &Mutex<Names>) -> std::sync::MutexGuard<'_, Names> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What a slot counts: a route's requests, or an upstream's exchanges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotKind {
    Route,
    Upstream,
}

/// Upstream slots are named with this prefix (no route name holds a NUL).
const UPSTREAM_PREFIX: &str = "\0upstream:";

/// One route's counters, summed over the cores.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct RouteTotals {
    pub route: Arc<str>,
    /// (code label, requests): exact codes and overflow classes (`"5xx"`).
    pub codes: Vec<(String, u64)>,
    /// Per bucket of [`BUCKETS`], then the count over the last bound.
    pub buckets: Vec<u64>,
    pub sum_seconds: f64,
    pub count: u64,
    /// Refusals by reason index (only those that happened).
    pub denied: Vec<(usize, u64)>,
}

impl Registry {
    pub fn new(cores: usize) -> Arc<Registry> {
        let r = Registry {
            cores: (0..cores.max(1)).map(|_| CoreStore::new()).collect(),
            names: Mutex::new(Names::default()),
            series: Mutex::new(Names::default()),
        };
        r.slot(UNMATCHED);
        Arc::new(r)
    }

    /// Core `core`'s store.
    pub fn core(&self, core: usize) -> &CoreStore {
        &self.cores[core % self.cores.len()]
    }

    /// The slot of route `name`, handed out on first sight and kept for the
    /// life of the process. `u32::MAX` once every chunk is used (nothing is
    /// counted for that route).
    pub fn slot(&self, name: &str) -> u32 {
        self.slot_of(SlotKind::Route, name)
    }

    /// The slot of a route or of an upstream named `name`.
    pub fn slot_of(&self, kind: SlotKind, name: &str) -> u32 {
        let prefixed;
        let name = match kind {
            SlotKind::Route => name,
            SlotKind::Upstream => {
                prefixed = format!("{UPSTREAM_PREFIX}{name}");
                &prefixed
            }
        };
        let mut names = lock(&self.names);
        names.number(name, CHUNK, |chunk| {
            for c in self.cores.iter() {
                c.chunks[chunk].get_or_init(|| (0..CHUNK).map(|_| Slot::default()).collect());
            }
        })
    }

    /// The counter of the series `series` (`family{labels}`, labels in the
    /// text format's syntax), handed out on first sight; `u32::MAX` when
    /// every chunk is used.
    pub fn series(&self, series: &str) -> u32 {
        let mut names = lock(&self.series);
        names.number(series, CELL_CHUNK, |chunk| {
            for c in self.cores.iter() {
                c.cells[chunk].get_or_init(|| (0..CELL_CHUNK).map(|_| AtomicU64::new(0)).collect());
            }
        })
    }

    /// The largest value any core holds for series `series` (0 when none has it).
    pub fn series_max(&self, series: &str) -> u64 {
        let id = lock(&self.series).index.get(series).copied();
        id.map_or(0, |id| self.cell_values(id).max().unwrap_or(0))
    }

    /// Every core's value of series counter `id`.
    fn cell_values(&self, id: u32) -> impl Iterator<Item = u64> + '_ {
        self.cores
            .iter()
            .filter_map(move |c| c.cell(id))
            .map(|c| c.load(Relaxed))
    }

    /// Every series counter, summed over the cores, sorted by series.
    pub fn series_totals(&self) -> Vec<(Arc<str>, u64)> {
        let list = lock(&self.series).list.clone();
        let mut out: Vec<(Arc<str>, u64)> = list
            .into_iter()
            .enumerate()
            .map(|(i, name)| {
                let n = self.cell_values(i as u32).fold(0u64, u64::wrapping_add);
                (name, n)
            })
            .collect();
        out.sort();
        out
    }

    /// Every route's totals (in the order they were first seen).
    pub fn routes(&self) -> Vec<RouteTotals> {
        self.slots(SlotKind::Route)
    }

    /// Every upstream's totals (`route` holds the upstream's name; `codes`
    /// the statuses it answered, 502/504 for the exchanges that failed).
    pub fn upstreams(&self) -> Vec<RouteTotals> {
        self.slots(SlotKind::Upstream)
    }

    fn slots(&self, kind: SlotKind) -> Vec<RouteTotals> {
        let list = lock(&self.names).list.clone();
        list.into_iter()
            .enumerate()
            .filter_map(|(i, name)| {
                let upstream = name.strip_prefix(UPSTREAM_PREFIX);
                match (kind, upstream) {
                    (SlotKind::Route, None) => Some(self.totals(i as u32, name)),
                    (SlotKind::Upstream, Some(u)) => Some(self.totals(i as u32, u.into())),
                    _ => None,
                }
            })
            .collect()
    }

    fn totals(&self, slot: u32, route: Arc<str>) -> RouteTotals {
        let mut codes: Vec<(String, u64)> = Vec::new();
        let mut add = |label: String, n: u64| {
            if n == 0 {
                return;
            }
            match codes.iter_mut().find(|(l, _)| *l == label) {
                Some(e) => e.1 += n,
                None => codes.push((label, n)),
            }
        };
        let mut buckets = vec![0u64; BUCKETS.len() + 1];
        let mut sum_us = 0u64;
        let mut denied = [0u64; REASONS];
        for core in self.cores.iter() {
            let Some(s) = core.slot(slot) else { continue };
            for (d, n) in denied.iter_mut().zip(&s.denied) {
                *d += n.load(Relaxed);
            }
            for (c, n) in &s.codes {
                let code = c.load(Relaxed);
                if code != 0 {
                    add(code.to_string(), n.load(Relaxed));
                }
            }
            for (class, n) in s.classes.iter().enumerate() {
                let label = if class == 0 {
                    "000".to_string()
                } else {
                    format!("{class}xx")
                };
                add(label, n.load(Relaxed));
            }
            for (b, n) in buckets.iter_mut().zip(s.buckets.iter().chain([&s.over])) {
                *b += n.load(Relaxed);
            }
            sum_us = sum_us.wrapping_add(s.sum_us.load(Relaxed));
        }
        codes.sort();
        RouteTotals {
            route,
            count: buckets.iter().sum(),
            codes,
            buckets,
            sum_seconds: sum_us as f64 / 1e6,
            denied: denied
                .iter()
                .copied()
                .enumerate()
                .filter(|d| d.1 > 0)
                .collect(),
        }
    }
}

/// `s` as a label value of the text format (`\\`, `\"` and newlines escaped).
pub fn label_value(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains(['\\', '"', '\n']) {
        return std::borrow::Cow::Borrowed(s);
    }
    std::borrow::Cow::Owned(
        s.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n"),
    )
}

/// A series' text name: `family{a="x",b="y"}`, label values escaped.
pub fn series_name(family: &str, labels: &[(&str, &str)]) -> String {
    let mut s = String::with_capacity(64);
    s.push_str(family);
    s.push('{');
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(k);
        s.push_str("=\"");
        s.push_str(&label_value(v));
        s.push('"');
    }
    s.push('}');
    s
}

/// The internal series a core keeps a target's resting deadline in (Unix
/// seconds; 0: not resting): read by the scrape, never printed.
pub const TARGET_REST: &str = "\0target";

/// A core's way to the series counters: its store and a cache, by the hash
/// of family and labels, of the counters it has met (core-local: no lock and
/// no formatting once a series is known).
pub struct CoreCounters {
    registry: Arc<Registry>,
    core: usize,
    known: std::cell::RefCell<FxHashMap<u64, u32>>,
}

impl CoreCounters {
    pub fn new(registry: Arc<Registry>, core: usize) -> CoreCounters {
        CoreCounters {
            registry,
            core,
            known: Default::default(),
        }
    }

    fn key(family: &str, labels: &[(&str, &str)]) -> u64 {
        std::hash::BuildHasher::hash_one(&rustc_hash::FxBuildHasher, (family, labels))
    }

    /// This core's counter of a series, handed out the first time it meets it.
    fn cell(&self, family: &str, labels: &[(&str, &str)]) -> Option<&AtomicU64> {
        let id = *self
            .known
            .borrow_mut()
            .entry(Self::key(family, labels))
            .or_insert_with(|| self.registry.series(&series_name(family, labels)));
        self.registry.core(self.core).cell(id)
    }

    /// Adds one to a series.
    pub fn bump(&self, family: &str, labels: &[(&str, &str)]) {
        if let Some(c) = self.cell(family, labels) {
            bump(c, 1);
        }
    }

    /// Sets the value of a series this core owns (a gauge).
    pub fn set(&self, family: &str, labels: &[(&str, &str)], value: u64) {
        if let Some(c) = self.cell(family, labels) {
            c.store(value, Relaxed);
        }
    }

    /// Whether this core has met the series.
    pub fn has(&self, family: &str, labels: &[(&str, &str)]) -> bool {
        self.known.borrow().contains_key(&Self::key(family, labels))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cores_sum_and_slots_outlive_reloads() {
        let r = Registry::new(2);
        let a = r.slot("orders");
        assert_eq!(r.slot("orders"), a, "the same name keeps its slot");
        r.core(0).record(a, 200, Duration::from_micros(300), None);
        r.core(1).record(a, 200, Duration::from_millis(3), None);
        r.core(1).record(a, 404, Duration::from_secs(20), Some(3));
        let t = r.routes();
        assert_eq!(t[0].route.as_ref(), UNMATCHED);
        let o = &t[1];
        assert_eq!(o.codes, vec![("200".into(), 2), ("404".into(), 1)]);
        assert_eq!(o.count, 3);
        assert_eq!(o.buckets[0], 1); // ≤ 0.5 ms
        assert_eq!(o.buckets[3], 1); // ≤ 5 ms
        assert_eq!(o.buckets[BUCKETS.len()], 1); // over 10 s
        assert!((o.sum_seconds - 20.0033).abs() < 1e-9);
        assert_eq!(o.denied, vec![(3, 1)]);
    }

    #[test]
    fn requests_without_a_response_count_as_000_and_take_no_code_entry() {
        let r = Registry::new(1);
        let s = r.slot("r");
        r.core(0).record(s, 0, Duration::ZERO, None);
        r.core(0).record(s, 200, Duration::ZERO, None);
        let t = &r.routes()[1];
        assert_eq!(t.codes, vec![("000".into(), 1), ("200".into(), 1)]);
        assert_eq!(t.count, 2);
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label_value("plain"), "plain");
        assert_eq!(label_value("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn codes_past_the_table_count_by_class() {
        let r = Registry::new(1);
        let s = r.slot("r");
        for code in 500..(500 + CODES as u16 + 3) {
            r.core(0).record(s, code, Duration::ZERO, None);
        }
        let t = &r.routes()[1];
        assert_eq!(t.codes.len(), CODES + 1);
        assert!(t.codes.contains(&("5xx".into(), 3)), "{:?}", t.codes);
        assert_eq!(t.count, CODES as u64 + 3);
    }

    #[test]
    fn series_counters_sum_over_cores() {
        let r = Registry::new(2);
        let (a, b) = (
            CoreCounters::new(r.clone(), 0),
            CoreCounters::new(r.clone(), 1),
        );
        a.bump("x_total", &[("rule", "1")]);
        b.bump("x_total", &[("rule", "1")]);
        b.bump("x_total", &[("rule", "1")]);
        b.bump("x_total", &[("rule", "2")]);
        assert!(b.has("x_total", &[("rule", "2")]) && !a.has("x_total", &[("rule", "2")]));
        let odd = CoreCounters::new(r.clone(), 0);
        odd.bump("y_total", &[("waf", "a\"b")]);
        assert_eq!(
            r.series_totals(),
            vec![
                ("x_total{rule=\"1\"}".into(), 3),
                ("x_total{rule=\"2\"}".into(), 1),
                ("y_total{waf=\"a\\\"b\"}".into(), 1),
            ]
        );
    }

    #[test]
    fn storage_grows_by_chunks() {
        let r = Registry::new(2);
        for i in 0..(CHUNK + 10) {
            let s = r.slot(&format!("route-{i}"));
            r.core(1).record(s, 204, Duration::ZERO, None);
        }
        assert!(r.routes().iter().skip(1).all(|t| t.count == 1));
    }
}
