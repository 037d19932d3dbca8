//! Integration tests, one binary with a module per topic.

mod common;
mod store_basic;
