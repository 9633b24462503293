//! Fuzz target: any bytes as a CSV file, under both bad-row policies, with and without a header, with a
//! small line cap and the non-numeric-column exclusion: opening and reading never panics, and every
//! batch has the schema's width.
#![no_main]

use libfuzzer_sys::fuzz_target;
use onad_core::{BadRowPolicy, Source};
use onad_sources::{CsvOptions, CsvSource, NonNumericColumns, SourceOptions};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, body)) = data.split_first() else { return };
    let options = CsvOptions {
        base: SourceOptions {
            bad_rows: if flags & 1 == 0 { BadRowPolicy::Skip } else { BadRowPolicy::Fail },
            batch_size: 1 + usize::from(flags >> 4),
            non_numeric: if flags & 4 == 0 { NonNumericColumns::Reject } else { NonNumericColumns::Exclude },
            ..Default::default()
        },
        has_header: flags & 2 == 0,
        delimiter: if flags & 8 == 0 { b',' } else { b';' },
        max_line_bytes: 64,
    };
    let Ok(mut source) = CsvSource::from_reader("fuzz.csv", std::io::Cursor::new(body.to_vec()), options) else {
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
