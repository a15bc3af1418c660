//! `from_bytes` never panics (`docs/safetensors.md`): on arbitrary bytes,
//! on valid files with bytes overwritten, cut or inserted, and on
//! well-formed safetensors files whose names, dtypes, shapes and metadata
//! are drawn at random — the last reach the checks past the crate's parser.
//! Whatever it accepts exports and imports again unchanged.
//!
//! Sized to finish well under a second in a debug build.

mod common;

use aether_model::ModelWeights;
use aether_safetensors::{Dtype, from_bytes, to_bytes};
use proptest::prelude::*;

use common::{Raw, TINY};

/// Accepted weights must survive our own round trip; refusals only need
/// to be errors, not panics.
fn check(bytes: &[u8], heads: Option<(usize, usize)>) {
    if let Ok(weights) = from_bytes(bytes, heads) {
        let again = to_bytes(&weights, Dtype::F32).expect("accepted weights are finite");
        assert_eq!(from_bytes(&again, None).expect("our own file"), weights);
    }
}

fn valid_tiny(seed: u64, dtype: Dtype) -> Vec<u8> {
    to_bytes(&ModelWeights::random(TINY, seed).unwrap(), dtype).unwrap()
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
];

const DTYPES: &[safetensors::Dtype] = &[
    safetensors::Dtype::F32,
    safetensors::Dtype::F16,
    safetensors::Dtype::BF16,
    safetensors::Dtype::I32,
    safetensors::Dtype::U8,
];

const KEYS: &[&str] = &["format", "version", "n_q_heads", "n_kv_heads", "other"];
const VALUES: &[&str] = &["aether-temporal", "1", "2", "0", "-1", "x", "4", ""];

/// A well-formed safetensors file of up to 12 tensors with small random
/// shapes (0 to 3 dimensions of 0 to 4) and random bytes, so values may be
/// NaN or infinite too.
fn random_file() -> impl Strategy<Value = Vec<u8>> {
    let tensor = (
        proptest::sample::select(NAMES),
        proptest::sample::select(DTYPES),
        proptest::collection::vec(0_usize..5, 0..4),
        any::<u64>(),
    );
    let metadata = proptest::collection::vec(
        (
            proptest::sample::select(KEYS),
            proptest::sample::select(VALUES),
        ),
        0..5,
    );
    (proptest::collection::vec(tensor, 0..12), metadata).prop_map(|(tensors, metadata)| {
        let mut raws: Vec<Raw> = Vec::new();
        for (name, dtype, shape, seed) in tensors {
            if raws.iter().any(|r| r.name == name) {
                continue;
            }
            let len = shape.iter().product::<usize>() * dtype.bitsize() / 8;
            let mut state = seed | 1;
            let data = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect();
            raws.push(Raw {
                name: name.to_owned(),
                dtype,
                shape,
                data,
            });
        }
        common::serialize(&raws, &metadata)
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
        seed in any::<u64>(),
        f16 in any::<bool>(),
        mutations in proptest::collection::vec(mutation(), 1..4),
        heads in heads(),
    ) {
        let mut bytes = valid_tiny(seed, if f16 { Dtype::F16 } else { Dtype::F32 });
        for m in &mutations {
            apply(&mut bytes, m);
        }
        check(&bytes, heads);
    }

    #[test]
    fn random_well_formed_files_never_panic(bytes in random_file(), heads in heads()) {
        check(&bytes, heads);
    }
}

#[test]
fn the_unmutated_tiny_file_is_accepted() {
    // The mutation test starts from a file that imports, so a mutation is
    // what makes it fail.
    let bytes = valid_tiny(5, Dtype::F32);
    assert_eq!(
        from_bytes(&bytes, None).unwrap(),
        ModelWeights::random(TINY, 5).unwrap()
    );
}
