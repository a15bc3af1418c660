//! Benchmarks of our backends against the published ruvllm_sparse_attention crate
fn main() {}
