//! The autoencoder against onad 0.3.0's `Autoencoder` running on real torch (in float64), from the same
//! initial weights: `scripts/fidelity/gen_autoencoder_fixture.py` writes the scores (`score_one` then
//! `learn_one` on the first 500 SHUTTLE rows) and documents the weights `0.25 sin(0.7 i + 0.3)` laid out
//! as the Rust model stores them. The optimizer steps, losses and both architectures are torch's, so the
//! scores agree to rounding (worst relative difference about 5e-13 over 500 rows): torch sums in other
//! orders, nothing else differs. (At Adam's step 0.01 the LSTM's trajectory is sensitive enough that the
//! two drift apart after ~200 rows from those last-bit differences alone; the fixture uses 0.001.)

mod common;

use onad_core::{Detector, DetectorParams};
use onad_models::{Autoencoder, AutoencoderParams};

fn check(stem: &str, params: &str, centred: bool) {
    let (schema, rows, _) = common::shuttle();
    let params: AutoencoderParams = serde_json::from_str(params).unwrap();
    let mut state = serde_json::to_value(params.build(&schema).unwrap()).unwrap();
    for (i, w) in state["params"].as_array_mut().unwrap().iter_mut().enumerate() {
        *w = (0.25 * (0.7 * i as f64 + 0.3).sin()).into();
    }
    let mut model: Autoencoder = serde_json::from_value(state).unwrap();
    let (_, want) = common::read_csv(&common::fixture(&format!("fidelity/{stem}.csv")));
    assert_eq!(want.len(), 500);
    let mut worst = 0.0f64;
    for (i, (row, want)) in rows.iter().zip(&want).enumerate() {
        let x: Vec<f64> = if centred { row.iter().map(|v| (v - 40.0) / 50.0).collect() } else { row.clone() };
        let got = model.score_one(&x);
        model.learn_one(&x);
        let rel = (got - want[1]).abs() / want[1].abs().max(1e-12);
        worst = worst.max(rel);
        assert!(rel < 1e-9, "{stem} row {i}: {got} vs onad's {}", want[1]);
    }
    assert_eq!(model.dropped_steps(), 0);
    eprintln!("{stem}: worst relative difference {worst:.2e}");
}

#[test]
fn vanilla_adam_mse_raw() {
    check("autoencoder_vanilla_adam_mse_raw", r#"{"learning_rate": 0.001}"#, false);
}

#[test]
fn vanilla_adam_mse_centred() {
    check("autoencoder_vanilla_adam_mse_centred", r#"{"learning_rate": 0.001}"#, true);
}

#[test]
fn vanilla_sgd_l1_centred() {
    check("autoencoder_vanilla_sgd_l1_centred", r#"{"optimizer": "sgd", "learning_rate": 0.01, "loss": "l1"}"#, true);
}

#[test]
fn lstm_adam_smooth_l1_centred() {
    check(
        "autoencoder_lstm_adam_smooth_l1_centred",
        r#"{"architecture": "lstm", "learning_rate": 0.001, "loss": "smooth_l1"}"#,
        true,
    );
}

#[test]
fn lstm_sgd_huber_centred() {
    check(
        "autoencoder_lstm_sgd_huber_centred",
        r#"{"architecture": "lstm", "optimizer": "sgd", "learning_rate": 0.1, "loss": "huber"}"#,
        true,
    );
}
