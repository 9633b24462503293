//! Neural detectors, on a small built-in kit of layers, losses and optimizers (`nn.rs`) instead of a
//! deep-learning framework.

mod autoencoder;
mod kitnet;
mod nn;

pub use autoencoder::{Autoencoder, AutoencoderArchitecture, AutoencoderParams};
pub use kitnet::{KitnetPhase, OnlineAutoencoderEnsemble, OnlineAutoencoderEnsembleParams};
pub use nn::{AutoencoderLoss, AutoencoderOptimizer};
