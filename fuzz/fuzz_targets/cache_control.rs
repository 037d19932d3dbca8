//! Cache-Control parsing, governing field, storing decision and age (`cairn::httpcache`); the body is `cairn::fuzzing::cache_control`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| cairn::fuzzing::cache_control(data));
