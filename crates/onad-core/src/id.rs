//! Ids as feature values: how a column of names, account numbers or addresses becomes a number a model
//! can compare for equality, the same way in every connector.
//!
//! A row is `&[f64]`, and an id read as a float would be rounded (integers past 2^53) or unreadable (text).
//! A column given the id role instead holds `id_value` of its text: a fixed 64-bit hash cut to 52 bits,
//! which an `f64` holds exactly, so two rows carry the same value if and only if (up to hash collisions)
//! their ids are the same text. Models that use ids (graph detectors, categorical aspects) only test
//! values for equality or hash them again; the value has no order or scale.
//!
//! The text is what the input holds, with ASCII white space trimmed: a CSV field, a JSON string, a Parquet
//! or SQLite string. Numbers stand for their decimal text (a JSON or Parquet integer `42` is the id `"42"`,
//! as in a CSV file; a float is written the shortest way that reads back, `1.5`, and `1.0` as `"1"`), and
//! booleans for `"true"` and `"false"`. Empty text and nulls are missing (NaN). Text is compared as bytes:
//! `"007"` and `"7"` are two ids.
//!
//! Collisions: 52 bits give one expected colliding pair among about 95 million distinct ids (the birthday
//! bound sqrt(2^52 * 2 ln 2)); below a million distinct ids the chance of any collision is about 1 in 10,000.
//! The hash is part of the data format (checkpointed models hold these values) and is pinned by a test.
//!
//! ```
//! use onad_core::id_value;
//! assert_eq!(id_value(b"10.0.0.1"), id_value(b" 10.0.0.1 "));
//! assert_ne!(id_value(b"alice"), id_value(b"bob"));
//! assert!(id_value(b"").is_nan());
//! let v = id_value(b"18446744073709551617"); // past u64, still exact
//! assert_eq!(v, v.trunc());
//! assert!(v < (1u64 << 52) as f64);
//! ```

use std::fmt::Display;
use std::io::Write as _;

/// The number of bits of an id value: every value is an integer in `[0, 2^52)`.
pub const ID_BITS: u32 = 52;

/// The value of an id given as text (bytes, trimmed of ASCII white space); NaN when the text is empty.
pub fn id_value(text: &[u8]) -> f64 {
    let text = text.trim_ascii();
    if text.is_empty() {
        return f64::NAN;
    }
    // FNV-1a over the bytes, then the splitmix64 finaliser so that every output bit depends on every input
    // byte (FNV alone leaves the high bits weak for short keys).
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in text {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 31;
    (h >> (64 - ID_BITS)) as f64
}

/// The value of an id given as a number or a boolean: [`id_value`] of its text (see the module docs).
pub fn id_value_of(v: impl Display) -> f64 {
    // Every integer and float is shorter than this (an f64's shortest form is at most 24 bytes).
    let mut buf = [0u8; 64];
    let mut cursor = std::io::Cursor::new(&mut buf[..]);
    match write!(cursor, "{v}") {
        Ok(()) => {
            let n = cursor.position() as usize;
            id_value(&buf[..n])
        }
        Err(_) => id_value(v.to_string().as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_pinned_exact_and_distinct() {
        // Checkpointed models hold these values: a change here breaks every saved graph model.
        assert_eq!(id_value(b"a"), 48_429_446_496_578.0);
        assert_eq!(id_value(b"42"), id_value_of(42u64));
        assert_eq!(id_value(b"-7"), id_value_of(-7i64));
        assert_eq!(id_value(b"1"), id_value_of(1.0f64));
        assert_eq!(id_value(b"1.5"), id_value_of(1.5f64));
        assert_eq!(id_value(b"true"), id_value_of(true));
        assert_ne!(id_value(b"007"), id_value(b"7"));
        let mut seen = std::collections::HashSet::new();
        for i in 0..100_000u32 {
            let v = id_value_of(i);
            assert!(v >= 0.0 && v < (1u64 << ID_BITS) as f64 && v == v.trunc(), "{i}: {v}");
            assert!(seen.insert(v.to_bits()), "collision at {i}");
        }
        assert!(id_value(b" \t").is_nan());
        let long = "x".repeat(200);
        assert_eq!(id_value_of(&long), id_value(long.as_bytes()));
    }
}
