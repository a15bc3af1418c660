//! Cache tests: block sums, storage types, each eviction policy's
//! retention rule, and typed errors that leave the cache unchanged.

use super::*;
use crate::error::Operand;
use alloc::string::ToString;
use alloc::vec;

mod no_alloc;
mod properties;

const LAYOUT: CacheLayout = CacheLayout {
    kv_heads: 2,
    head_dim: 1,
    block_size: 2,
    dtype: CacheDtype::F32,
    eviction: Eviction::None,
};

fn row(r: Row<'_>) -> Vec<f32> {
    let mut out = vec![0.0; r.len()];
    r.to_f32(&mut out);
    out
}

fn with(eviction: Eviction) -> CacheLayout {
    CacheLayout { eviction, ..LAYOUT }
}

/// Appends tokens whose keys and values encode their position.
fn fill(cache: &mut KvCache, positions: core::ops::Range<usize>) {
    for p in positions {
        let x = p as f32;
        cache.append(&[x, 10.0 * x], &[-x, -10.0 * x]).unwrap();
    }
}

#[test]
fn block_sums_track_appends() {
    let mut c = KvCache::new(3, LAYOUT).unwrap();
    c.append(&[1.0, 10.0], &[2.0, 20.0]).unwrap();
    c.append(&[3.0, 30.0], &[4.0, 40.0]).unwrap();
    c.append(&[5.0, 50.0], &[6.0, 60.0]).unwrap();
    let block0 = c.landmark(0).unwrap();
    assert_eq!(
        (block0.key_sum, block0.value_sum, block0.count),
        (&[4.0, 40.0][..], &[6.0, 60.0][..], 2)
    );
    let block1 = c.landmark(1).unwrap();
    assert_eq!((block1.key_sum, block1.count), (&[5.0, 50.0][..], 1));
    assert!(c.landmark(2).is_none());
    assert_eq!(row(c.key(2, 1)), [50.0]);
    assert_eq!(row(c.value(1, 0)), [4.0]);
    assert_eq!(
        (c.len(), c.retained(), c.slot(2), c.slot(3)),
        (3, 3, Some(2), None)
    );
}

#[test]
fn full_cache_without_eviction_is_a_typed_error_and_unchanged() {
    let mut c = KvCache::new(1, LAYOUT).unwrap();
    c.append(&[1.0, 2.0], &[3.0, 4.0]).unwrap();
    let before = c.clone();
    assert!(!c.has_room());
    assert_eq!(
        c.append(&[1.0, 2.0], &[3.0, 4.0]),
        Err(AttentionError::CacheFull { capacity: 1 })
    );
    assert_eq!(c, before);
}

#[test]
fn wrong_token_length_is_rejected() {
    let mut c = KvCache::new(2, LAYOUT).unwrap();
    let err = c.append(&[1.0], &[3.0, 4.0]).unwrap_err();
    assert!(matches!(
        err,
        AttentionError::Shape(ShapeError::LengthMismatch {
            expected: 2,
            actual: 1,
            ..
        })
    ));
    assert!(c.is_empty());
}

#[test]
fn bad_construction_is_rejected() {
    assert_eq!(KvCache::new(0, LAYOUT), Err(AttentionError::ZeroCapacity));
    let zero_block = CacheLayout {
        block_size: 0,
        ..LAYOUT
    };
    assert_eq!(
        KvCache::new(4, zero_block),
        Err(AttentionError::Config(ConfigError::ZeroBlockSize))
    );
    assert!(matches!(
        KvCache::new(usize::MAX, LAYOUT),
        Err(AttentionError::Shape(ShapeError::Overflow { .. }))
    ));
    assert_eq!(
        KvCache::new(4, with(Eviction::HeavyHitter { recent: 4 })),
        Err(AttentionError::RecentNotBelowCapacity {
            recent: 4,
            capacity: 4
        })
    );
    assert_eq!(
        KvCache::new(4, with(Eviction::HeavyHitter { recent: 0 })),
        Err(AttentionError::Config(ConfigError::ZeroRecent))
    );
}

#[test]
fn f16_storage_rounds_and_sums_what_it_stores() {
    let layout = CacheLayout {
        dtype: CacheDtype::F16,
        ..LAYOUT
    };
    assert_eq!(layout.bytes_per_token(), 2 * 2 * 2);
    assert_eq!(LAYOUT.bytes_per_token(), 2 * 2 * 4);
    let mut c = KvCache::new(4, layout).unwrap();
    // 1 + 2^-12 is not representable in f16 (10 mantissa bits): rounds to 1.
    let x = 1.0 + 1.0 / 4096.0;
    c.append(&[x, 3.0], &[x, -3.0]).unwrap();
    c.append(&[x, 3.0], &[x, -3.0]).unwrap();
    assert!(matches!(c.keys(), Row::F16(_)));
    assert_eq!(row(c.key(0, 0)), [1.0]);
    assert_eq!(c.landmark(0).unwrap().key_sum, &[2.0, 6.0]);
}

/// A backend's narrowing replaces the portable one for the stored rows and
/// the block sums alike, and is not used for f32 caches.
#[test]
fn append_with_narrows_rows_and_sums_through_the_given_function() {
    fn halve_then_narrow(src: &[f32], dst: &mut [f16], stored: &mut [f32]) {
        for ((s, d), w) in src.iter().zip(dst).zip(stored) {
            *d = f16_conv::narrow(s / 2.0);
            *w = f16_conv::widen(*d);
        }
    }
    let layout = CacheLayout {
        dtype: CacheDtype::F16,
        ..LAYOUT
    };
    let mut c = KvCache::new(4, layout).unwrap();
    c.append_with(&[4.0, 8.0], &[2.0, -6.0], halve_then_narrow)
        .unwrap();
    assert_eq!(row(c.key(0, 1)), [4.0]);
    assert_eq!(row(c.value(0, 1)), [-3.0]);
    assert_eq!(c.landmark(0).unwrap().key_sum, &[2.0, 4.0]);
    assert_eq!(c.landmark(0).unwrap().value_sum, &[1.0, -3.0]);

    let mut c = KvCache::new(4, LAYOUT).unwrap();
    c.append_with(&[4.0, 8.0], &[2.0, -6.0], halve_then_narrow)
        .unwrap();
    assert_eq!(row(c.key(0, 1)), [8.0]);
    assert_eq!(c.landmark(0).unwrap().key_sum, &[4.0, 8.0]);
}

#[test]
fn sliding_window_keeps_the_newest_tokens() {
    let mut c = KvCache::new(5, with(Eviction::SlidingWindow)).unwrap();
    fill(&mut c, 0..12);
    assert_eq!((c.len(), c.retained()), (12, 5));
    for p in 0..12 {
        let slot = c.slot(p);
        assert_eq!(slot.is_some(), p >= 7, "position {p}");
        if let Some(slot) = slot {
            assert_eq!(c.position_of_slot(slot), p);
            assert_eq!(row(c.key(slot, 0)), [p as f32]);
            assert_eq!(row(c.value(slot, 1)), [-10.0 * p as f32]);
        }
    }
    // Blocks of 2: block 3 (6, 7) lost token 6; block 4 (8, 9) is whole.
    assert!(c.landmark(3).is_none());
    assert_eq!(c.landmark(4).unwrap().key_sum, &[17.0, 170.0]);
    assert_eq!(c.landmark(5).unwrap().count, 2);
    assert!(c.landmark(6).is_none(), "not started");
}

#[test]
fn heavy_hitter_keeps_recent_tokens_and_the_most_attended() {
    let mut c = KvCache::new(4, with(Eviction::HeavyHitter { recent: 2 })).unwrap();
    assert!(c.tracks_attention());
    fill(&mut c, 0..4);
    // Token 1 is attended heavily, token 0 a little, 2 and 3 not at all.
    c.record_attention(c.slot(1).unwrap(), 3.0);
    c.record_attention(c.slot(0).unwrap(), 0.5);
    // Appending 4 protects 3 and 4; the victim is the least-mass older
    // token: 2 (mass 0).
    fill(&mut c, 4..5);
    assert_eq!(c.slot(2), None);
    let held: Vec<bool> = (0..5).map(|p| c.slot(p).is_some()).collect();
    assert_eq!(held, [true, true, false, true, true]);
    // Appending 5 protects 4 and 5; among 0 (0.5), 1 (3.0) and 3 (0.0) the
    // victim is 3.
    fill(&mut c, 5..6);
    assert_eq!(c.slot(3), None);
    assert_eq!(c.slot(1).map(|s| c.position_of_slot(s)), Some(1));
    // Ties go to the oldest: 0 has 0.5, give 4 the same; appending 6
    // protects 5 and 6, the victim is 0 (older than 4).
    c.record_attention(c.slot(4).unwrap(), 0.5);
    fill(&mut c, 6..7);
    assert_eq!(c.slot(0), None);
    let held: Vec<usize> = (0..7).filter(|&p| c.slot(p).is_some()).collect();
    assert_eq!(held, [1, 4, 5, 6]);
    assert_eq!(c.attention_mass(c.slot(1).unwrap()), 3.0);
    assert_eq!(
        c.attention_mass(c.slot(6).unwrap()),
        0.0,
        "new tokens start at 0"
    );
    // Evicted tokens drop their block's summary: block 0 (0, 1) lost 0.
    assert!(c.landmark(0).is_none());
    assert!(c.landmark(1).is_none(), "block 1 (2, 3) lost both");
    let block2 = c.landmark(2).expect("block 2 (4, 5) kept both tokens");
    assert_eq!((block2.key_sum, block2.count), (&[9.0, 90.0][..], 2));
}

#[test]
fn clear_keeps_capacity_and_forgets_everything() {
    let mut c = KvCache::new(4, with(Eviction::HeavyHitter { recent: 1 })).unwrap();
    fill(&mut c, 0..6);
    c.clear();
    assert!(c.is_empty());
    assert_eq!((c.capacity(), c.retained(), c.slot(5)), (4, 0, None));
    assert!(c.landmark(0).is_none());
    fill(&mut c, 0..2);
    assert_eq!(c.slot(1), Some(1));
}

#[test]
fn clones_keep_all_their_memory() {
    let mut c = KvCache::new(6, LAYOUT).unwrap();
    fill(&mut c, 0..2);
    let copy = c.clone();
    assert_eq!(copy.keys().len(), 6 * 2, "slots are allocated up front");
}

#[test]
fn rows_of_both_types_dot_and_accumulate_alike() {
    let values: Vec<f32> = (0..19).map(|i| i as f32 * 0.25 - 2.0).collect();
    let halves: Vec<f16> = values.iter().map(|&x| f16::from_f32(x)).collect();
    let q: Vec<f32> = (0..19).map(|i| 1.0 - i as f32 * 0.125).collect();
    let want: f32 = q.iter().zip(&values).map(|(a, b)| a * b).sum();
    for r in [Row::F32(&values), Row::F16(&halves)] {
        assert!((r.dot(&q) - want).abs() < 1e-4, "{r:?}");
        let mut out = vec![1.0f32; 19];
        r.add_scaled_to(&mut out, 2.0);
        let expected: Vec<f32> = values.iter().map(|x| 1.0 + 2.0 * x).collect();
        assert_eq!(out, expected, "quarter steps are exact in f16");
    }
}

/// A finite value that f16 would round to infinity is refused before
/// anything is stored (70000 used to be stored as +inf).
#[test]
fn f16_append_beyond_the_f16_range_is_a_typed_error_and_unchanged() {
    let layout = CacheLayout {
        dtype: CacheDtype::F16,
        ..LAYOUT
    };
    let mut c = KvCache::new(4, layout).unwrap();
    c.append(&[1.0, 2.0], &[3.0, 4.0]).unwrap();
    let before = c.clone();
    let err = c
        .append(&[1.0, 2.0], &[3.0, 70_000.0])
        .expect_err("70000 rounds to infinity in f16");
    assert_eq!(
        err,
        AttentionError::F16Overflow {
            operand: Operand::Value,
            position: 1,
            kv_head: 1,
            index: 0,
            value: 70_000.0
        }
    );
    assert_eq!(
        err.to_string(),
        "`v` at position 1, kv head 1, element 0 is 70000, which an f16 cache \
         would store as infinity (finite values must have |x| < 65520)"
    );
    assert_eq!(c, before);
    // The portable and a backend's narrowing are never reached: the check
    // runs on the f32 input first.
    fn must_not_narrow(_: &[f32], _: &mut [f16], _: &mut [f32]) {
        panic!("narrowing called for a refused token");
    }
    let err = c
        .append_with(&[-65_520.0, 2.0], &[f32::MAX, 4.0], must_not_narrow)
        .unwrap_err();
    assert!(matches!(
        err,
        AttentionError::F16Overflow {
            operand: Operand::Key,
            kv_head: 0,
            index: 0,
            ..
        }
    ));
    assert_eq!(c, before);
    // The largest value below the threshold rounds to 65504 and is kept.
    let below = f32::from_bits(f16_conv::F16_OVERFLOW_THRESHOLD.to_bits() - 1);
    c.append(&[below, -below], &[0.0, 0.0]).unwrap();
    assert_eq!(row(c.key(1, 0)), [65_504.0]);
    assert_eq!(row(c.key(1, 1)), [-65_504.0]);
}

/// NaN and infinities are data, not overflows: both dtypes store them, and
/// an f32 cache takes any finite value.
#[test]
fn non_finite_values_are_stored_as_given() {
    for dtype in [CacheDtype::F32, CacheDtype::F16] {
        let mut c = KvCache::new(4, CacheLayout { dtype, ..LAYOUT }).unwrap();
        c.append(&[f32::INFINITY, f32::NEG_INFINITY], &[f32::NAN, 1.0])
            .unwrap();
        let (k, v) = (row(c.key(0, 0)), row(c.value(0, 0)));
        assert_eq!((k[0], v[0].is_nan()), (f32::INFINITY, true), "{dtype:?}");
        assert_eq!(row(c.key(0, 1)), [f32::NEG_INFINITY]);
    }
    let mut c = KvCache::new(4, LAYOUT).unwrap();
    c.append(&[70_000.0, f32::MAX], &[-1e30, 0.0]).unwrap();
    assert_eq!(row(c.key(0, 0)), [70_000.0]);
}

/// The count follows the retained tokens: eviction drops a non-finite
/// token from it, clear resets it.
#[test]
fn non_finite_rows_follow_eviction_and_clear() {
    let mut c = KvCache::new(2, with(Eviction::SlidingWindow)).unwrap();
    assert_eq!(c.non_finite_rows(), 0);
    c.append(&[f32::NAN, 0.0], &[0.0, 0.0]).unwrap();
    c.append(&[0.0, 0.0], &[0.0, f32::NEG_INFINITY]).unwrap();
    assert_eq!(c.non_finite_rows(), 2);
    c.append(&[1.0, 0.0], &[0.0, 0.0]).unwrap(); // evicts the NaN token
    assert_eq!(c.non_finite_rows(), 1);
    c.append(&[f32::INFINITY, 0.0], &[0.0, 0.0]).unwrap(); // evicts -inf, adds inf
    assert_eq!(c.non_finite_rows(), 1);
    c.clear();
    assert_eq!(c.non_finite_rows(), 0);
    c.append(&[0.0, 0.0], &[0.0, 0.0]).unwrap();
    assert_eq!(c.non_finite_rows(), 0, "stale non-finite rows do not count");
}

/// Undo takes back one append, once; a new or cleared cache has none.
#[test]
fn undo_needs_an_append_to_take_back() {
    let mut c = KvCache::new(3, LAYOUT).unwrap();
    assert_eq!(c.undo_append(), Err(AttentionError::NothingToUndo));
    assert_eq!(
        AttentionError::NothingToUndo.to_string(),
        "no append to undo: the KV cache is new or cleared, or its last append was already undone"
    );
    let fresh = c.clone();
    fill(&mut c, 0..1);
    c.undo_append().unwrap();
    assert_eq!(c, fresh);
    assert_eq!(c.undo_append(), Err(AttentionError::NothingToUndo));
    fill(&mut c, 0..2);
    c.clear();
    let cleared = c.clone();
    assert_eq!(c.undo_append(), Err(AttentionError::NothingToUndo));
    assert_eq!(c, cleared);
}

/// A refused append changes nothing, not even what undo takes back.
#[test]
fn undo_after_a_refused_append_takes_back_the_last_successful_one() {
    let layout = CacheLayout {
        dtype: CacheDtype::F16,
        ..LAYOUT
    };
    let mut c = KvCache::new(2, layout).unwrap();
    fill(&mut c, 0..1);
    let one = c.clone();
    fill(&mut c, 1..2);
    assert!(matches!(
        c.append(&[0.0, 0.0], &[1e6, 0.0]),
        Err(AttentionError::F16Overflow { .. })
    ));
    assert_eq!(
        c.append(&[0.0, 0.0], &[0.0, 0.0]),
        Err(AttentionError::CacheFull { capacity: 2 })
    );
    c.undo_append().unwrap();
    assert_eq!(c, one);
    assert_eq!(
        (c.len(), c.slot(1), c.landmark(0).unwrap().count),
        (1, None, 1)
    );
}

/// The H2O case of `heavy_hitter_keeps_recent_tokens_and_the_most_attended`,
/// taken back: the evicted token returns with its slot, its mass and its
/// block's summary, and the masses recorded after the append are undone.
#[test]
fn heavy_hitter_undo_restores_the_evicted_token_and_the_masses() {
    let mut c = KvCache::new(4, with(Eviction::HeavyHitter { recent: 2 })).unwrap();
    fill(&mut c, 0..4);
    c.record_attention(c.slot(1).unwrap(), 3.0);
    c.record_attention(c.slot(0).unwrap(), 0.5);
    c.record_attention(c.slot(2).unwrap(), 0.25);
    c.record_attention(c.slot(3).unwrap(), 0.0);
    let before = c.clone();
    // Appending 4 protects 3 and 4; among 0 (0.5), 1 (3.0) and 2 (0.25)
    // the victim is 2.
    fill(&mut c, 4..5);
    let evicted = (0..4).find(|&p| c.slot(p).is_none());
    assert_eq!(evicted, Some(2));
    assert!(c.landmark(1).is_none(), "block 1 (2, 3) lost 2");
    for _head in 0..3 {
        for slot in 0..4 {
            c.record_attention(slot, 0.125);
        }
    }
    c.undo_append().unwrap();
    assert_eq!(c, before);
    assert_eq!(c.slot(2), before.slot(2));
    assert_eq!(c.attention_mass(c.slot(2).unwrap()), 0.25);
    assert_eq!(c.attention_mass(c.slot(1).unwrap()), 3.0);
    assert_eq!(c.landmark(1).unwrap().count, 2);
    assert_eq!(c.slot(4), None);
    // The next append picks the same victim the clone would.
    let mut twin = before.clone();
    fill(&mut c, 4..5);
    fill(&mut twin, 4..5);
    assert_eq!(c, twin);
}
