//! A fixed-size map from stream position to cache slot.
//!
//! Heavy-hitter eviction leaves the retained positions scattered, so a
//! decode step needs "where is position j?" for each of its O(W + log T)
//! candidates. An open-addressing table (linear probing, backward-shift
//! deletion) sized at creation answers in O(1) expected time and never
//! allocates after construction, which a `BTreeMap` could not promise.

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

    /// Inserts or updates; the caller keeps at most `capacity` live entries.
    pub(crate) fn insert(&mut self, position: usize, slot: usize) {
        let mut i = self.home(position);
        while self.entries[i].0 != EMPTY && self.entries[i].0 != position {
            i = (i + 1) & self.mask;
        }
        self.entries[i] = (position, slot);
    }

    pub(crate) fn remove(&mut self, position: usize) {
        let mut i = self.home(position);
        loop {
            match self.entries[i].0 {
                EMPTY => return,
                p if p == position => break,
                _ => i = (i + 1) & self.mask,
            }
        }
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
                hole = j;
            }
        }
        self.entries[hole] = (EMPTY, 0);
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
        let mut x = 12_345u64;
        for step in 0..5_000usize {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let position = (x % 40) as usize;
            let present = model.iter().position(|&(p, _)| p == position);
            if let Some(at) = present {
                if step % 3 == 0 {
                    index.remove(position);
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
}
