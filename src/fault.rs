//! Faults: injection for the tests — with the cargo feature `fault-injection` (which only
//! the test build turns on, through the crate's dev-dependency on itself), a viewer
//! request carrying `x-cairn-fault: <site>` makes the edge panic at that site, so the
//! tests can prove that a panic is contained (without the feature [`inject`] does nothing)
//! — and [`panic_message`], what a contained panic is logged with.

use http::HeaderMap;

/// The request header naming the site to fail at.
pub const FAULT_HEADER: &str = "x-cairn-fault";

/// Panics when `headers` ask for a fault at `site` (feature `fault-injection` only).
#[cfg(feature = "fault-injection")]
pub fn inject(headers: &HeaderMap, site: &str) {
    if headers.get(FAULT_HEADER).is_some_and(|v| v == site) {
        panic!("fault injected at {site}");
    }
}

/// Without the feature: nothing.
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn inject(_headers: &HeaderMap, _site: &str) {}

/// The message a panic carried (`panic!("...")` payloads are `&str` or `String`).
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}
