//! Configuration loading (`cairn::config::load_str`); the body is `cairn::fuzzing::config_toml`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| cairn::fuzzing::config_toml(data));
