//! `from_bytes` never panics (`docs/safetensors.md`): on arbitrary bytes,
//! on valid files with bytes overwritten, cut or inserted, and on valid
//! files re-serialized with tensors renamed, retyped, reshaped, scribbled
//! over, dropped or added and metadata changed — the last reach the checks
//! past the crate's parser. Version-1 and version-2 files alike.
//! Whatever it accepts exports and imports again unchanged.
//!
//! Sized to finish well under a second in a debug build.

mod common;

use aether_model::ModelWeights;
use aether_safetensors::{Dtype, from_bytes, to_bytes};
use proptest::prelude::*;

use common::{Raw, TINY, TINY_V2};

/// Accepted weights must survive our own round trip; refusals only need
/// to be errors, not panics.
fn check(bytes: &[u8], heads: Option<(usize, usize)>) {
    if let Ok(weights) = from_bytes(bytes, heads) {
        let again = to_bytes(&weights, Dtype::F32).expect("accepted weights are finite");
        assert_eq!(from_bytes(&again, None).expect("our own file"), weights);
    }
}

/// TINY without options, with every option on, and with RMS norm only.
const BASES: &[aether_model::ModelShape] = &[
    TINY,
    TINY_V2,
    common::with_options(TINY, aether_model::Norm::Rms, 0, 0),
];

fn valid_tiny(base: usize, seed: u64, dtype: Dtype) -> Vec<u8> {
    let shape = BASES[base % BASES.len()];
    to_bytes(&ModelWeights::random(shape, seed).unwrap(), dtype).unwrap()
}

#[derive(Debug, Clone)]
enum Mutation {
    Overwrite(usize, u8),
    Truncate(usize),
    Insert(usize, u8),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Overwrite(i, b)),
        1 => any::<usize>().prop_map(Mutation::Truncate),
        1 => (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
    ]
}

fn apply(bytes: &mut Vec<u8>, mutation: &Mutation) {
    let len = bytes.len().max(1);
    match *mutation {
        Mutation::Overwrite(i, b) => {
            if let Some(slot) = bytes.get_mut(i % len) {
                *slot = b;
            }
        }
        Mutation::Truncate(i) => bytes.truncate(i % len),
        Mutation::Insert(i, b) => bytes.insert(i % (bytes.len() + 1), b),
    }
}

fn heads() -> impl Strategy<Value = Option<(usize, usize)>> {
    proptest::option::of((0_usize..5, 0_usize..5))
}

const NAMES: &[&str] = &[
    "layers.0.wq",
    "layers.0.wk",
    "layers.0.wv",
    "layers.0.wo",
    "layers.1.wq",
    "layers.1.wk",
    "layers.1.wv",
    "layers.1.wo",
    "layers.3.wo",
    "layers.01.wq",
    "classifier",
    "bias",
    "layers.0.norm1_scale",
    "layers.1.norm1_shift",
    "layers.0.conv",
    "layers.1.norm2_scale",
    "layers.0.w1",
    "layers.1.b2",
    "final_norm_scale",
    "final_norm_shift",
];

const DTYPES: &[safetensors::Dtype] = &[
    safetensors::Dtype::F32,
    safetensors::Dtype::F16,
    safetensors::Dtype::BF16,
    safetensors::Dtype::I32,
    safetensors::Dtype::U8,
];

const KEYS: &[&str] = &[
    "format",
    "version",
    "n_q_heads",
    "n_kv_heads",
    "other",
    "norm",
    "conv_taps",
    "mlp_hidden",
];
const VALUES: &[&str] = &[
    "aether-temporal",
    "1",
    "2",
    "0",
    "-1",
    "x",
    "4",
    "",
    "none",
    "layer",
    "rms",
    "3",
];

/// One structural change to a valid file's tensors or metadata.
#[derive(Debug, Clone)]
enum Edit {
    Rename(usize, &'static str),
    Retype(usize, safetensors::Dtype),
    Reshape(usize, Vec<usize>),
    Scribble(usize, u64),
    Drop(usize),
    Add(&'static str, Vec<usize>),
    SetMeta(&'static str, &'static str),
    DropMeta(&'static str),
}

fn edit() -> impl Strategy<Value = Edit> {
    let shape = proptest::collection::vec(0_usize..5, 0..4);
    prop_oneof![
        (any::<usize>(), proptest::sample::select(NAMES)).prop_map(|(i, n)| Edit::Rename(i, n)),
        (any::<usize>(), proptest::sample::select(DTYPES)).prop_map(|(i, d)| Edit::Retype(i, d)),
        (any::<usize>(), shape.clone()).prop_map(|(i, s)| Edit::Reshape(i, s)),
        (any::<usize>(), any::<u64>()).prop_map(|(i, seed)| Edit::Scribble(i, seed)),
        any::<usize>().prop_map(Edit::Drop),
        (proptest::sample::select(NAMES), shape).prop_map(|(n, s)| Edit::Add(n, s)),
        (
            proptest::sample::select(KEYS),
            proptest::sample::select(VALUES)
        )
            .prop_map(|(k, v)| Edit::SetMeta(k, v)),
        proptest::sample::select(KEYS).prop_map(Edit::DropMeta),
    ]
}

/// `len` pseudo-random bytes (xorshift), so scribbled values may be NaN,
/// infinite or huge.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// Gives `tensor` a new dtype and shape with data of the matching length.
fn refill(tensor: &mut Raw, dtype: safetensors::Dtype, shape: Vec<usize>, seed: u64) {
    let len = shape.iter().product::<usize>() * dtype.bitsize() / 8;
    tensor.dtype = dtype;
    tensor.shape = shape;
    tensor.data = noise(seed, len);
}

/// A valid tiny file with a few structural edits, written by the
/// `safetensors` serializer so it always parses: this reaches the name,
/// dtype, head, shape and value checks that random bytes almost never get
/// past the parser to.
fn edited_file() -> impl Strategy<Value = Vec<u8>> {
    (
        any::<usize>(),
        any::<u64>(),
        proptest::collection::vec(edit(), 0..4),
    )
        .prop_map(|(base, seed, edits)| {
            let shape = BASES[base % BASES.len()];
            let weights = ModelWeights::random(shape, seed).unwrap();
            let mut tensors = common::tensors_of(&weights);
            let mut metadata = common::our_metadata(shape);
            for edit in edits {
                let n = tensors.len().max(1);
                match edit {
                    Edit::Rename(i, name) => {
                        if !tensors.iter().any(|t| t.name == name)
                            && let Some(t) = tensors.get_mut(i % n)
                        {
                            name.clone_into(&mut t.name);
                        }
                    }
                    Edit::Retype(i, dtype) => {
                        if let Some(t) = tensors.get_mut(i % n) {
                            let shape = t.shape.clone();
                            refill(t, dtype, shape, seed);
                        }
                    }
                    Edit::Reshape(i, shape) => {
                        if let Some(t) = tensors.get_mut(i % n) {
                            refill(t, t.dtype, shape, seed);
                        }
                    }
                    Edit::Scribble(i, noise_seed) => {
                        if let Some(t) = tensors.get_mut(i % n) {
                            t.data = noise(noise_seed, t.data.len());
                        }
                    }
                    Edit::Drop(i) => {
                        if i % n < tensors.len() {
                            tensors.remove(i % n);
                        }
                    }
                    Edit::Add(name, shape) => {
                        if !tensors.iter().any(|t| t.name == name) {
                            let mut t = Raw::f32(name, &[], &[0.0]);
                            refill(&mut t, safetensors::Dtype::F32, shape, seed);
                            tensors.push(t);
                        }
                    }
                    Edit::SetMeta(key, value) => {
                        metadata.retain(|(k, _)| *k != key);
                        metadata.push((key, value.to_owned()));
                    }
                    Edit::DropMeta(key) => metadata.retain(|(k, _)| *k != key),
                }
            }
            common::serialize_owned(&tensors, &metadata)
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..256),
        heads in heads(),
    ) {
        check(&bytes, heads);
    }

    #[test]
    fn mutated_valid_files_never_panic(
        base in any::<usize>(),
        seed in any::<u64>(),
        f16 in any::<bool>(),
        mutations in proptest::collection::vec(mutation(), 1..4),
        heads in heads(),
    ) {
        let mut bytes = valid_tiny(base, seed, if f16 { Dtype::F16 } else { Dtype::F32 });
        for m in &mutations {
            apply(&mut bytes, m);
        }
        check(&bytes, heads);
    }

    #[test]
    fn edited_valid_files_never_panic(bytes in edited_file(), heads in heads()) {
        check(&bytes, heads);
    }
}

#[test]
fn the_unmutated_tiny_files_are_accepted() {
    // The mutation test starts from a file that imports, so a mutation is
    // what makes it fail.
    for (base, &shape) in BASES.iter().enumerate() {
        let bytes = valid_tiny(base, 5, Dtype::F32);
        assert_eq!(
            from_bytes(&bytes, None).unwrap(),
            ModelWeights::random(shape, 5).unwrap()
        );
    }
}
