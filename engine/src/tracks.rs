//! Many independent streams over one backend: one KV cache per tracked
//! person (or session), created when the track opens and dropped with it.
//!
//! A host following many people decodes one frame per person at a time;
//! each track's cost stays O(W + log T) with the sparse backend and no
//! state is shared between tracks (the backend is read-only, every cache
//! belongs to exactly one track).
//!
//! ```
//! use aether_domain::{AttentionBackend, HeadConfig, Tensor};
//! use aether_engine::Backend;
//! use aether_engine::tracks::Tracks;
//!
//! let backend = Backend::from_config(HeadConfig::default_aether()).unwrap();
//! let mut tracks = Tracks::new(backend, 3_000).unwrap();
//! tracks.open(17).unwrap();
//! tracks.open(42).unwrap();
//! let q = Tensor::zeros(1, 4, 32).unwrap();
//! let kv = Tensor::zeros(1, 1, 32).unwrap();
//! let mut out = [0.0f32; 4 * 32];
//! tracks.step(&17, q.view(), kv.view(), kv.view(), &mut out).unwrap();
//! tracks.step(&42, q.view(), kv.view(), kv.view(), &mut out).unwrap();
//! tracks.step(&17, q.view(), kv.view(), kv.view(), &mut out).unwrap();
//! assert_eq!(tracks.cache(&17).unwrap().len(), 2);
//! tracks.close(&42); // its cache is freed here
//! assert_eq!(tracks.len(), 1);
//! ```

use alloc::collections::BTreeMap;

use aether_domain::{AttentionBackend, AttentionError, KvCache, TensorView};

/// Why a track operation was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TrackError {
    /// No track with this id is open.
    #[error("no track with this id is open")]
    UnknownTrack,
    /// A track with this id is already open.
    #[error("a track with this id is already open")]
    AlreadyOpen,
    /// The backend refused the step or the cache.
    #[error(transparent)]
    Attention(#[from] AttentionError),
}

/// Open tracks, keyed by `Id`, each with its own cache of `capacity`
/// tokens.
#[derive(Debug, Clone)]
pub struct Tracks<B, Id> {
    backend: B,
    capacity: usize,
    caches: BTreeMap<Id, KvCache>,
}

impl<B: AttentionBackend, Id: Ord> Tracks<B, Id> {
    /// No tracks yet; each track will hold up to `capacity` tokens (what
    /// happens beyond that is the head config's eviction policy).
    ///
    /// # Errors
    /// [`AttentionError::ZeroCapacity`]; any error making a cache of this
    /// size would give (checked once here, so `open` cannot fail on shape).
    pub fn new(backend: B, capacity: usize) -> Result<Self, AttentionError> {
        backend.make_cache(capacity)?;
        Ok(Self {
            backend,
            capacity,
            caches: BTreeMap::new(),
        })
    }

    /// The shared backend.
    pub const fn backend(&self) -> &B {
        &self.backend
    }

    /// Opens track `id` with an empty cache.
    ///
    /// # Errors
    /// [`TrackError::AlreadyOpen`]; [`AttentionError::OutOfMemory`].
    pub fn open(&mut self, id: Id) -> Result<(), TrackError> {
        if self.caches.contains_key(&id) {
            return Err(TrackError::AlreadyOpen);
        }
        let cache = self.backend.make_cache(self.capacity)?;
        self.caches.insert(id, cache);
        Ok(())
    }

    /// Closes track `id`, freeing its cache; false if it was not open.
    pub fn close(&mut self, id: &Id) -> bool {
        self.caches.remove(id).is_some()
    }

    /// Open tracks.
    #[must_use]
    pub fn len(&self) -> usize {
        self.caches.len()
    }

    /// No open track.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.caches.is_empty()
    }

    /// Whether track `id` is open.
    #[must_use]
    pub fn contains(&self, id: &Id) -> bool {
        self.caches.contains_key(id)
    }

    /// Track `id`'s cache, to inspect.
    #[must_use]
    pub fn cache(&self, id: &Id) -> Option<&KvCache> {
        self.caches.get(id)
    }

    /// One streaming step of track `id`: appends its new token and writes
    /// the output (`q_heads * head_dim` values) to `out`.
    ///
    /// # Errors
    /// [`TrackError::UnknownTrack`], or the backend's step error (the
    /// track's cache is then unchanged).
    pub fn step(
        &mut self,
        id: &Id,
        q: TensorView<'_>,
        k: TensorView<'_>,
        v: TensorView<'_>,
        out: &mut [f32],
    ) -> Result<(), TrackError> {
        let cache = self.caches.get_mut(id).ok_or(TrackError::UnknownTrack)?;
        self.backend.step_into(q, k, v, cache, out)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Backend;
    use aether_domain::{BackendKind, HeadConfig, Tensor};
    use alloc::vec::Vec;

    fn token(seed: u32, heads: usize) -> Tensor {
        let data = (0..heads * 8)
            .map(|i| {
                (((i as u32).wrapping_mul(2_654_435_761) ^ seed) >> 16) as f32 / 65_536.0 - 0.5
            })
            .collect();
        Tensor::new(data, 1, heads, 8).unwrap()
    }

    fn config() -> HeadConfig {
        HeadConfig {
            backend: BackendKind::Sparse,
            q_heads: 2,
            kv_heads: 1,
            head_dim: 8,
            window: 4,
            block_size: 2,
            ..HeadConfig::default_aether()
        }
    }

    /// Interleaving two tracks gives each exactly what it gets alone.
    #[test]
    fn tracks_share_no_state() {
        let run_alone = |seed: u32| -> Vec<Vec<f32>> {
            let mut tracks = Tracks::new(Backend::from_config(config()).unwrap(), 32).unwrap();
            tracks.open(0u32).unwrap();
            (0..20)
                .map(|t| {
                    let mut out = alloc::vec![0.0; 16];
                    let (q, kv) = (token(seed + t, 2), token(seed + 1000 + t, 1));
                    tracks
                        .step(&0, q.view(), kv.view(), kv.view(), &mut out)
                        .unwrap();
                    out
                })
                .collect()
        };
        let (alone_a, alone_b) = (run_alone(1), run_alone(7));
        let mut tracks = Tracks::new(Backend::from_config(config()).unwrap(), 32).unwrap();
        tracks.open(1u32).unwrap();
        tracks.open(7u32).unwrap();
        for t in 0..20 {
            for (id, alone) in [(1u32, &alone_a), (7, &alone_b)] {
                let mut out = alloc::vec![0.0; 16];
                let (q, kv) = (token(id + t, 2), token(id + 1000 + t, 1));
                tracks
                    .step(&id, q.view(), kv.view(), kv.view(), &mut out)
                    .unwrap();
                assert_eq!(out, alone[t as usize], "track {id} step {t}");
            }
        }
    }

    #[test]
    fn unknown_duplicate_and_closed_tracks_are_typed_errors() {
        let mut tracks = Tracks::new(Backend::from_config(config()).unwrap(), 4).unwrap();
        tracks.open("a").unwrap();
        assert_eq!(tracks.open("a"), Err(TrackError::AlreadyOpen));
        let (q, kv) = (token(1, 2), token(2, 1));
        let mut out = [0.0; 16];
        assert_eq!(
            tracks.step(&"b", q.view(), kv.view(), kv.view(), &mut out),
            Err(TrackError::UnknownTrack)
        );
        assert!(tracks.close(&"a"));
        assert!(!tracks.close(&"a"));
        assert!(tracks.is_empty());
        assert_eq!(
            Tracks::<_, u8>::new(Backend::from_config(config()).unwrap(), 0).unwrap_err(),
            AttentionError::ZeroCapacity
        );
    }
}
