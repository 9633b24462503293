//! Fuzz target: checkpoint decoding. The input is tried twice: as a whole file, and as the position and
//! payload of an envelope with a valid checksum (so the fuzzer reaches the postcard decoding of the
//! position and of a model pipeline instead of stopping at the checksum). Decoding never panics.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use onad_models::AnyPipeline;
use onad_pipeline::checkpoint::{FORMAT_VERSION, decode};

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz.onad");
    let _ = decode::<AnyPipeline>(data, path, "fuzz");

    let Some((&split, rest)) = data.split_first() else { return };
    let cut = usize::from(split).min(rest.len());
    let (position, payload) = rest.split_at(cut);
    let mut file = b"ONADCKPT".to_vec();
    file.extend(FORMAT_VERSION.to_le_bytes());
    file.extend(4u32.to_le_bytes());
    file.extend(b"fuzz");
    file.extend(7u64.to_le_bytes());
    file.extend((position.len() as u32).to_le_bytes());
    file.extend(position);
    file.extend((payload.len() as u64).to_le_bytes());
    file.extend(payload);
    let crc = crc32fast::hash(&file[8..]);
    file.extend(crc.to_le_bytes());
    let _ = decode::<AnyPipeline>(&file, path, "fuzz");
});
