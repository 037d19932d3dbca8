//! Loading a configuration file: [`load_file`] and [`load_str`] parse TOML with
//! `toml_edit` (which keeps byte spans), walk the tree into the raw structs with the line
//! and column of every key and value, refuse unknown keys and wrong types, and hand the
//! result to `build` for the value rules. Every problem is collected; none stops the walk.

use std::ops::Range;
use std::path::{Path, PathBuf};

use toml_edit::{Item, TableLike, Value};

use super::api::ApiDistribution;
use super::build::build;
use super::check;
use super::model::Config;
use super::problem::{At, ConfigErrors, Locator, Pos, Problems};
use super::raw::*;
use super::size::parse_size;

/// Reads and validates the configuration file at `path`. Relative paths inside it (cache
/// directory, log files, CA files) are resolved against the file's directory.
pub fn load_file(path: &Path) -> Result<Config, ConfigErrors> {
    load_file_with(path, &[])
}

/// [`load_file`] together with the distributions the admin API holds (validated by the same
/// rules, across both sources: ids and host names are unique over all of them).
pub fn load_file_with(path: &Path, api: &[ApiDistribution]) -> Result<Config, ConfigErrors> {
    let source = path.display().to_string();
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            let mut p = Problems::default();
            p.add(
                &Pos::flag(&source),
                "",
                format!("cannot read the configuration: {e}"),
            );
            return Err(p.into_errors());
        }
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    // Absolute, so that the paths in the model do not depend on a later working directory.
    let dir = if dir.is_absolute() {
        dir
    } else {
        match std::env::current_dir() {
            Ok(cwd) => super::build::resolve(&cwd, &dir),
            Err(_) => dir,
        }
    };
    load_str_with(&text, &source, &dir, api)
}

/// Validates configuration `text`; `source_name` labels problems and `base_dir` anchors
/// relative paths.
pub fn load_str(text: &str, source_name: &str, base_dir: &Path) -> Result<Config, ConfigErrors> {
    load_str_with(text, source_name, base_dir, &[])
}

/// [`load_str`] together with the admin API's distributions.
pub fn load_str_with(
    text: &str,
    source_name: &str,
    base_dir: &Path,
    api: &[ApiDistribution],
) -> Result<Config, ConfigErrors> {
    let loc = Locator::new(source_name, text);
    let mut problems = Problems::default();
    let doc = match toml_edit::Document::parse(text) {
        Ok(doc) => doc,
        Err(e) => {
            let pos = match e.span() {
                Some(r) => loc.pos(r.start),
                None => loc.pos(0),
            };
            let msg = e.message().trim().replace('\n', "; ");
            problems.add(&pos, "", format!("TOML syntax error: {msg}"));
            return Err(problems.into_errors());
        }
    };
    let mut w = Walker {
        loc: &loc,
        problems: &mut problems,
    };
    let mut raw = w.root(doc.as_table());
    super::api::add_raw(&mut raw, api, &mut problems);
    let config = build(raw, base_dir, &mut problems);
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(problems.into_errors())
    }
}

/// Walks a TOML document whose root table is one distribution, with key paths relative to
/// it (an admin API body, turned into TOML); None when it does not parse (reported).
pub(crate) fn walk_distribution(
    text: &str,
    source: &str,
    problems: &mut Problems,
) -> Option<RawDistribution> {
    let loc = Locator::flat(source, text);
    let doc = match toml_edit::Document::parse(text) {
        Ok(doc) => doc,
        Err(e) => {
            let msg = e.message().trim().replace('\n', "; ");
            problems.add(&Pos::flag(source), "", format!("not a distribution: {msg}"));
            return None;
        }
    };
    let mut w = Walker {
        loc: &loc,
        problems,
    };
    Some(w.distribution(doc.as_table(), Pos::flag(source), String::new()))
}

const ROOT_KEYS: &[&str] = &["edge", "cache", "control", "distribution"];
const CONTROL_KEYS: &[&str] = &["state_dir"];
const EDGE_KEYS: &[&str] = &[
    "name",
    "domain",
    "listen",
    "admin_listen",
    "admin_token",
    "drain_timeout",
    "header_read_timeout",
    "max_connections",
    "max_requests_per_connection",
    "max_request_body",
];
const CACHE_KEYS: &[&str] = &[
    "dir",
    "capacity",
    "segment_size",
    "stale_grace",
    "max_object_size",
    "min_free_disk",
];
const DISTRIBUTION_KEYS: &[&str] = &[
    "id",
    "aliases",
    "enabled",
    "comment",
    "default_root_object",
    "catch_all",
    "logging",
    "origin",
    "origin_group",
    "default_behavior",
    "behavior",
];
const LOGGING_KEYS: &[&str] = &["enabled", "file"];
const ORIGIN_KEYS: &[&str] = &[
    "id",
    "type",
    "url",
    "path",
    "headers",
    "connect_timeout",
    "connect_attempts",
    "response_timeout",
    "keepalive_timeout",
    "ca_file",
];
const GROUP_KEYS: &[&str] = &["id", "members", "failover_statuses"];
const DEFAULT_BEHAVIOR_KEYS: &[&str] = &[
    "target",
    "default_ttl",
    "min_ttl",
    "max_ttl",
    "allowed_methods",
    "cache_key",
    "origin_request",
    "error_ttl",
    "error_ttls",
    "range_fill_max",
];
const BEHAVIOR_KEYS: &[&str] = &[
    "path_pattern",
    "target",
    "default_ttl",
    "min_ttl",
    "max_ttl",
    "allowed_methods",
    "cache_key",
    "origin_request",
    "error_ttl",
    "error_ttls",
    "range_fill_max",
];
const CACHE_KEY_KEYS: &[&str] = &["managed", "query_strings", "headers", "cookies"];
const ORIGIN_REQUEST_KEYS: &[&str] = &["managed", "headers", "cookies", "query_strings"];
const LIST_KEYS: &[&str] = &["allow", "all_except"];

type Tab<'i> = &'i dyn TableLike;

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// "an integer", "a string" …, for type mismatch messages.
fn a(item: &Item) -> String {
    a_type(item.type_name())
}

fn a_type(t: &str) -> String {
    let article = if t.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {t}")
}

/// Levenshtein distance, for "did you mean" hints on unknown keys.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

struct Walker<'a, 'p> {
    loc: &'a Locator<'a>,
    problems: &'p mut Problems,
}

impl Walker<'_, '_> {
    fn at(&self, span: Option<Range<usize>>, fallback: &Pos) -> Pos {
        match span {
            Some(r) => self.loc.pos(r.start),
            None => fallback.clone(),
        }
    }

    fn key_pos(&self, t: Tab, key: &str, fallback: &Pos) -> Pos {
        self.at(t.key(key).and_then(|k| k.span()), fallback)
    }

    /// Where a value is written: the value, else its key, else the table.
    fn value_pos(&self, t: Tab, key: &str, item: &Item, fallback: &Pos) -> Pos {
        match item.span() {
            Some(r) => self.loc.pos(r.start),
            None => self.key_pos(t, key, fallback),
        }
    }

    fn keys(&mut self, t: Tab, path: &str, fallback: &Pos, accepted: &[&str]) {
        for (key, _) in t.iter() {
            if accepted.contains(&key) {
                continue;
            }
            let pos = self.key_pos(t, key, fallback);
            let hint = accepted
                .iter()
                .map(|k| (distance(key, k), k))
                .filter(|(d, k)| *d <= 2 || k.starts_with(key) || key.starts_with(*k))
                .min();
            let hint = match hint {
                Some((_, k)) => format!("did you mean `{k}`? "),
                None => String::new(),
            };
            self.problems.add(
                &pos,
                &join(path, key),
                format!(
                    "unknown key `{key}`; {hint}accepted keys here: {}",
                    accepted.join(", ")
                ),
            );
        }
    }

    fn mismatch(&mut self, t: Tab, key: &str, item: &Item, path: &str, fallback: &Pos, want: &str) {
        let pos = self.value_pos(t, key, item, fallback);
        self.problems.add(
            &pos,
            &join(path, key),
            format!("expected {want}, found {}", a(item)),
        );
    }

    /// A sub-table (standard, inline or dotted) and its position.
    fn table<'i>(
        &mut self,
        t: Tab<'i>,
        key: &str,
        path: &str,
        fallback: &Pos,
    ) -> Option<(Tab<'i>, Pos)> {
        let item = t.get(key)?;
        match item.as_table_like() {
            Some(sub) => Some((sub, self.value_pos(t, key, item, fallback))),
            None => {
                self.mismatch(
                    t,
                    key,
                    item,
                    path,
                    fallback,
                    &format!("a table ([{key}] or {{ … }})"),
                );
                None
            }
        }
    }

    /// `[[key]]` tables, or an array of inline tables, each with its position.
    fn tables<'i>(
        &mut self,
        t: Tab<'i>,
        key: &str,
        path: &str,
        fallback: &Pos,
    ) -> Vec<(Tab<'i>, Pos)> {
        let Some(item) = t.get(key) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        match item {
            Item::ArrayOfTables(aot) => {
                for table in aot.iter() {
                    out.push((table as Tab<'i>, self.at(table.span(), fallback)));
                }
            }
            Item::Value(Value::Array(arr)) => {
                for (i, v) in arr.iter().enumerate() {
                    let pos = self.at(v.span(), fallback);
                    match v.as_inline_table() {
                        Some(it) => out.push((it as Tab<'i>, pos)),
                        None => self.problems.add(
                            &pos,
                            &format!("{}[{i}]", join(path, key)),
                            format!("expected a table, found {}", a_type(v.type_name())),
                        ),
                    }
                }
            }
            other => {
                let leaf = key.rsplit('.').next().unwrap_or(key);
                self.mismatch(
                    t,
                    key,
                    other,
                    path,
                    fallback,
                    &format!(
                        "an array of tables (write [[{}]] for each)",
                        join_header(path, leaf)
                    ),
                );
            }
        }
        out
    }

    fn string(&mut self, t: Tab, key: &str, path: &str, fallback: &Pos) -> Field<String> {
        let item = t.get(key)?;
        match item.as_str() {
            Some(s) => Some(At::new(
                s.to_string(),
                self.value_pos(t, key, item, fallback),
            )),
            None => {
                self.mismatch(t, key, item, path, fallback, "a string");
                None
            }
        }
    }

    fn path(&mut self, t: Tab, key: &str, path: &str, fallback: &Pos) -> Field<PathBuf> {
        let s = self.string(t, key, path, fallback)?;
        if s.value.is_empty() {
            self.problems
                .add(&s.pos, &join(path, key), "must not be empty");
            return None;
        }
        Some(At::new(PathBuf::from(s.value), s.pos))
    }

    fn boolean(&mut self, t: Tab, key: &str, path: &str, fallback: &Pos) -> Field<bool> {
        let item = t.get(key)?;
        match item.as_bool() {
            Some(b) => Some(At::new(b, self.value_pos(t, key, item, fallback))),
            None => {
                self.mismatch(t, key, item, path, fallback, "true or false");
                None
            }
        }
    }

    fn integer(&mut self, t: Tab, key: &str, path: &str, fallback: &Pos) -> Field<i64> {
        let item = t.get(key)?;
        match item.as_integer() {
            Some(n) => Some(At::new(n, self.value_pos(t, key, item, fallback))),
            None => {
                self.mismatch(t, key, item, path, fallback, "an integer");
                None
            }
        }
    }

    /// A count or a number of seconds.
    fn unsigned(&mut self, t: Tab, key: &str, path: &str, fallback: &Pos) -> Field<u64> {
        let n = self.integer(t, key, path, fallback)?;
        match u64::try_from(n.value) {
            Ok(v) => Some(At::new(v, n.pos)),
            Err(_) => {
                self.problems.add(
                    &n.pos,
                    &join(path, key),
                    format!("must not be negative (got {})", n.value),
                );
                None
            }
        }
    }

    /// Bytes: an integer, or a string such as "10GiB".
    fn size(&mut self, t: Tab, key: &str, path: &str, fallback: &Pos) -> Field<u64> {
        let item = t.get(key)?;
        let pos = self.value_pos(t, key, item, fallback);
        if let Some(s) = item.as_str() {
            return match parse_size(s) {
                Ok(v) => Some(At::new(v, pos)),
                Err(e) => {
                    self.problems.add(&pos, &join(path, key), e);
                    None
                }
            };
        }
        if item.as_integer().is_some() {
            return self.unsigned(t, key, path, fallback);
        }
        self.mismatch(
            t,
            key,
            item,
            path,
            fallback,
            "a size (bytes, or a string such as \"10GiB\")",
        );
        None
    }

    fn socket_addr(
        &mut self,
        t: Tab,
        key: &str,
        path: &str,
        fallback: &Pos,
    ) -> Field<std::net::SocketAddr> {
        let s = self.string(t, key, path, fallback)?;
        match check::socket_addr(&s.value) {
            Ok(a) => Some(At::new(a, s.pos)),
            Err(e) => {
                self.problems.add(&s.pos, &join(path, key), e);
                None
            }
        }
    }

    fn strings(&mut self, t: Tab, key: &str, path: &str, fallback: &Pos) -> Field<Vec<At<String>>> {
        let item = t.get(key)?;
        let pos = self.value_pos(t, key, item, fallback);
        let Some(arr) = item.as_array() else {
            self.mismatch(t, key, item, path, fallback, "an array of strings");
            return None;
        };
        let mut out = Vec::new();
        for (i, v) in arr.iter().enumerate() {
            let vpos = self.at(v.span(), &pos);
            match v.as_str() {
                Some(s) => out.push(At::new(s.to_string(), vpos)),
                None => self.problems.add(
                    &vpos,
                    &format!("{}[{i}]", join(path, key)),
                    format!("expected a string, found {}", a_type(v.type_name())),
                ),
            }
        }
        Some(At::new(out, pos))
    }

    fn integers(&mut self, t: Tab, key: &str, path: &str, fallback: &Pos) -> Vec<At<i64>> {
        let Some(item) = t.get(key) else {
            return Vec::new();
        };
        let pos = self.value_pos(t, key, item, fallback);
        let Some(arr) = item.as_array() else {
            self.mismatch(t, key, item, path, fallback, "an array of integers");
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, v) in arr.iter().enumerate() {
            let vpos = self.at(v.span(), &pos);
            match v.as_integer() {
                Some(n) => out.push(At::new(n, vpos)),
                None => self.problems.add(
                    &vpos,
                    &format!("{}[{i}]", join(path, key)),
                    format!("expected an integer, found {}", a_type(v.type_name())),
                ),
            }
        }
        out
    }

    /// "none" | "all" | { allow = [..] } | { all_except = [..] }, and with `all_viewer`
    /// also "all_viewer" (origin request headers).
    fn list_policy(
        &mut self,
        t: Tab,
        key: &str,
        path: &str,
        fallback: &Pos,
        all_viewer: bool,
    ) -> Field<RawList> {
        let forms = if all_viewer {
            "\"none\", \"all\", \"all_viewer\", { allow = [...] } or { all_except = [...] }"
        } else {
            "\"none\", \"all\", { allow = [...] } or { all_except = [...] }"
        };
        let item = t.get(key)?;
        let pos = self.value_pos(t, key, item, fallback);
        let here = join(path, key);
        if let Some(s) = item.as_str() {
            return match s {
                "none" => Some(At::new(RawList::None, pos)),
                "all" => Some(At::new(RawList::All, pos)),
                "all_viewer" if all_viewer => Some(At::new(RawList::AllViewer, pos)),
                other => {
                    self.problems
                        .add(&pos, &here, format!("{other:?} is not one of {forms}"));
                    None
                }
            };
        }
        let Some(sub) = item.as_table_like() else {
            self.mismatch(t, key, item, path, fallback, forms);
            return None;
        };
        self.keys(sub, &here, &pos, LIST_KEYS);
        let allow = self.strings(sub, "allow", &here, &pos);
        let except = self.strings(sub, "all_except", &here, &pos);
        match (allow, except) {
            (Some(list), None) => Some(At::new(RawList::Allow(list), pos)),
            (None, Some(list)) => Some(At::new(RawList::AllExcept(list), pos)),
            (Some(_), Some(_)) => {
                self.problems
                    .add(&pos, &here, "give either `allow` or `all_except`, not both");
                None
            }
            (None, None) => {
                // Unknown keys were already reported; an empty table was not.
                if sub.is_empty() {
                    self.problems.add(&pos, &here, format!("expected {forms}"));
                }
                None
            }
        }
    }

    fn root(&mut self, root: Tab) -> RawConfig {
        let top = self.loc.pos(0);
        self.keys(root, "", &top, ROOT_KEYS);
        let mut raw = RawConfig {
            pos: top.clone(),
            ..RawConfig::default()
        };
        if let Some((t, pos)) = self.table(root, "edge", "", &top) {
            raw.edge = self.edge(t, &pos);
        }
        if let Some((t, pos)) = self.table(root, "cache", "", &top) {
            raw.cache = self.cache(t, &pos);
        }
        if let Some((t, pos)) = self.table(root, "control", "", &top) {
            self.keys(t, "control", &pos, CONTROL_KEYS);
            raw.control = RawControl {
                state_dir: self.path(t, "state_dir", "control", &pos),
            };
        }
        raw.distributions_malformed = root
            .get("distribution")
            .is_some_and(|d| !d.is_array_of_tables() && !d.is_array());
        for (i, (t, pos)) in self
            .tables(root, "distribution", "", &top)
            .into_iter()
            .enumerate()
        {
            let d = self.distribution(t, pos, format!("distribution[{i}]"));
            raw.distributions.push(d);
        }
        raw
    }

    fn edge(&mut self, t: Tab, pos: &Pos) -> RawEdge {
        let p = "edge";
        self.keys(t, p, pos, EDGE_KEYS);
        RawEdge {
            name: self.string(t, "name", p, pos),
            domain: self.string(t, "domain", p, pos),
            listen: self.socket_addr(t, "listen", p, pos),
            admin_listen: self.socket_addr(t, "admin_listen", p, pos),
            admin_token: self.string(t, "admin_token", p, pos),
            drain_timeout: self.unsigned(t, "drain_timeout", p, pos),
            header_read_timeout: self.unsigned(t, "header_read_timeout", p, pos),
            max_connections: self.unsigned(t, "max_connections", p, pos),
            max_requests_per_connection: self.unsigned(t, "max_requests_per_connection", p, pos),
            max_request_body: self.size(t, "max_request_body", p, pos),
        }
    }

    fn cache(&mut self, t: Tab, pos: &Pos) -> RawCache {
        let p = "cache";
        self.keys(t, p, pos, CACHE_KEYS);
        RawCache {
            dir: self.path(t, "dir", p, pos),
            capacity: self.size(t, "capacity", p, pos),
            segment_size: self.size(t, "segment_size", p, pos),
            stale_grace: self.unsigned(t, "stale_grace", p, pos),
            max_object_size: self.size(t, "max_object_size", p, pos),
            min_free_disk: self.size(t, "min_free_disk", p, pos),
        }
    }

    fn distribution(&mut self, t: Tab, pos: Pos, path: String) -> RawDistribution {
        let p = path.as_str();
        self.keys(t, p, &pos, DISTRIBUTION_KEYS);
        let mut d = RawDistribution {
            id: self.string(t, "id", p, &pos),
            aliases: self
                .strings(t, "aliases", p, &pos)
                .map(|a| a.value)
                .unwrap_or_default(),
            enabled: self.boolean(t, "enabled", p, &pos),
            comment: self.string(t, "comment", p, &pos),
            default_root_object: self.string(t, "default_root_object", p, &pos),
            catch_all: self.boolean(t, "catch_all", p, &pos),
            ..RawDistribution::default()
        };
        if let Some((lt, lpos)) = self.table(t, "logging", p, &pos) {
            let lp = join(p, "logging");
            self.keys(lt, &lp, &lpos, LOGGING_KEYS);
            d.logging = RawLogging {
                enabled: self.boolean(lt, "enabled", &lp, &lpos),
                file: self.path(lt, "file", &lp, &lpos),
            };
        }
        for (i, (ot, opos)) in self.tables(t, "origin", p, &pos).into_iter().enumerate() {
            let o = self.origin(ot, opos, format!("{}[{i}]", join(p, "origin")));
            d.origins.push(o);
        }
        for (i, (gt, gpos)) in self
            .tables(t, "origin_group", p, &pos)
            .into_iter()
            .enumerate()
        {
            let gp = format!("{}[{i}]", join(p, "origin_group"));
            self.keys(gt, &gp, &gpos, GROUP_KEYS);
            d.groups.push(RawGroup {
                id: self.string(gt, "id", &gp, &gpos),
                members: self.strings(gt, "members", &gp, &gpos),
                failover_statuses: self.integers(gt, "failover_statuses", &gp, &gpos),
                path: gp,
                pos: gpos,
            });
        }
        d.default_behavior = match self.table(t, "default_behavior", p, &pos) {
            Some((bt, bpos)) => self.behavior(bt, bpos, join(p, "default_behavior"), false),
            None => RawBehavior {
                path: join(p, "default_behavior"),
                pos: pos.clone(),
                ..RawBehavior::default()
            },
        };
        for (i, (bt, bpos)) in self.tables(t, "behavior", p, &pos).into_iter().enumerate() {
            let b = self.behavior(bt, bpos, format!("{}[{i}]", join(p, "behavior")), true);
            d.behaviors.push(b);
        }
        d.path = path;
        d.pos = pos;
        d
    }

    fn origin(&mut self, t: Tab, pos: Pos, path: String) -> RawOrigin {
        let p = path.as_str();
        self.keys(t, p, &pos, ORIGIN_KEYS);
        let mut o = RawOrigin {
            id: self.string(t, "id", p, &pos),
            kind: self.string(t, "type", p, &pos),
            url: self.string(t, "url", p, &pos),
            path_prefix: self.string(t, "path", p, &pos),
            connect_timeout: self.unsigned(t, "connect_timeout", p, &pos),
            connect_attempts: self.unsigned(t, "connect_attempts", p, &pos),
            response_timeout: self.unsigned(t, "response_timeout", p, &pos),
            keepalive_timeout: self.unsigned(t, "keepalive_timeout", p, &pos),
            ca_file: self.path(t, "ca_file", p, &pos),
            ..RawOrigin::default()
        };
        if let Some((ht, hpos)) = self.table(t, "headers", p, &pos) {
            let hp = join(p, "headers");
            for (name, item) in ht.iter() {
                let npos = self.key_pos(ht, name, &hpos);
                match item.as_str() {
                    Some(v) => {
                        let vpos = self.value_pos(ht, name, item, &hpos);
                        o.headers.push((
                            At::new(name.to_string(), npos),
                            At::new(v.to_string(), vpos),
                        ));
                    }
                    None => self.mismatch(ht, name, item, &hp, &hpos, "a string"),
                }
            }
        }
        o.path = path;
        o.pos = pos;
        o
    }

    fn behavior(&mut self, t: Tab, pos: Pos, path: String, with_pattern: bool) -> RawBehavior {
        let p = path.as_str();
        let accepted = if with_pattern {
            BEHAVIOR_KEYS
        } else {
            DEFAULT_BEHAVIOR_KEYS
        };
        self.keys(t, p, &pos, accepted);
        let mut b = RawBehavior {
            path_pattern: if with_pattern {
                self.string(t, "path_pattern", p, &pos)
            } else {
                None
            },
            target: self.string(t, "target", p, &pos),
            default_ttl: self.unsigned(t, "default_ttl", p, &pos),
            min_ttl: self.unsigned(t, "min_ttl", p, &pos),
            max_ttl: self.unsigned(t, "max_ttl", p, &pos),
            allowed_methods: self.strings(t, "allowed_methods", p, &pos),
            error_ttl: self.unsigned(t, "error_ttl", p, &pos),
            range_fill_max: self.size(t, "range_fill_max", p, &pos),
            ..RawBehavior::default()
        };
        if let Some((et, epos)) = self.table(t, "error_ttls", p, &pos) {
            let ep = join(p, "error_ttls");
            for (status, _) in et.iter() {
                let kpos = self.key_pos(et, status, &epos);
                if let Some(secs) = self.unsigned(et, status, &ep, &epos) {
                    b.error_ttls.push((At::new(status.to_string(), kpos), secs));
                }
            }
        }
        if let Some((kt, kpos)) = self.table(t, "cache_key", p, &pos) {
            b.cache_key = self.cache_key(kt, &kpos, &join(p, "cache_key"));
        }
        if let Some((rt, rpos)) = self.table(t, "origin_request", p, &pos) {
            let rp = join(p, "origin_request");
            self.keys(rt, &rp, &rpos, ORIGIN_REQUEST_KEYS);
            b.origin_request = RawOriginRequest {
                managed: self.string(rt, "managed", &rp, &rpos),
                headers: self.list_policy(rt, "headers", &rp, &rpos, true),
                cookies: self.list_policy(rt, "cookies", &rp, &rpos, false),
                query_strings: self.list_policy(rt, "query_strings", &rp, &rpos, false),
            };
        }
        b.path = path;
        b.pos = pos;
        b
    }
}

impl Walker<'_, '_> {
    fn cache_key(&mut self, kt: Tab, kpos: &Pos, kp: &str) -> RawCacheKey {
        self.keys(kt, kp, kpos, CACHE_KEY_KEYS);
        let headers = self.strings(kt, "headers", kp, kpos);
        RawCacheKey {
            managed: self.string(kt, "managed", kp, kpos),
            query_strings: self.list_policy(kt, "query_strings", kp, kpos, false),
            headers_pos: headers.as_ref().map(|h| h.pos.clone()),
            headers: headers.map(|h| h.value).unwrap_or_default(),
            cookies: self.list_policy(kt, "cookies", kp, kpos, false),
        }
    }
}

/// The TOML header for a table at `path` (`distribution[0]` + `origin` ->
/// `distribution.origin`).
fn join_header(path: &str, key: &str) -> String {
    let mut parts: Vec<&str> = path
        .split('.')
        .filter(|s| !s.is_empty())
        .map(|s| s.split('[').next().unwrap_or(s))
        .collect();
    parts.push(key);
    parts.join(".")
}
