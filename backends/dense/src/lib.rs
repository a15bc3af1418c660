//! Exact dense attention (MHA/GQA, causal/non-causal, prefill and streaming)
#![no_std]
