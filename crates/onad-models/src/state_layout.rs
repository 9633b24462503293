//! Pins the serialized (postcard) layout of the model states built on the shared rolling window of
//! `onad_core::rolling`: checkpoints store these bytes, so a change here would misread every checkpoint
//! written before it. The hex strings were written by the build before the window was shared (each model
//! kept its own `VecDeque` and order-statistics store); the states built the same way today must encode to
//! the same bytes, and decoding those bytes must give a model that goes on scoring bit for bit like one
//! that was never serialized.

use onad_core::{Detector, DetectorParams, Schema};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::threshold::Guard;
use crate::*;

const MEDIAN_W5: &str = concat!(
    "00050105000000000000f03f000000000000004000000000000008400000000000001040000000000000f8bf00050000",
    "00000000f8bf000000000000f03f00000000000000400000000000000840000000000000104000000000000021400b03",
);
const QUANTILE_W5000_TREE: &str = concat!(
    "008827010c00000000000000c0000000000000f0bf0000000000000000000000000000f03f0000000000000040000000",
    "00000008400000000000001040000000000000f8bf000000000000e0bf000000000000e03f000000000000f83f000000",
    "0000000440010c00000000000000c0c1b989c8c8bd8b859101ffffffff0fffffffff0f0100000000000000c000000000",
    "0000f0bfceaddde4e1bb8dac9701ffffffff0fffffffff0f01000000000000f0bf0000000000000000ed9f86d8cd9cc5",
    "851dffffffff0f0902000000000000e03f000000000000f03fca95ce91aeeef8b96e0204050000000000001440000000",
    "0000000040da86a79ccae1ce81630affffffff0f020000000000000c40000000000000084080c0bfef9abba9b2bd0108",
    "060c00000000000023400000000000001040d79bc8c9c5bcf8e563ffffffff0fffffffff0f0100000000000010400000",
    "00000000f8bfb6ecd4fc8eb694ab9e0100010300000000000012c0000000000000e0bfe4c0c1f3ebdfd4d7ae01070b0a",
    "0000000000000440000000000000e03fcadfe0d2e8d7c4c308ffffffff0fffffffff0f01000000000000e03f00000000",
    "0000f83f9de1809cd28fd9fa50ffffffff0fffffffff0f01000000000000f83f0000000000000440839efacec9bffe9f",
    "940103ffffffff0f060000000000001e400001050ccdccccccccccec3f0c",
);
const IQR_W4: &str = concat!(
    "000401040000000000000000000000000000f03f00000000000000400000000000000840000400000000000000000000",
    "00000000f03f0000000000000040000000000000084000000000000018400802",
);
const MAD_W4: &str = concat!(
    "000401040000000000000000000000000000f03f00000000000000400000000000000840000400000000000000000000",
    "00000000f03f0000000000000040000000000000084000000000000018400802",
);
const QUANTILE_THRESHOLD_W20: &str = concat!(
    "00cdccccccccccec3f140a0f00000000000000c0000000000000f0bf0000000000000000000000000000f03f00000000",
    "0000004000000000000008400000000000001040000000000000f8bf000000000000e0bf000000000000e03f00000000",
    "0000f83f00000000000004400000000000000c4000000000000000c0000000000000f0bf000f00000000000000c00000",
    "0000000000c0000000000000f8bf000000000000f0bf000000000000f0bf000000000000e0bf00000000000000000000",
    "00000000e03f000000000000f03f000000000000f83f0000000000000040000000000000044000000000000008400000",
    "000000000c40000000000000104000000000000024400f016666666666660a40",
);
const GUARD_Q08_W6: &str = concat!(
    "019a9999999999e93f0606000000000000f03f0000000000001840000000000000104000000000000000400000000000",
    "000000000000000000144000060000000000000000000000000000f03f00000000000000400000000000001040000000",
    "0000001440000000000000184000000000000032400c01",
);

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap()).collect()
}

fn value(i: usize) -> f64 {
    ((i * 7919) % 13) as f64 * 0.5 - 2.0
}

/// Learns `n` values of the pinned sequence.
fn feed(m: &mut dyn Detector, n: usize) {
    for i in 0..n {
        m.learn_one(&[value(i)]);
    }
}

/// `model` (fed `n` values) encodes to `pinned`, and the decoded pinned bytes score and learn like it.
fn check<D: Detector + Serialize + DeserializeOwned>(name: &str, mut model: D, n: usize, pinned: &str) {
    feed(&mut model, n);
    assert_eq!(hex(&postcard::to_stdvec(&model).unwrap()), pinned, "{name}: the serialized layout changed");
    let mut restored: D = postcard::from_bytes(&unhex(pinned)).unwrap();
    for i in n..n + 40 {
        let x = [value(i * 3 + 1) * 1.5];
        assert_eq!(model.score_one(&x).to_bits(), restored.score_one(&x).to_bits(), "{name}: row {i}");
        model.learn_one(&x);
        restored.learn_one(&x);
    }
}

#[test]
fn moving_order_statistics_keep_their_layout() {
    let s = Schema::shared(["v"]).unwrap();
    let median = MovingMedianParams { window_size: Some(5), ..Default::default() }.build(&s).unwrap();
    check("moving_median", median, 8, MEDIAN_W5);
    // Beyond 4,096 values the store is the treap: its arena, free list, root and counter are pinned too.
    let q = MovingQuantileParams { window_size: Some(5000), quantile: 0.9, ..Default::default() };
    check("moving_quantile", q.build(&s).unwrap(), 12, QUANTILE_W5000_TREE);
    let iqr = MovingInterquartileRangeParams { window_size: Some(4), ..Default::default() }.build(&s).unwrap();
    check("moving_interquartile_range", iqr, 6, IQR_W4);
    let mad = MovingAverageAbsoluteDeviationParams { window_size: Some(4), ..Default::default() };
    check("moving_average_absolute_deviation", mad.build(&s).unwrap(), 6, MAD_W4);
}

#[test]
fn score_thresholds_keep_their_layout() {
    let s = Schema::shared(["v"]).unwrap();
    let qt = QuantileThresholdParams { quantile: 0.9, window_size: 20, ..Default::default() }.build(&s).unwrap();
    check("quantile_threshold", qt, 15, QUANTILE_THRESHOLD_W20);

    let mut guard = Guard::new(Protect::Quantile { quantile: 0.8, window_size: 6 }).unwrap();
    let score = |i: usize| ((i * 5) % 7) as f64;
    for i in 0..9 {
        guard.admit(score(i));
    }
    assert_eq!(hex(&postcard::to_stdvec(&guard).unwrap()), GUARD_Q08_W6, "learn protection: the layout changed");
    let mut restored: Guard = postcard::from_bytes(&unhex(GUARD_Q08_W6)).unwrap();
    for i in 9..60 {
        assert_eq!(guard.admit(score(i * 3)), restored.admit(score(i * 3)), "row {i}");
    }
    assert_eq!(guard.protected(), restored.protected());
    assert!(guard.protected() > 0);
}
