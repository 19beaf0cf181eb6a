#![no_main]
//! See `strom_protocol::fuzzing::batch`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| strom_protocol::fuzzing::batch(data));
