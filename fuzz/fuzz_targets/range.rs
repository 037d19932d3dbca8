//! Range / Content-Range parsing, resolution and multipart framing (`cairn::httpcache::range`); the body is `cairn::fuzzing::range`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| cairn::fuzzing::range(data));
