//! The command line's client of the admin API: one JSON request, bounded in time, with the
//! bearer token and `If-Match` when given; the answer's status, JSON and ETag.

use anyhow::Context;
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// How long one request may take.
const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// One request.
pub struct Call<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub token: Option<&'a str>,
    pub body: Option<serde_json::Value>,
    pub if_match: Option<&'a str>,
}

/// Its answer.
pub struct Answer {
    pub status: http::StatusCode,
    pub json: serde_json::Value,
    pub etag: Option<String>,
}

impl Answer {
    /// The API's message for a refused request.
    pub fn message(&self) -> String {
        let text = |k: &str| self.json.get(k).and_then(|v| v.as_str());
        match (text("error"), text("message")) {
            (Some(code), Some(msg)) => format!("{}: {code}: {msg}", self.status),
            (Some(msg), None) | (None, Some(msg)) => format!("{}: {msg}", self.status),
            (None, None) => format!("{}: request failed", self.status),
        }
    }
}

/// Sends `call` to the admin API at `base` (`http://HOST:PORT`).
pub async fn send(base: &str, call: Call<'_>) -> anyhow::Result<Answer> {
    let url = format!("{}{}", base.trim_end_matches('/'), call.path);
    let uri: http::Uri = url
        .parse()
        .with_context(|| format!("bad admin URL {url}"))?;
    if uri.scheme_str() != Some("http") {
        anyhow::bail!("the admin URL must be http://HOST:PORT (got {base})");
    }
    let client: Client<_, http_body_util::Full<bytes::Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let mut req = http::Request::builder()
        .method(call.method)
        .uri(uri)
        .header(http::header::CONTENT_TYPE, "application/json");
    if let Some(t) = call.token {
        req = req.header(http::header::AUTHORIZATION, format!("Bearer {t}"));
    }
    if let Some(tag) = call.if_match {
        req = req.header(http::header::IF_MATCH, tag);
    }
    let body = call.body.map(|b| b.to_string()).unwrap_or_default();
    let req = req.body(http_body_util::Full::new(bytes::Bytes::from(body)))?;
    let exchange = async {
        let resp = client.request(req).await?;
        let status = resp.status();
        let etag = resp
            .headers()
            .get(http::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = resp.into_body().collect().await?.to_bytes();
        anyhow::Ok((status, etag, bytes))
    };
    let (status, etag, bytes) = tokio::time::timeout(TIMEOUT, exchange)
        .await
        .map_err(|_| anyhow::anyhow!("{url}: no answer within {} s", TIMEOUT.as_secs()))?
        .with_context(|| format!("{} {url}", call.method))?;
    let json = if bytes.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(
            |_| serde_json::json!({ "error": String::from_utf8_lossy(&bytes).trim().to_string() }),
        )
    };
    Ok(Answer { status, json, etag })
}
