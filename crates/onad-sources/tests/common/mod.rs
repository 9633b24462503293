//! Helpers shared by the onad-sources integration tests (each test file includes this module).
#![allow(dead_code)]

use onad_core::Source;

/// Values, labels and row ids of every batch of `src`, read to the end (a read error fails the test).
pub fn collect(src: &mut dyn Source) -> (Vec<f64>, Vec<f64>, Vec<u64>) {
    let (mut v, mut l, mut ids) = (vec![], vec![], vec![]);
    for b in &mut *src {
        let b = b.unwrap();
        v.extend_from_slice(b.values());
        l.extend_from_slice(b.labels().unwrap_or(&[]));
        ids.extend_from_slice(b.row_ids());
    }
    (v, l, ids)
}

/// Bit-for-bit equality of two value lists (so NaN equals NaN).
pub fn same(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}
