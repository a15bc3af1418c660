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
//!
//! With the `std` feature, [`Tracks::step_many`] runs one step for each of
//! many tracks on the current rayon thread pool. Why this is safe without
//! locks or `unsafe`: a batch names each track at most once, so every
//! worker gets its own `&mut KvCache` (split off the map by the borrow
//! checker) and reads only the shared, immutable backend; the arithmetic
//! of each step is exactly [`Tracks::step`]'s, so results do not depend on
//! the thread count.

use alloc::collections::BTreeMap;
#[cfg(feature = "std")]
use alloc::vec::Vec;

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
    /// A batch of [`Tracks::step_many`] names this track more than once
    /// (its steps would have to run in order; submit them in separate
    /// batches).
    #[error("a batch names this track more than once")]
    RepeatedInBatch,
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

/// One track's step in a batch for [`Tracks::step_many`]: the track, its
/// new token's q/k/v and where its output goes (`q_heads * head_dim`
/// values).
#[cfg(feature = "std")]
#[derive(Debug)]
pub struct TrackStep<'a, Id> {
    /// The track.
    pub id: Id,
    /// The new token's query.
    pub q: TensorView<'a>,
    /// The new token's key.
    pub k: TensorView<'a>,
    /// The new token's value.
    pub v: TensorView<'a>,
    /// The output.
    pub out: &'a mut [f32],
}

/// One step of a batch paired with its track's cache: the step's index
/// in the batch, the step, the cache.
#[cfg(feature = "std")]
type Work<'s, 'a, Id> = (usize, &'s mut TrackStep<'a, Id>, &'s mut KvCache);

#[cfg(feature = "std")]
impl<B, Id> Tracks<B, Id>
where
    B: AttentionBackend + Sync,
    Id: Ord + Send + Sync,
{
    /// One step for each of `steps`, spread over the current rayon pool
    /// (the global one, or the pool a caller entered with
    /// `ThreadPool::install`). Result `i` is what [`step`](Self::step)
    /// would return for `steps[i]`, and each track ends in the state the
    /// serial steps would leave: tracks share no state, so the order in
    /// which different tracks step does not matter.
    ///
    /// A track named more than once gets
    /// [`TrackError::RepeatedInBatch`] for every one of its steps and is
    /// not stepped; an id not open gets [`TrackError::UnknownTrack`].
    pub fn step_many(&mut self, steps: &mut [TrackStep<'_, Id>]) -> Vec<Result<(), TrackError>> {
        use std::sync::{Mutex, PoisonError};

        let mut results: Vec<Result<(), TrackError>> = steps.iter().map(|_| Ok(())).collect();
        // Sort the steps by id and walk them alongside the (sorted) map,
        // pairing each step with its own cache.
        let mut order: Vec<(usize, &mut TrackStep<'_, Id>)> =
            steps.iter_mut().enumerate().collect();
        // Callers that keep their batch in id order (one step per track
        // per round, say) skip the sort's O(n log n) on the one thread
        // that runs before the pool gets any work.
        if !order.is_sorted_by(|a, b| a.1.id <= b.1.id) {
            order.sort_by(|a, b| a.1.id.cmp(&b.1.id));
        }
        let mut work: Vec<Work<'_, '_, Id>> = Vec::with_capacity(order.len());
        let mut caches = self.caches.iter_mut().peekable();
        let mut pending = order.into_iter().peekable();
        while let Some((index, step)) = pending.next() {
            if pending.peek().is_some_and(|(_, next)| next.id == step.id) {
                results[index] = Err(TrackError::RepeatedInBatch);
                while let Some((repeat, _)) = pending.next_if(|(_, next)| next.id == step.id) {
                    results[repeat] = Err(TrackError::RepeatedInBatch);
                }
                continue;
            }
            while caches.next_if(|(id, _)| **id < step.id).is_some() {}
            match caches.next_if(|(id, _)| **id == step.id) {
                Some((_, cache)) => work.push((index, step, cache)),
                None => results[index] = Err(TrackError::UnknownTrack),
            }
        }
        let backend = &self.backend;
        // Contiguous shares of the id-sorted batch, share `i` on pool
        // thread `i` (`broadcast`, not work stealing). Why: a track's
        // newest rows, which every step reads, stay in the caches of the
        // core that stepped it last; when the same tracks step round after
        // round, each keeps landing on the same thread, whereas stolen
        // work moves them between cores every round (measured on a 2-vCPU
        // VM whose cores share no cache: 1.48x with work stealing; see
        // `docs/performance.md`). Each share sits behind its own
        // uncontended mutex: that is how one `Fn` closure run on every
        // thread hands each of them `&mut` access to a different share
        // without `unsafe`.
        let threads = rayon::current_num_threads().max(1);
        let share = work.len().div_ceil(threads).max(1);
        let shares: Vec<Mutex<&mut [Work<'_, '_, Id>]>> =
            work.chunks_mut(share).map(Mutex::new).collect();
        let outcomes: Vec<Vec<(usize, Result<(), TrackError>)>> = rayon::broadcast(|context| {
            let Some(share) = shares.get(context.index()) else {
                return Vec::new();
            };
            let mut share = share.lock().unwrap_or_else(PoisonError::into_inner);
            share
                .iter_mut()
                .map(|(index, step, cache)| {
                    let outcome = backend
                        .step_into(step.q, step.k, step.v, cache, step.out)
                        .map_err(TrackError::from);
                    (*index, outcome)
                })
                .collect()
        });
        let outcomes = outcomes.into_iter().flatten();
        for (index, outcome) in outcomes {
            results[index] = outcome;
        }
        results
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

    /// Many tracks stepped in parallel batches end exactly where serial
    /// steps leave them: the same outputs and the same caches, whatever
    /// the thread count.
    #[cfg(feature = "std")]
    #[test]
    fn parallel_batches_are_the_serial_steps() {
        const TRACKS: u32 = 37;
        let q_tokens: Vec<Vec<Tensor>> = (0..TRACKS)
            .map(|id| (0..12).map(|t| token(id * 100 + t, 2)).collect())
            .collect();
        let kv_tokens: Vec<Vec<Tensor>> = (0..TRACKS)
            .map(|id| (0..12).map(|t| token(id * 100 + 5000 + t, 1)).collect())
            .collect();
        let mut serial = Tracks::new(Backend::from_config(config()).unwrap(), 16).unwrap();
        let mut serial_out = Vec::new();
        for id in 0..TRACKS {
            serial.open(id).unwrap();
        }
        for t in 0..12 {
            for id in 0..TRACKS {
                let mut out = alloc::vec![0.0; 16];
                let (q, kv) = (&q_tokens[id as usize][t], &kv_tokens[id as usize][t]);
                serial
                    .step(&id, q.view(), kv.view(), kv.view(), &mut out)
                    .unwrap();
                serial_out.push(out);
            }
        }
        for threads in [1, 2, 3] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let mut parallel = Tracks::new(Backend::from_config(config()).unwrap(), 16).unwrap();
            for id in 0..TRACKS {
                parallel.open(id).unwrap();
            }
            let mut parallel_out = alloc::vec![alloc::vec![0.0f32; 16]; serial_out.len()];
            for (t, outs) in parallel_out.chunks_mut(TRACKS as usize).enumerate() {
                // Submitted in id order (no sort) on odd rounds and in
                // reverse on even ones: the batch order must not matter.
                let mut batch: Vec<TrackStep<'_, u32>> = outs
                    .iter_mut()
                    .enumerate()
                    .map(|(id, out)| TrackStep {
                        id: id as u32,
                        q: q_tokens[id][t].view(),
                        k: kv_tokens[id][t].view(),
                        v: kv_tokens[id][t].view(),
                        out,
                    })
                    .collect();
                if t % 2 == 0 {
                    batch.reverse();
                }
                let results = pool.install(|| parallel.step_many(&mut batch));
                assert!(results.iter().all(Result::is_ok), "{results:?}");
            }
            assert_eq!(parallel_out, serial_out, "{threads} threads");
            for id in 0..TRACKS {
                assert!(
                    parallel.cache(&id) == serial.cache(&id),
                    "{threads} threads: track {id}'s cache"
                );
            }
        }
    }

    #[cfg(feature = "std")]
    #[test]
    fn a_batch_refuses_unknown_and_repeated_tracks_only() {
        let mut tracks = Tracks::new(Backend::from_config(config()).unwrap(), 8).unwrap();
        tracks.open(1u32).unwrap();
        tracks.open(2u32).unwrap();
        let (q, kv) = (token(1, 2), token(2, 1));
        let mut outs = [[0.0f32; 16]; 4];
        let [a, b, c, d] = &mut outs;
        let mut batch = [1u32, 9, 2, 1]
            .into_iter()
            .zip([a, b, c, d])
            .map(|(id, out)| TrackStep {
                id,
                q: q.view(),
                k: kv.view(),
                v: kv.view(),
                out: &mut out[..],
            })
            .collect::<Vec<_>>();
        let results = tracks.step_many(&mut batch);
        assert_eq!(
            results,
            [
                Err(TrackError::RepeatedInBatch),
                Err(TrackError::UnknownTrack),
                Ok(()),
                Err(TrackError::RepeatedInBatch)
            ]
        );
        assert_eq!(tracks.cache(&1).unwrap().len(), 0);
        assert_eq!(tracks.cache(&2).unwrap().len(), 1);
    }
}
