//! Cache keys and path normalisation (`cairn::cache_key`); the body is `cairn::fuzzing::cache_key`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| cairn::fuzzing::cache_key(data));
