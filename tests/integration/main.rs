//! Integration tests, one binary with a module per topic.

mod admin_api;
mod admin_metrics;
mod admin_tags;
mod common;
mod edge_basic;
mod edge_config;
mod edge_harness;
mod edge_logs;
mod edge_policy;
mod fuzz_corpus;
mod inspect_cli;
mod inspect_live;
mod inspect_verify;
mod rfc_freshness;
mod rfc_invalidation;
mod rfc_ranges;
mod rfc_reuse;
mod rfc_stale;
mod rfc_storing;
mod rfc_targeted;
mod rfc_validation;
mod store_basic;
mod store_capacity;
mod store_corruption;
mod store_crash;
mod store_model;
