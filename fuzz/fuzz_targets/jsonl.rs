//! Fuzz target: any bytes as a JSON Lines file (the row code shared with the Redis and Kafka sources),
//! under both bad-row policies, with a small line cap and the non-numeric-column exclusion: opening and
//! reading never panics, and every batch has the schema's width.
#![no_main]

use libfuzzer_sys::fuzz_target;
use onad_core::{BadRowPolicy, Source};
use onad_sources::{JsonlOptions, JsonlSource, LabelColumn, NonNumericColumns, SourceOptions};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, body)) = data.split_first() else { return };
    let options = JsonlOptions {
        base: SourceOptions {
            bad_rows: if flags & 1 == 0 { BadRowPolicy::Skip } else { BadRowPolicy::Fail },
            label: if flags & 2 == 0 { LabelColumn::Last } else { LabelColumn::None },
            batch_size: 1 + usize::from(flags >> 4),
            non_numeric: if flags & 4 == 0 { NonNumericColumns::Reject } else { NonNumericColumns::Exclude },
            ..Default::default()
        },
        max_line_bytes: 256,
    };
    let Ok(mut source) = JsonlSource::from_reader("fuzz.jsonl", std::io::Cursor::new(body.to_vec()), options) else {
        return;
    };
    let width = source.schema().len();
    for batch in &mut source {
        match batch {
            Ok(b) => assert_eq!(b.values().len(), b.num_rows() * width),
            Err(_) => break,
        }
    }
});
