//! Index value codec (`cairn::store::index`); the body is `cairn::fuzzing::index_decode`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| cairn::fuzzing::index_decode(data));
