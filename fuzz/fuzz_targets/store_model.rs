//! A real store driven by random operations (insert, abandoned and interleaved fills, lookup, update_meta, remove, remove_prefix, clock, sweep, checkpoint, reopen, rebuild) against a map; the body is `cairn::fuzzing::store_model`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| cairn::fuzzing::store_model(data));
