//! Neural detectors, on a small built-in kit of layers, losses and optimizers (`nn.rs`) instead of a
//! deep-learning framework.

mod autoencoder;
mod nn;

pub use autoencoder::{Autoencoder, AutoencoderArchitecture, AutoencoderParams};
pub use nn::{AutoencoderLoss, AutoencoderOptimizer};
