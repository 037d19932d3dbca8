//! Configuration: the validated model the edge runs on (`model`), and the two ways to get
//! one — a TOML file ([`load_file`], [`load_str`]) or quick-mode flags ([`quick`]) — with
//! validation that reports every problem with its source, line, column and key path, like
//! `nginx -t`. `cairn.example.toml` at the repository root documents every key.
//!
//! Inside: `load` walks the TOML into `raw` structs that keep positions, `quick` builds the
//! same structs from flags, and `build` applies the rules of `check` and the checks across
//! distributions to produce the `model`.

mod api;
mod build;
mod check;
mod load;
mod model;
mod policy;
mod problem;
mod quick;
mod raw;
mod size;

pub use api::{check_distribution, settings_of, ApiDistribution};
pub use load::{load_file, load_file_with, load_str, load_str_with};
pub use model::*;
pub use policy::{MANAGED_CACHE_POLICIES, MANAGED_ORIGIN_REQUEST_POLICIES};
pub use problem::{ConfigErrors, Problem};
pub use quick::{quick, quick_with, QuickOptions};
pub use size::parse_size;

#[cfg(test)]
mod tests;
