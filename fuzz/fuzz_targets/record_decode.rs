//! Segment and record codec (`cairn::store::record`); the body is `cairn::fuzzing::record_decode`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| cairn::fuzzing::record_decode(data));
