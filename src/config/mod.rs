//! Configuration: the TOML model, its validation with clear messages, quick mode and the
//! embedded default.

mod model;

pub use model::*;
