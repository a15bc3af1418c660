//! A fixed-size map from stream position to cache slot.
//!
//! Heavy-hitter eviction leaves the retained positions scattered, so a
//! decode step needs "where is position j?" for each of its O(W + log T)
//! candidates. An open-addressing table (linear probing, backward-shift
//! deletion) sized at creation answers in O(1) expected time and never
//! allocates after construction, which a `BTreeMap` could not promise.
//!
//! Both mutations can be reversed exactly, table layout included, so that
//! [`KvCache::undo_append`](crate::KvCache::undo_append) restores the cache
//! bit for bit: an insert reports the entry it took ([`PositionIndex::vacate`]
//! frees it), and a remove records the entries its backward shift moved
//! ([`PositionIndex::unremove`] shifts them back).

use alloc::vec::Vec;

use crate::error::AttentionError;

/// Marks an empty table entry.
const EMPTY: usize = usize::MAX;

/// Position → slot for at most `capacity` live entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PositionIndex {
    /// `(position, slot)`; `position == EMPTY` for a free entry. The table
    /// is at least twice the capacity, so probes stay short.
    entries: Vec<(usize, usize)>,
    mask: usize,
    /// `64 - log2(table size)`: the hash keeps the product's top bits.
    shift: u32,
}

impl PositionIndex {
    pub(crate) fn new(capacity: usize) -> Result<Self, AttentionError> {
        let size = capacity
            .checked_mul(2)
            .and_then(usize::checked_next_power_of_two)
            .ok_or(AttentionError::OutOfMemory { bytes: usize::MAX })?;
        Ok(Self {
            entries: crate::cache::zeroed(size, (EMPTY, 0))?,
            mask: size - 1,
            shift: 64 - size.trailing_zeros(),
        })
    }

    /// Fibonacci hashing: consecutive positions spread over the table.
    fn home(&self, position: usize) -> usize {
        ((position as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> self.shift) as usize
    }

    pub(crate) fn get(&self, position: usize) -> Option<usize> {
        let mut i = self.home(position);
        loop {
            let (p, slot) = self.entries[i];
            if p == position {
                return Some(slot);
            }
            if p == EMPTY {
                return None;
            }
            i = (i + 1) & self.mask;
        }
    }

    /// Inserts or updates and returns the table entry written; the caller
    /// keeps at most `capacity` live entries. When `position` was absent,
    /// [`vacate`](Self::vacate) of the returned entry undoes this exactly.
    pub(crate) fn insert(&mut self, position: usize, slot: usize) -> usize {
        let mut i = self.home(position);
        while self.entries[i].0 != EMPTY && self.entries[i].0 != position {
            i = (i + 1) & self.mask;
        }
        self.entries[i] = (position, slot);
        i
    }

    /// Undoes the latest [`insert`](Self::insert) of an absent position,
    /// given the entry it returned. Exact because an insert only fills the
    /// first free entry of its probe run: no other entry moved, and with it
    /// free again no entry's probe path is broken.
    pub(crate) fn vacate(&mut self, entry: usize) {
        self.entries[entry] = (EMPTY, 0);
    }

    /// Removes `position` if present, writing to `moved` the table entries
    /// involved: where it was, then each entry the backward shift moved
    /// (every one into the previous place in the list); empty if it was
    /// absent. At most one entry per live position, so `moved` needs no more
    /// than `capacity` elements and, reserved that large, never grows.
    pub(crate) fn remove(&mut self, position: usize, moved: &mut Vec<usize>) {
        moved.clear();
        let mut i = self.home(position);
        loop {
            match self.entries[i].0 {
                EMPTY => return,
                p if p == position => break,
                _ => i = (i + 1) & self.mask,
            }
        }
        moved.push(i);
        // Backward-shift: pull later entries of the probe run into the hole
        // when the hole lies on their way from their home slot.
        let mut hole = i;
        let mut j = i;
        loop {
            j = (j + 1) & self.mask;
            let (p, _) = self.entries[j];
            if p == EMPTY {
                break;
            }
            let home = self.home(p);
            let distance_to_hole = hole.wrapping_sub(home) & self.mask;
            let distance_to_j = j.wrapping_sub(home) & self.mask;
            if distance_to_hole < distance_to_j {
                self.entries[hole] = self.entries[j];
                moved.push(j);
                hole = j;
            }
        }
        self.entries[hole] = (EMPTY, 0);
    }

    /// Undoes the latest [`remove`](Self::remove) of `position` (which held
    /// `slot`), given what it wrote to `moved`, provided the table has not
    /// changed since (or only by changes already undone). Every shifted
    /// entry goes back one step along the list, last first, and `position`
    /// returns to its old entry, so the table is bit for bit as before.
    pub(crate) fn unremove(&mut self, position: usize, slot: usize, moved: &[usize]) {
        let Some(&first) = moved.first() else {
            return;
        };
        for pair in moved.windows(2).rev() {
            self.entries[pair[1]] = self.entries[pair[0]];
        }
        self.entries[first] = (position, slot);
    }

    pub(crate) fn clear(&mut self) {
        self.entries.fill((EMPTY, 0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against a plain association list, through inserts and removes that
    /// wrap around the table.
    #[test]
    fn behaves_like_a_map() {
        let mut index = PositionIndex::new(8).unwrap();
        let mut model: Vec<(usize, usize)> = Vec::new();
        let mut moved = Vec::new();
        let mut x = 12_345u64;
        for step in 0..5_000usize {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let position = (x % 40) as usize;
            let present = model.iter().position(|&(p, _)| p == position);
            if let Some(at) = present {
                if step % 3 == 0 {
                    index.remove(position, &mut moved);
                    model.swap_remove(at);
                }
            } else if model.len() < 8 {
                index.insert(position, step);
                model.push((position, step));
            }
            for p in 0..40 {
                let want = model.iter().find(|&&(q, _)| q == p).map(|&(_, s)| s);
                assert_eq!(index.get(p), want, "step {step} position {p}");
            }
        }
    }

    /// Insert + vacate and remove + unremove leave the table bit for bit
    /// as it was, through long probe runs that wrap around the table.
    #[test]
    fn insert_and_remove_reverse_exactly() {
        let capacity = 8;
        let mut index = PositionIndex::new(capacity).unwrap();
        let mut live: Vec<usize> = Vec::new();
        let mut moved = Vec::with_capacity(capacity);
        let mut x = 99u64;
        let mut shifted = 0;
        for step in 0..20_000usize {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let before = index.clone();
            if live.len() == capacity || (!live.is_empty() && x.is_multiple_of(2)) {
                let position = live.swap_remove((x >> 8) as usize % live.len());
                let slot = index.get(position).unwrap();
                index.remove(position, &mut moved);
                assert!(moved.len() <= capacity);
                shifted += moved.len().saturating_sub(1);
                let after = index.clone();
                index.unremove(position, slot, &moved);
                assert_eq!(index, before, "step {step}: unremove {position}");
                index = after;
            } else {
                // Positions that collide often: a few multiples of a stride.
                let position = ((x >> 8) % 64) as usize * 3;
                if live.contains(&position) {
                    continue;
                }
                let entry = index.insert(position, step);
                let after = index.clone();
                index.vacate(entry);
                assert_eq!(index, before, "step {step}: vacate {position}");
                index = after;
                live.push(position);
            }
        }
        assert!(shifted > 1_000, "backward shifts were exercised: {shifted}");
    }
}
