//! The edge's Prometheus metrics: viewer requests by distribution and result type,
//! response bytes, origin requests by outcome with their latency, collapsed requests,
//! viewer connections (open, refused at the limit, ended by protocol errors, closed at
//! the request limit) and requests refused before routing, fills in flight and the
//! store's gauges and counters (read at scrape time). Encoded
//! by `prometheus-client` in the OpenMetrics text format (`GET /metrics` on the admin
//! listener).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

use crate::origin::OriginError;
use crate::result::ResultType;
use crate::store::StoreStats;

/// The distribution label of requests no distribution answered (no Host, unknown host).
pub const NO_DISTRIBUTION: &str = "-";

/// The Content-Type of [`Metrics::render`]'s output: Prometheus' classic text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    distribution: String,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DistLabels {
    distribution: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OriginLabels {
    distribution: String,
    origin: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

/// Why a viewer connection ended with an error, as far as hyper tells
/// ([`ProtocolError::of`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolError {
    /// A request head hyper could not parse (bad request line, method, target, header
    /// bytes, conflicting framing headers): hyper answered 400 itself.
    Parse,
    /// A request head or URI beyond hyper's limits: hyper answered 431 or 414 itself.
    TooLarge,
    /// The connection's first request head did not arrive within `header_read_timeout`:
    /// closed without a response.
    HeaderTimeout,
    /// A later request head did not arrive within `header_read_timeout` after the
    /// previous response: mostly idle keep-alive connections, closed as intended.
    KeepAliveTimeout,
    /// The viewer closed the connection in the middle of a request or of its response.
    Incomplete,
    /// An HTTP/2 protocol error.
    Http2,
    /// A socket error (reset, broken pipe) or any other I/O failure.
    Io,
    Other,
}

impl ProtocolError {
    /// Classifies the error a connection ended with.
    pub fn of(e: &(dyn std::error::Error + 'static)) -> Self {
        let Some(h) = e.downcast_ref::<hyper::Error>() else {
            return if e.downcast_ref::<std::io::Error>().is_some() {
                ProtocolError::Io
            } else {
                ProtocolError::Other
            };
        };
        if h.is_parse_too_large() {
            ProtocolError::TooLarge
        } else if h.is_parse() || h.is_parse_version_h2() {
            ProtocolError::Parse
        } else if h.is_timeout() {
            ProtocolError::HeaderTimeout
        } else if h.is_incomplete_message() {
            ProtocolError::Incomplete
        } else if source_is::<h2::Error>(h) {
            ProtocolError::Http2
        } else if source_is::<std::io::Error>(h) || h.is_body_write_aborted() {
            ProtocolError::Io
        } else {
            ProtocolError::Other
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ProtocolError::Parse => "parse",
            ProtocolError::TooLarge => "too_large",
            ProtocolError::HeaderTimeout => "header_timeout",
            ProtocolError::KeepAliveTimeout => "keepalive_timeout",
            ProtocolError::Incomplete => "incomplete",
            ProtocolError::Http2 => "http2",
            ProtocolError::Io => "io",
            ProtocolError::Other => "other",
        }
    }
}

/// Whether `e`'s chain of sources holds a `T`.
fn source_is<T: std::error::Error + 'static>(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = e.source();
    while let Some(s) = cur {
        if s.is::<T>() {
            return true;
        }
        cur = s.source();
    }
    false
}

/// Why the edge refused a viewer request before asking an origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// 413: the body is larger than `max_request_body`.
    BodyTooLarge,
    /// 414: the request target is longer than the edge accepts.
    UriTooLong,
    /// 400: a path or query the edge will not forward.
    BadTarget,
    /// 508: the request's Via already names this edge.
    ViaLoop,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::BodyTooLarge => "body_too_large",
            Refusal::UriTooLong => "uri_too_long",
            Refusal::BadTarget => "bad_target",
            Refusal::ViaLoop => "via_loop",
        }
    }
}

/// Where a panic was caught (and contained).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PanicSite {
    /// A viewer request's handling: the request got a 500.
    Request,
    /// An origin fill's task: its followers got an error, nothing was stored.
    Fill,
}

impl PanicSite {
    pub fn as_str(self) -> &'static str {
        match self {
            PanicSite::Request => "request",
            PanicSite::Fill => "fill",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SiteLabels {
    site: &'static str,
}

/// The viewer listener's connection metrics; clones share the values.
#[derive(Clone, Debug, Default)]
pub struct ConnectionMetrics {
    open: Gauge,
    rejected: Counter,
    request_limit: Counter,
    protocol_errors: Family<KindLabels, Counter>,
}

impl ConnectionMetrics {
    /// A connection was accepted and is being served.
    pub fn opened(&self) {
        self.open.inc();
    }

    /// A served connection ended.
    pub fn closed(&self) {
        self.open.dec();
    }

    /// A connection was refused because `max_connections` were open.
    pub fn rejected(&self) {
        self.rejected.inc();
    }

    /// A connection reached `max_requests_per_connection`.
    pub fn request_limit_reached(&self) {
        self.request_limit.inc();
    }

    pub fn protocol_error(&self, kind: ProtocolError) {
        self.protocol_errors
            .get_or_create(&KindLabels {
                kind: kind.as_str(),
            })
            .inc();
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabels {
    version: &'static str,
}

/// What is read at scrape time (from the store and the collapse table).
#[derive(Debug, Default)]
struct Snapshot {
    store: Option<StoreStats>,
    fills_in_flight: u64,
}

#[derive(Debug, Default)]
struct ScrapeCollector(Arc<Mutex<Snapshot>>);

fn gauge(enc: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> std::fmt::Result {
    let g = ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX));
    g.encode(enc.encode_descriptor(name, help, None, g.metric_type())?)
}

fn counter(enc: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> std::fmt::Result {
    let c = ConstCounter::new(v);
    c.encode(enc.encode_descriptor(name, help, None, c.metric_type())?)
}

impl Collector for ScrapeCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let snap = self.0.lock().unwrap_or_else(|p| p.into_inner());
        gauge(
            &mut enc,
            "cairn_fills_in_flight",
            "Origin fills in flight",
            snap.fills_in_flight,
        )?;
        let Some(s) = &snap.store else {
            return Ok(());
        };
        let e = &mut enc;
        gauge(e, "cairn_store_objects", "Objects in the store", s.objects)?;
        gauge(
            e,
            "cairn_store_blobs",
            "Distinct bodies in the store",
            s.blobs,
        )?;
        gauge(
            e,
            "cairn_store_live_bytes",
            "Bytes of live bodies and object records",
            s.live_bytes,
        )?;
        gauge(
            e,
            "cairn_store_disk_bytes",
            "Bytes of segment files on disk",
            s.bytes_on_disk,
        )?;
        gauge(e, "cairn_store_segments", "Segment files", s.segments)?;
        gauge(
            e,
            "cairn_store_capacity_bytes",
            "The store's configured capacity in bytes",
            s.capacity,
        )?;
        counter(
            e,
            "cairn_store_expired",
            "Objects dropped past expiry since the store was opened",
            s.expired,
        )?;
        counter(
            e,
            "cairn_store_evicted",
            "Objects evicted to stay within capacity since the store was opened",
            s.evicted_objects,
        )?;
        counter(
            e,
            "cairn_store_checksum_failures",
            "Reads that failed a checksum since the store was opened",
            s.checksum_failures,
        )?;
        counter(
            e,
            "cairn_store_reclaimed_segments",
            "Segments reclaimed since the store was opened",
            s.reclaimed_segments,
        )?;
        counter(
            e,
            "cairn_store_lost_segments",
            "Segment files found missing, replaced or truncated (at open or while running)",
            s.lost_segments,
        )?;
        counter(
            e,
            "cairn_store_index_rebuilds",
            "Times the index was rebuilt from the segments since the store was opened",
            s.index_rebuilds,
        )?;
        counter(
            e,
            "cairn_store_disk_full_refusals",
            "Writes refused because free disk space was below min_free_disk",
            s.disk_full_refusals,
        )?;
        counter(
            e,
            "cairn_store_over_capacity_refusals",
            "Writes refused because the segments would exceed the capacity",
            s.over_capacity_refusals,
        )
    }
}

/// The registry and the metric families the edge records into.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    response_bytes: Family<DistLabels, Counter>,
    origin_requests: Family<OriginLabels, Counter>,
    origin_latency: Family<DistLabels, Histogram, fn() -> Histogram>,
    collapsed: Counter,
    refused: Family<ReasonLabels, Counter>,
    panics: Family<SiteLabels, Counter>,
    connections: ConnectionMetrics,
    scrape: Arc<Mutex<Snapshot>>,
}

fn latency_histogram() -> Histogram {
    // 1 ms to ~32 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "cairn_requests",
            "Viewer requests by distribution and result type (Hit, RefreshHit, Miss, Error)",
            requests.clone(),
        );
        let response_bytes = Family::<DistLabels, Counter>::default();
        registry.register(
            "cairn_response_bytes",
            "Response body bytes sent to viewers",
            response_bytes.clone(),
        );
        let origin_requests = Family::<OriginLabels, Counter>::default();
        registry.register(
            "cairn_origin_requests",
            "Origin requests by outcome (status class, connect_error, timeout, bad_response, tls_error)",
            origin_requests.clone(),
        );
        let origin_latency: Family<DistLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(latency_histogram);
        registry.register_with_unit(
            "cairn_origin_latency",
            "Time from sending an origin request to its response headers",
            Unit::Seconds,
            origin_latency.clone(),
        );
        let collapsed = Counter::default();
        registry.register(
            "cairn_collapsed_requests",
            "Viewer requests that followed an origin fill another request started",
            collapsed.clone(),
        );
        let refused = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "cairn_viewer_requests_refused",
            "Viewer requests refused by the edge before any origin request, by reason (body_too_large, uri_too_long, bad_target, via_loop)",
            refused.clone(),
        );
        let panics = Family::<SiteLabels, Counter>::default();
        registry.register(
            "cairn_panics",
            "Panics caught and contained, by site (request: answered 500; fill: its viewers got an error, nothing stored)",
            panics.clone(),
        );
        let connections = ConnectionMetrics::default();
        registry.register(
            "cairn_viewer_connections_open",
            "Viewer connections open now",
            connections.open.clone(),
        );
        registry.register(
            "cairn_viewer_connections_rejected",
            "Viewer connections answered 503 and closed because max_connections were open",
            connections.rejected.clone(),
        );
        registry.register(
            "cairn_viewer_connections_request_limit",
            "Viewer connections closed after max_requests_per_connection requests",
            connections.request_limit.clone(),
        );
        registry.register(
            "cairn_viewer_protocol_errors",
            "Viewer connections that ended with an error, by kind (parse and too_large: hyper answered 400/431/414 itself; header_timeout: no first request head in time; keepalive_timeout: no next one, mostly idle connections; incomplete, http2, io, other)",
            connections.protocol_errors.clone(),
        );
        let build = Family::<VersionLabels, Gauge>::default();
        build
            .get_or_create(&VersionLabels {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        registry.register("cairn_build_info", "Cairn's version", build);
        let scrape = Arc::new(Mutex::new(Snapshot::default()));
        registry.register_collector(Box::new(ScrapeCollector(scrape.clone())));
        Self {
            registry,
            requests,
            response_bytes,
            origin_requests,
            origin_latency,
            collapsed,
            refused,
            panics,
            connections,
            scrape,
        }
    }

    /// The viewer listener's connection metrics (a shared handle).
    pub fn connections(&self) -> ConnectionMetrics {
        self.connections.clone()
    }

    /// A viewer request was refused before routing or before its origin request.
    pub fn refused(&self, why: Refusal) {
        self.refused
            .get_or_create(&ReasonLabels {
                reason: why.as_str(),
            })
            .inc();
    }

    /// A panic was caught at `site`.
    pub fn panicked(&self, site: PanicSite) {
        self.panics
            .get_or_create(&SiteLabels {
                site: site.as_str(),
            })
            .inc();
    }

    /// One viewer request ended (`result` as logged), having sent `body_bytes`.
    pub fn request(&self, distribution: &str, result: ResultType, body_bytes: u64) {
        let distribution = distribution.to_string();
        self.requests
            .get_or_create(&RequestLabels {
                distribution: distribution.clone(),
                result: result.as_str(),
            })
            .inc();
        self.response_bytes
            .get_or_create(&DistLabels { distribution })
            .inc_by(body_bytes);
    }

    /// One origin request: its outcome and, when it answered, the time to its headers.
    pub fn origin<B>(
        &self,
        distribution: &str,
        origin: &str,
        result: &Result<http::Response<B>, OriginError>,
        elapsed: Duration,
    ) {
        let outcome = match result {
            Ok(r) => match r.status().as_u16() {
                100..=199 => "1xx",
                200..=299 => "2xx",
                300..=399 => "3xx",
                400..=499 => "4xx",
                _ => "5xx",
            },
            Err(OriginError::Connect { .. }) => "connect_error",
            Err(OriginError::Timeout { .. }) => "timeout",
            Err(OriginError::BadResponse { .. }) => "bad_response",
            Err(OriginError::Tls { .. }) => "tls_error",
        };
        self.origin_requests
            .get_or_create(&OriginLabels {
                distribution: distribution.to_string(),
                origin: origin.to_string(),
                outcome,
            })
            .inc();
        if result.is_ok() {
            self.origin_latency
                .get_or_create(&DistLabels {
                    distribution: distribution.to_string(),
                })
                .observe(elapsed.as_secs_f64());
        }
    }

    /// A viewer followed a fill someone else started.
    pub fn collapsed(&self) {
        self.collapsed.inc();
    }

    /// The exposition, with the store's and the fills' values as of now.
    pub fn render(&self, store: StoreStats, fills_in_flight: usize) -> String {
        let mut out = String::new();
        let mut snap = self.scrape.lock().unwrap_or_else(|p| p.into_inner());
        snap.store = Some(store);
        snap.fills_in_flight = fills_in_flight as u64;
        drop(snap);
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        classic_counter_names(&out)
    }
}

/// prometheus-client writes OpenMetrics, where a counter family `x` has samples `x_total`;
/// the classic text format (what promtool lints, `text/plain; version=0.0.4`) names the
/// family after its samples. Renaming the counter families in their HELP and TYPE lines
/// is the only difference that matters: OpenMetrics' `# UNIT` and `# EOF` lines are
/// comments in the classic format.
fn classic_counter_names(text: &str) -> String {
    let counters: HashSet<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(text.len() + 16 * counters.len());
    for line in text.lines() {
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|p| {
            let (name, tail) = line.strip_prefix(p)?.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{p}{name}_total {tail}"))
        });
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_render_counters_and_histogram() {
        let m = Metrics::new();
        m.request("d1", ResultType::Miss, 10);
        m.request("d1", ResultType::Hit, 5);
        m.request("d1", ResultType::Hit, 5);
        m.collapsed();
        m.refused(Refusal::BodyTooLarge);
        m.panicked(PanicSite::Fill);
        let conns = m.connections();
        conns.opened();
        conns.opened();
        conns.closed();
        conns.rejected();
        conns.request_limit_reached();
        conns.protocol_error(ProtocolError::HeaderTimeout);
        let ok: Result<http::Response<()>, OriginError> = Ok(http::Response::new(()));
        m.origin("d1", "o1", &ok, Duration::from_millis(3));
        let err: Result<http::Response<()>, OriginError> = Err(OriginError::Timeout {
            origin: "o1".into(),
            after: Duration::from_secs(1),
        });
        m.origin("d1", "o1", &err, Duration::from_secs(1));
        let text = m.render(
            StoreStats {
                objects: 3,
                ..StoreStats::default()
            },
            2,
        );
        for line in [
            "cairn_requests_total{distribution=\"d1\",result=\"Hit\"} 2",
            "cairn_requests_total{distribution=\"d1\",result=\"Miss\"} 1",
            "cairn_response_bytes_total{distribution=\"d1\"} 20",
            "cairn_origin_requests_total{distribution=\"d1\",origin=\"o1\",outcome=\"2xx\"} 1",
            "cairn_origin_requests_total{distribution=\"d1\",origin=\"o1\",outcome=\"timeout\"} 1",
            "cairn_origin_latency_seconds_count{distribution=\"d1\"} 1",
            "cairn_collapsed_requests_total 1",
            "cairn_viewer_requests_refused_total{reason=\"body_too_large\"} 1",
            "cairn_panics_total{site=\"fill\"} 1",
            "cairn_viewer_connections_open 1",
            "cairn_viewer_connections_rejected_total 1",
            "cairn_viewer_connections_request_limit_total 1",
            "cairn_viewer_protocol_errors_total{kind=\"header_timeout\"} 1",
            "# HELP cairn_viewer_protocol_errors_total Viewer connections",
            "cairn_fills_in_flight 2",
            "cairn_store_objects 3",
            "cairn_store_expired_total 0",
            "cairn_store_lost_segments_total 0",
            "cairn_store_index_rebuilds_total 0",
            "cairn_store_disk_full_refusals_total 0",
            "cairn_store_over_capacity_refusals_total 0",
            "cairn_build_info{version=\"",
            "# TYPE cairn_requests_total counter",
            "# HELP cairn_requests_total Viewer requests",
            "# TYPE cairn_origin_latency_seconds histogram",
        ] {
            assert!(text.contains(line), "missing {line:?} in:\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
    }
}
