//! Bounded per-source state shared by the detectors: a least-recently-seen table and a
//! compact time window.
//!
//! Memory per tracked source (64-bit targets): one hash-map entry (key + `u32` slot index,
//! plus one control byte, at a load factor of at most 7/8), one slot (key, last-seen time,
//! two `u32` links, the detector's value), and whatever heap the value owns. The detectors
//! document their value sizes; the `detect` bench measures the total with a counting
//! allocator.

use std::collections::HashMap;
use std::hash::Hash;

use crate::Timestamp;

const NIL: u32 = u32::MAX;

struct Slot<K, V> {
    key: K,
    last_seen: Timestamp,
    /// Towards the most recently seen end.
    prev: u32,
    /// Towards the least recently seen end.
    next: u32,
    value: V,
}

/// A map from source to state with a hard capacity: inserting past it evicts the source
/// seen least recently, so a flood of unique (possibly spoofed) sources costs bounded memory.
///
/// The hash map uses ahash with random per-process keys: keys are attacker-chosen
/// addresses, so a fixed-key hasher (FxHash) would let a spoofer build colliding keys, and
/// ahash keeps that resistance at a fraction of SipHash's cost.
pub(crate) struct SourceTable<K, V> {
    index: HashMap<K, u32, ahash::RandomState>,
    slots: Vec<Slot<K, V>>,
    head: u32,
    tail: u32,
    capacity: usize,
    evicted: u64,
}

impl<K, V> std::fmt::Debug for SourceTable<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SourceTable({} of {})", self.slots.len(), self.capacity)
    }
}

impl<K: Hash + Eq + Copy, V> SourceTable<K, V> {
    /// An empty table holding at most `capacity` sources (at least one).
    pub(crate) fn new(capacity: usize) -> Self {
        SourceTable {
            index: HashMap::default(),
            slots: Vec::new(),
            head: NIL,
            tail: NIL,
            capacity: capacity.clamp(1, NIL as usize - 1),
            evicted: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    /// Sources evicted because the table was full, since creation.
    pub(crate) fn evicted(&self) -> u64 {
        self.evicted
    }

    /// The state for `key`, marked as seen at `now`, created by `make` if absent.
    pub(crate) fn touch(&mut self, key: K, now: Timestamp, make: impl FnOnce() -> V) -> &mut V {
        let i = match self.index.get(&key) {
            Some(&i) => {
                if i != self.head {
                    self.unlink(i);
                    self.push_front(i);
                }
                i
            }
            None => {
                if self.slots.len() >= self.capacity && self.tail != NIL {
                    self.remove_at(self.tail);
                    self.evicted += 1;
                }
                let i = self.slots.len() as u32;
                self.slots.push(Slot {
                    key,
                    last_seen: now,
                    prev: NIL,
                    next: NIL,
                    value: make(),
                });
                self.index.insert(key, i);
                self.push_front(i);
                i
            }
        };
        let slot = &mut self.slots[i as usize];
        slot.last_seen = slot.last_seen.max(now);
        &mut slot.value
    }

    /// The state for `key`, if tracked (read-only).
    pub(crate) fn get(&self, key: &K) -> Option<&V> {
        let i = *self.index.get(key)?;
        self.slots.get(i as usize).map(|s| &s.value)
    }

    /// The state for `key`, if tracked, without marking it seen.
    pub(crate) fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        let i = *self.index.get(key)?;
        self.slots.get_mut(i as usize).map(|s| &mut s.value)
    }

    /// Forgets `key`.
    pub(crate) fn remove(&mut self, key: &K) -> Option<V> {
        let i = *self.index.get(key)?;
        Some(self.remove_at(i))
    }

    /// When the least recently seen source was last seen.
    pub(crate) fn oldest(&self) -> Option<Timestamp> {
        self.slots.get(self.tail as usize).map(|s| s.last_seen)
    }

    /// Forgets every source last seen at or before `cutoff`, least recent first. With
    /// out-of-order timestamps the order is by observation, so a few stale sources may stay
    /// until they reach the tail; the capacity still holds.
    pub(crate) fn expire(&mut self, cutoff: Timestamp) {
        while let Some(slot) = self.slots.get(self.tail as usize) {
            if slot.last_seen > cutoff {
                break;
            }
            self.remove_at(self.tail);
        }
    }

    /// Removes every entry for which `keep` returns false.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&K, &mut V) -> bool) {
        let mut i = 0;
        while i < self.slots.len() {
            let slot = &mut self.slots[i];
            if keep(&slot.key, &mut slot.value) {
                i += 1;
            } else {
                // The last slot moves into `i`: look at `i` again.
                self.remove_at(i as u32);
            }
        }
    }

    /// Every tracked source and its state, in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.slots.iter().map(|s| (&s.key, &s.value))
    }

    fn push_front(&mut self, i: u32) {
        let old = self.head;
        {
            let s = &mut self.slots[i as usize];
            s.prev = NIL;
            s.next = old;
        }
        if let Some(h) = self.slots.get_mut(old as usize) {
            h.prev = i;
        } else {
            self.tail = i;
        }
        self.head = i;
    }

    fn unlink(&mut self, i: u32) {
        let (prev, next) = {
            let s = &self.slots[i as usize];
            (s.prev, s.next)
        };
        match self.slots.get_mut(prev as usize) {
            Some(p) => p.next = next,
            None => self.head = next,
        }
        match self.slots.get_mut(next as usize) {
            Some(n) => n.prev = prev,
            None => self.tail = prev,
        }
    }

    fn remove_at(&mut self, i: u32) -> V {
        self.unlink(i);
        let last = (self.slots.len() - 1) as u32;
        let slot = self.slots.swap_remove(i as usize);
        self.index.remove(&slot.key);
        if i != last {
            // The former last slot now lives at `i`: repoint its neighbours and its index.
            let (prev, next, key) = {
                let s = &self.slots[i as usize];
                (s.prev, s.next, s.key)
            };
            match self.slots.get_mut(prev as usize) {
                Some(p) => p.next = i,
                None => self.head = i,
            }
            match self.slots.get_mut(next as usize) {
                Some(n) => n.prev = i,
                None => self.tail = i,
            }
            self.index.insert(key, i);
        }
        slot.value
    }
}

/// Timestamps in a window are kept as `u32` milliseconds after a per-window base, so an
/// entry costs 8 bytes; the base moves forward when offsets would overflow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) key: u32,
    at: u32,
}

/// A sliding window of keyed events: an event is inside the window at `now` when it
/// happened less than `window` before `now` (an event exactly `window` old is outside).
#[derive(Debug, Default)]
pub(crate) struct Window {
    base: u64,
    entries: Vec<Entry>,
}

/// Offsets stay below this so that rebasing never needs to look at the sign.
const MAX_OFFSET: u64 = 1 << 31;

impl Window {
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub(crate) fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }

    /// When entry `e` happened.
    pub(crate) fn time_of(&self, e: &Entry) -> Timestamp {
        Timestamp::from_millis(self.base.saturating_add(u64::from(e.at)))
    }

    /// The earliest entry's time.
    pub(crate) fn first_time(&self) -> Option<Timestamp> {
        self.entries.iter().map(|e| self.time_of(e)).min()
    }

    /// Drops entries at least `window_ms` older than `now`, and rebases if needed.
    pub(crate) fn expire(&mut self, now: Timestamp, window_ms: u64) {
        let now = now.as_millis();
        if self.entries.is_empty() {
            self.base = now;
            return;
        }
        let base = self.base;
        self.entries
            .retain(|e| now.saturating_sub(base.saturating_add(u64::from(e.at))) < window_ms);
        if self.entries.is_empty() {
            self.base = now;
        } else if now.saturating_sub(self.base) >= MAX_OFFSET {
            // Every entry left is newer than `now - window`, which becomes the new base.
            let new_base = now.saturating_sub(window_ms);
            for e in &mut self.entries {
                let abs = base.saturating_add(u64::from(e.at));
                e.at = u32::try_from(abs.saturating_sub(new_base)).unwrap_or(u32::MAX);
            }
            self.base = new_base;
        }
    }

    fn offset(&self, now: Timestamp) -> u32 {
        u32::try_from(now.as_millis().saturating_sub(self.base)).unwrap_or(u32::MAX)
    }

    /// Records `key` at `now` (call [`Window::expire`] first). Returns whether the key was
    /// new; a key already present only has its time refreshed.
    pub(crate) fn insert_distinct(&mut self, now: Timestamp, key: u32) -> bool {
        let at = self.offset(now);
        if let Some(e) = self.entries.iter_mut().find(|e| e.key == key) {
            e.at = e.at.max(at);
            false
        } else {
            self.entries.push(Entry { key, at });
            true
        }
    }

    /// Records an event at `now`, keeping at most `cap` of the most recent ones.
    pub(crate) fn push_capped(&mut self, now: Timestamp, key: u32, cap: usize) {
        let at = self.offset(now);
        if self.entries.len() >= cap && !self.entries.is_empty() {
            self.entries.remove(0);
        }
        self.entries.push(Entry { key, at });
    }

    /// Heap bytes owned.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<Entry>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: u64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    #[test]
    fn evicts_least_recently_seen() {
        let mut table = SourceTable::new(3);
        for k in 0..3u32 {
            *table.touch(k, t(u64::from(k)), || 0) += 1;
        }
        table.touch(0, t(10), || 0); // 1 is now the least recent
        table.touch(7, t(11), || 0);
        assert_eq!(table.len(), 3);
        assert!(table.get_mut(&1).is_none());
        assert_eq!(table.evicted(), 1);
        assert_eq!(table.oldest(), Some(t(2)));
        table.expire(t(10));
        let mut keys: Vec<u32> = table.iter().map(|(k, _)| *k).collect();
        keys.sort();
        assert_eq!(keys, vec![7]);
    }

    #[test]
    fn links_survive_removal_from_the_middle() {
        let mut table = SourceTable::new(100);
        for k in 0..10u32 {
            table.touch(k, t(u64::from(k)), || k);
        }
        table.retain(|k, _| k % 2 == 0);
        assert_eq!(table.len(), 5);
        assert_eq!(table.remove(&4), Some(4));
        table.expire(t(6));
        let mut keys: Vec<u32> = table.iter().map(|(k, _)| *k).collect();
        keys.sort();
        assert_eq!(keys, vec![8]);
        table.expire(t(100));
        assert_eq!(table.len(), 0);
        assert_eq!(table.oldest(), None);
    }

    #[test]
    fn window_boundary_is_exclusive() {
        let mut w = Window::default();
        w.expire(t(1_000), 60_000);
        assert!(w.insert_distinct(t(1_000), 22));
        w.expire(t(60_999), 60_000);
        assert_eq!(w.len(), 1);
        w.expire(t(61_000), 60_000);
        assert_eq!(w.len(), 0);
    }

    #[test]
    fn window_rebases_over_long_runs() {
        let mut w = Window::default();
        let window = 3_600_000;
        let mut now = 5u64;
        for i in 0..2_000u64 {
            w.expire(t(now), window);
            w.insert_distinct(t(now), (i % 7) as u32);
            now += 1_800_000; // half an hour: far past u32 ms after a few weeks
        }
        assert!(w.len() <= 2);
        for e in w.entries() {
            assert!(t(now) - w.time_of(e) <= std::time::Duration::from_millis(window + 1_800_000));
        }
    }
}
