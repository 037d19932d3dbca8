//! Host → distribution: the assigned domain `<id>.<edge domain>` or an alias, compared
//! case-insensitively with the port and a trailing dot ignored; `*.example.com` aliases
//! match any name below example.com (most specific first); a catch-all distribution (quick
//! mode) takes the rest.

use std::collections::HashMap;

use crate::config::Config;

#[derive(Debug, Default)]
pub struct Router {
    exact: HashMap<String, usize>,
    /// (suffix including the leading '.', distribution index), longest suffix first.
    wildcards: Vec<(String, usize)>,
    catch_all: Option<usize>,
}

impl Router {
    /// Builds the table. Config validation has already refused names claimed twice.
    pub fn new(config: &Config) -> Self {
        let mut r = Router::default();
        for (i, d) in config.distributions.iter().enumerate() {
            r.exact.insert(
                d.assigned_domain(&config.edge.domain).to_ascii_lowercase(),
                i,
            );
            for alias in &d.aliases {
                let alias = alias.to_ascii_lowercase();
                match alias.strip_prefix('*') {
                    Some(suffix) => r.wildcards.push((suffix.to_string(), i)),
                    None => {
                        r.exact.insert(alias, i);
                    }
                }
            }
            if d.catch_all {
                r.catch_all = Some(i);
            }
        }
        r.wildcards.sort_by_key(|w| std::cmp::Reverse(w.0.len()));
        r
    }

    /// The distribution index for a Host header value (or an HTTP/2 authority).
    pub fn route(&self, host: &str) -> Option<usize> {
        let name = host_name(host).to_ascii_lowercase();
        if let Some(&i) = self.exact.get(&name) {
            return Some(i);
        }
        for (suffix, i) in &self.wildcards {
            if name.len() > suffix.len() && name.ends_with(suffix.as_str()) {
                return Some(*i);
            }
        }
        self.catch_all
    }
}

/// The host part of a Host value: without port, brackets kept for IPv6, no trailing dot.
pub fn host_name(host: &str) -> &str {
    let host = host.trim();
    let name = if host.starts_with('[') {
        match host.find(']') {
            Some(end) => &host[..=end],
            None => host,
        }
    } else {
        match host.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => host,
        }
    };
    name.strip_suffix('.').unwrap_or(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_lose_port_and_dot() {
        assert_eq!(host_name("Example.COM:8080"), "Example.COM");
        assert_eq!(host_name("example.com."), "example.com");
        assert_eq!(host_name("[::1]:80"), "[::1]");
        assert_eq!(host_name("a"), "a");
    }
}
