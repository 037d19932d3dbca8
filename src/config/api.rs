//! Distributions given through the admin API, as JSON with the same field names, forms and
//! rules as a `[[distribution]]` block of a file (`origin`, `default_behavior`, `behavior`,
//! …): each body is turned into a TOML table and walked and built by the same code as a
//! file, so a problem reads the same (`field.path: message`) whichever way the
//! distribution came, and ids and host names are unique across both sources. The way back,
//! [`settings_of`], writes a validated distribution as such a body, every default spelled
//! out, so that what `GET /distributions/{id}` shows can be sent back as it is.

use std::path::Path;

use serde_json::{json, Map, Value};

use super::build::build;
use super::load::walk_distribution;
use super::model::*;
use super::problem::{ConfigErrors, Pos, Problems};
use super::raw::RawConfig;

/// A distribution the admin API holds: its settings, as created or last updated (the id
/// filled in when it was generated).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiDistribution {
    pub id: String,
    pub settings: Value,
}

/// The source name of an API distribution's problems.
fn source_of(id: &str) -> String {
    format!("the API's distribution {id:?}")
}

/// The path of the first `null` in `v` (TOML has none: a field is given or left out).
fn find_null(v: &Value, path: &str) -> Option<String> {
    let at = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    match v {
        Value::Null => Some(path.to_string()),
        Value::Object(m) => m.iter().find_map(|(k, v)| find_null(v, &at(k))),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .find_map(|(i, v)| find_null(v, &format!("{path}[{i}]"))),
        _ => None,
    }
}

/// The body as TOML text whose root table is the distribution, or why it cannot be.
fn to_toml(settings: &Value) -> Result<String, (String, String)> {
    if !settings.is_object() {
        let why = "the distribution's settings must be a JSON object".to_string();
        return Err((String::new(), why));
    }
    if let Some(path) = find_null(settings, "") {
        let why = "null is not a value: leave the field out for its default".to_string();
        return Err((path, why));
    }
    let table = toml::Value::try_from(settings).map_err(|e| (String::new(), e.to_string()))?;
    toml::to_string(&table).map_err(|e| (String::new(), e.to_string()))
}

/// The raw distribution of one body, its problems reported under `source`.
fn raw_of(settings: &Value, source: &str, p: &mut Problems) -> Option<super::raw::RawDistribution> {
    match to_toml(settings) {
        Ok(text) => walk_distribution(&text, source, p),
        Err((path, why)) => {
            p.add(&Pos::flag(source), &path, why);
            None
        }
    }
}

/// Appends the API's distributions to a configuration's, to be built with them.
pub(crate) fn add_raw(raw: &mut RawConfig, api: &[ApiDistribution], p: &mut Problems) {
    for d in api {
        if let Some(r) = raw_of(&d.settings, &source_of(&d.id), p) {
            raw.distributions.push(r);
        }
    }
}

/// Checks one body alone (the fields of a create or update): the distribution it makes
/// (its id generated when it has none, as for a file), or every problem, with paths
/// relative to the body. Relative paths in it are resolved against `base_dir`. Whether
/// its id and host names are free is for the caller to check against the others.
pub fn check_distribution(settings: &Value, base_dir: &Path) -> Result<Distribution, ConfigErrors> {
    let source = "the request body";
    let mut p = Problems::default();
    let mut raw = RawConfig {
        pos: Pos::flag(source),
        ..RawConfig::default()
    };
    if let Some(d) = raw_of(settings, source, &mut p) {
        raw.distributions.push(d);
    }
    let config = build(raw, base_dir, &mut p);
    match config.distributions.into_iter().next() {
        Some(d) if p.is_empty() => Ok(d),
        _ => Err(p.into_errors()),
    }
}

/// A validated distribution as the settings of a body, every default spelled out.
pub fn settings_of(d: &Distribution) -> Value {
    json!({
        "id": d.id,
        "aliases": d.aliases,
        "enabled": d.enabled,
        "comment": d.comment,
        "catch_all": d.catch_all,
        "default_root_object": d.default_root_object,
        "logging": { "enabled": d.logging.enabled, "file": d.logging.file },
        "origin": d.origins.iter().map(origin_settings).collect::<Vec<_>>(),
        "origin_group": d.origin_groups.iter().map(|g| json!({
            "id": g.id,
            "members": g.members,
            "failover_statuses": g.failover_statuses,
        })).collect::<Vec<_>>(),
        "default_behavior": behavior_settings(&d.default_behavior),
        "behavior": d.behaviors.iter().map(behavior_settings).collect::<Vec<_>>(),
    })
    .as_object()
    .map(without_nulls)
    .unwrap_or_default()
}

/// Left out instead of null (no default root object, no CA file).
fn without_nulls(m: &Map<String, Value>) -> Value {
    Value::Object(
        m.iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| {
                let v = match v {
                    Value::Object(inner) => without_nulls(inner),
                    Value::Array(a) => Value::Array(
                        a.iter()
                            .map(|x| x.as_object().map_or(x.clone(), without_nulls))
                            .collect(),
                    ),
                    other => other.clone(),
                };
                (k.clone(), v)
            })
            .collect(),
    )
}

fn origin_settings(o: &Origin) -> Value {
    let headers: Map<String, Value> = o
        .headers
        .iter()
        .map(|(n, v)| (n.clone(), json!(v)))
        .collect();
    json!({
        "id": o.id,
        "type": o.kind.as_str(),
        "url": o.base_url(),
        // An empty prefix is written by leaving it out.
        "path": (!o.path.is_empty()).then_some(&o.path),
        "headers": headers,
        "connect_timeout": o.connect_timeout.as_secs(),
        "connect_attempts": o.connect_attempts,
        "response_timeout": o.response_timeout.as_secs(),
        "keepalive_timeout": o.keepalive_timeout.as_secs(),
        "ca_file": o.ca_file,
    })
}

fn list_settings(l: &ListPolicy) -> Value {
    match l {
        ListPolicy::None => json!("none"),
        ListPolicy::All => json!("all"),
        ListPolicy::AllowList(n) => json!({ "allow": n }),
        ListPolicy::AllExcept(n) => json!({ "all_except": n }),
    }
}

fn header_settings(h: &HeaderPolicy) -> Value {
    match h {
        HeaderPolicy::None => json!("none"),
        HeaderPolicy::All => json!("all"),
        HeaderPolicy::AllViewer => json!("all_viewer"),
        HeaderPolicy::AllowList(n) => json!({ "allow": n }),
        HeaderPolicy::AllExcept(n) => json!({ "all_except": n }),
    }
}

fn behavior_settings(b: &Behavior) -> Value {
    let error_ttls: Map<String, Value> = b
        .error_ttls
        .iter()
        .map(|(s, t)| (s.to_string(), json!(t)))
        .collect();
    let methods: Vec<&str> = b.allowed_methods.allow_header().split(", ").collect();
    json!({
        "path_pattern": b.path_pattern,
        "target": b.target,
        "default_ttl": b.default_ttl,
        "min_ttl": b.min_ttl,
        "max_ttl": b.max_ttl,
        "allowed_methods": methods,
        "cache_key": {
            "query_strings": list_settings(&b.cache_key.query_strings),
            "headers": b.cache_key.headers,
            "cookies": list_settings(&b.cache_key.cookies),
        },
        "origin_request": {
            "headers": header_settings(&b.origin_request.headers),
            "cookies": list_settings(&b.origin_request.cookies),
            "query_strings": list_settings(&b.origin_request.query_strings),
        },
        "error_ttl": b.error_ttl,
        "error_ttls": error_ttls,
        "range_fill_max": b.range_fill_max,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../cairn.example.toml");

    #[test]
    fn every_distribution_of_the_example_round_trips_through_its_settings() {
        let c = super::super::load_str(EXAMPLE, "t.toml", Path::new("/etc/cairn")).unwrap();
        for d in &c.distributions {
            let settings = settings_of(d);
            let back = check_distribution(&settings, Path::new("/elsewhere"))
                .unwrap_or_else(|e| panic!("{e}\n{settings:#}"));
            assert_eq!(&back, d, "{settings:#}");
        }
    }

    #[test]
    fn problems_name_the_field_relative_to_the_body() {
        let body = json!({
            "id": "Bad Id",
            "origin": [{ "url": "ftp://x" }],
            "default_behavior": { "default_ttl": 1.5, "cache_key": { "headers": ["cookie"] } },
            "surprise": true,
        });
        let e = check_distribution(&body, Path::new("/")).unwrap_err();
        let found: Vec<(String, usize)> = e
            .problems
            .iter()
            .map(|p| (p.path.clone(), p.line))
            .collect();
        for path in [
            "id",
            "origin[0].url",
            "default_behavior.default_ttl",
            "default_behavior.cache_key.headers[0]",
            "surprise",
        ] {
            assert!(
                found.iter().any(|(p, line)| p == path && *line == 0),
                "{path} in {e}"
            );
        }
        assert!(
            e.to_string()
                .contains("the request body: surprise: unknown key"),
            "{e}"
        );
        let e =
            check_distribution(&json!({"origin": [{"url": null}]}), Path::new("/")).unwrap_err();
        assert_eq!(e.problems[0].path, "origin[0].url");
        assert!(e.problems[0].message.contains("null"), "{e}");
        let e = check_distribution(&json!([1, 2]), Path::new("/")).unwrap_err();
        assert!(e.to_string().contains("must be a JSON object"), "{e}");
    }

    #[test]
    fn a_generated_id_is_the_same_as_a_file_would_get() {
        let body = json!({ "aliases": ["www.example.org"], "origin": [{ "url": "http://o:1" }] });
        let d = check_distribution(&body, Path::new("/")).unwrap();
        let text = "[[distribution]]\naliases = [\"www.example.org\"]\n[[distribution.origin]]\nurl = \"http://o:1\"\n";
        let c = super::super::load_str(text, "t.toml", Path::new("/")).unwrap();
        assert_eq!(d.id, c.distributions[0].id);
        assert!(d.id.starts_with('d'));
    }

    #[test]
    fn api_distributions_are_checked_against_the_file_s() {
        let text = "[[distribution]]\nid = \"site\"\naliases = [\"a.example\"]\n[[distribution.origin]]\nurl = \"http://o:1\"\n";
        let api = [ApiDistribution {
            id: "other".into(),
            settings: json!({ "id": "other", "aliases": ["a.example"], "origin": [{ "url": "http://o:2" }] }),
        }];
        let e = super::super::load_str_with(text, "t.toml", Path::new("/"), &api).unwrap_err();
        let shown = e.to_string();
        assert!(
            shown.contains("\"a.example\" is claimed twice")
                && shown.contains("(distribution[0], line 2)")
                && shown.contains("from the API's distribution \"other\""),
            "{shown}"
        );
        let fine = [ApiDistribution {
            id: "other".into(),
            settings: json!({ "id": "other", "origin": [{ "url": "http://o:2" }] }),
        }];
        let c = super::super::load_str_with(text, "t.toml", Path::new("/"), &fine).unwrap();
        assert_eq!(c.distributions.len(), 2);
    }
}
