//! `cairn cache-inspect`: look inside a cache directory offline (the edge must not be
//! running on it), or ask a running edge through its admin API (`--admin URL`, see
//! [`run_live`]). Every subcommand prints aligned columns, or JSON with `--json`; the
//! reports themselves (typed, and the JSON of `--json` and of the admin API) live in
//! [`cairn::inspect_report`].

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use serde_json::{json, Value};

use cairn::cache_key;
use cairn::config::{self, Config};
use cairn::edge::meta::Meta;
use cairn::inspect_report::*;
use cairn::store::{Store, StoreConfig, StoreError, VerifyPhase, VerifyProgress, VerifyReport};

use crate::{Inspect, Target};

/// Where to point a running edge's operator.
const ADMIN_HINT: &str = "--admin http://127.0.0.1:9090";

pub fn run(cache_dir: &Path, what: Inspect) -> anyhow::Result<ExitCode> {
    match what {
        Inspect::Summary { json, config } => {
            let store = open_offline(cache_dir, false)?;
            let capacity = match config {
                Some(f) => Some(load_config(&f)?.cache.capacity),
                None => None,
            };
            summary(&store, capacity, json)?;
        }
        Inspect::Segments { json } => segments(&open_offline(cache_dir, false)?, json)?,
        Inspect::Verify { repair, json } => {
            let store = match open_offline(cache_dir, false) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("cairn: {e:#}");
                    return Ok(ExitCode::from(2));
                }
            };
            return verify(&store, repair, json);
        }
        Inspect::RebuildIndex { json } => {
            let store = open_offline(cache_dir, true)?;
            let s = store.stats();
            if json {
                let v = json!({"dir": cache_dir, "objects": s.objects, "blobs": s.blobs});
                println!("{v:#}");
            } else {
                println!(
                    "rebuilt the index of {}: {} objects, {} blobs",
                    cache_dir.display(),
                    s.objects,
                    s.blobs
                );
            }
        }
        Inspect::Ls {
            distribution,
            prefix,
            limit,
            json,
        } => ls(
            &open_offline(cache_dir, false)?,
            distribution.as_deref(),
            prefix.as_deref(),
            limit,
            json,
        )?,
        Inspect::Show { target, json } => show(&open_offline(cache_dir, false)?, &target, json)?,
        Inspect::Cat { target, json } => {
            return cat(&open_offline(cache_dir, false)?, &target, json)
        }
        Inspect::Explain {
            url,
            config,
            header,
            json,
        } => {
            let Some(config) = config else {
                anyhow::bail!("explain needs the edge's configuration: --config FILE (or ask a running edge with --admin URL)");
            };
            let cfg = load_config(&config)?;
            explain(&open_offline(cache_dir, false)?, &cfg, &url, &header, json)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Opens the store for inspection. Objects past their expiry are kept visible (the
/// grace is made very long): inspection shows what the index holds.
pub fn open_offline(dir: &Path, rebuild: bool) -> anyhow::Result<Store> {
    let mut cfg = StoreConfig::new(dir, u64::MAX / 4);
    cfg.background_interval = None;
    cfg.stale_grace = Duration::from_secs(100 * 365 * 86400);
    if !dir.join("FORMAT").exists() {
        anyhow::bail!(
            "{} is not a cairn cache directory (no FORMAT file)",
            dir.display()
        );
    }
    let store = if rebuild {
        Store::open_rebuilding(cfg)
    } else {
        Store::open(cfg)
    };
    match store {
        Ok(s) => Ok(s),
        Err(StoreError::Locked { dir, holder }) => anyhow::bail!(
            "cache directory {} is in use by a running edge (pid {holder}); cache-inspect \
             reads a cache offline only. Stop the edge first, or ask the running edge through \
             its admin API ({ADMIN_HINT})",
            dir.display()
        ),
        Err(e) => Err(e).with_context(|| format!("opening the cache in {}", dir.display())),
    }
}

fn load_config(file: &Path) -> anyhow::Result<Config> {
    config::load_file(file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))
}

/// Prints rows with every column but the last padded to its widest cell; `right` marks
/// right-aligned columns.
fn print_table(header: &[&str], right: &[bool], rows: &[Vec<String>]) {
    let n = header.len();
    let mut w: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let head: Vec<String> = header.iter().map(|s| s.to_string()).collect();
    let out = std::io::stdout();
    let mut out = out.lock();
    for r in std::iter::once(&head).chain(rows) {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            let pad = w[i] - c.chars().count();
            if i + 1 == n && !right[i] {
                line.push_str(c);
            } else if right[i] {
                line.push_str(&" ".repeat(pad));
                line.push_str(c);
            } else {
                line.push_str(c);
                line.push_str(&" ".repeat(pad));
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
}

fn ls(
    store: &Store,
    distribution: Option<&str>,
    prefix: Option<&str>,
    limit: usize,
    json_out: bool,
) -> anyhow::Result<()> {
    let (rows, more) = ls_rows(store, distribution, prefix, limit)?;
    let report = ls_report(&rows);
    if json_out {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        ls_human(&report);
        if more {
            eprintln!("(more objects; raise --limit, 0 for all)");
        }
    }
    Ok(())
}

fn or_dash<T: ToString>(v: Option<T>) -> String {
    v.map_or("-".into(), |v| v.to_string())
}

/// `ls` as a table (offline and live).
fn ls_human(report: &[ObjectReport]) {
    let table: Vec<Vec<String>> = report
        .iter()
        .map(|d| {
            vec![
                d.kind.clone(),
                or_dash(d.status),
                human(d.body_len),
                d.stored_at.clone(),
                d.expires_at.clone(),
                dur(d.age_s),
                dur(d.ttl_remaining_s),
                d.key.key.clone(),
            ]
        })
        .collect();
    print_table(
        &[
            "KIND", "STATUS", "SIZE", "STORED", "EXPIRES", "AGE", "TTL LEFT", "KEY",
        ],
        &[false, true, true, false, false, true, true, false],
        &table,
    );
}

// ---------------------------------------------------------------------------------------
// Resolving a URL or a key

/// The store key `target` names.
fn resolve(target: &Target) -> anyhow::Result<Vec<u8>> {
    if let Some(h) = &target.key_hex {
        return Ok(unhex(h)?);
    }
    let Some(url) = &target.url else {
        anyhow::bail!("give a URL (with --config FILE or --distribution ID) or --key-hex HEX");
    };
    if let Some(file) = &target.config {
        return Ok(config_key(&load_config(file)?, url, &target.header)?);
    }
    if let Some(d) = &target.distribution {
        return Ok(distribution_key(d, url)?);
    }
    anyhow::bail!("{url}: say how to form its key: --config FILE or --distribution ID")
}

fn show(store: &Store, target: &Target, json_out: bool) -> anyhow::Result<()> {
    let key = resolve(target)?;
    if json_out {
        match show_report(store, &key)? {
            Some(report) => println!("{}", serde_json::to_string_pretty(&report)?),
            None => anyhow::bail!("{}", no_object(&key)),
        }
        return Ok(());
    }
    match show_lines(store, &key)? {
        Some(rows) => print_pairs(&rows),
        None => anyhow::bail!("{}", no_object(&key)),
    }
    Ok(())
}

fn cat(store: &Store, target: &Target, json_out: bool) -> anyhow::Result<ExitCode> {
    let mut key = resolve(target)?;
    // Follow a Vary index to the variant the given headers select.
    if let Some(info) = store.info(&key)? {
        if let Ok(Meta::Variants(names)) = Meta::decode(&info.meta) {
            key = cache_key::variant_key(&key, &names, &parse_headers(&target.header)?);
        }
    }
    let Some(info) = store.info(&key)? else {
        anyhow::bail!(
            "no object at key {} ({})",
            view_key(&key).render(),
            hex(&key)
        );
    };
    let Some(hit) = store.lookup(&key)? else {
        anyhow::bail!(
            "the body of {} failed its checksum (blob {})",
            view_key(&key).render(),
            hex(&info.blob)
        );
    };
    let mut body = hit.body;
    if json_out {
        let mut bytes = Vec::with_capacity(body.len() as usize);
        while let Some(chunk) = body.next_chunk() {
            match chunk {
                Ok(b) => bytes.extend_from_slice(&b),
                Err(e) => {
                    eprintln!("cairn: the body failed its check: {e}");
                    return Ok(ExitCode::from(2));
                }
            }
        }
        use base64::Engine;
        let v = json!({
            "key": view_key(&key).render(),
            "key_hex": hex(&key),
            "body_len": bytes.len(),
            "body_base64": base64::engine::general_purpose::STANDARD.encode(&bytes),
        });
        println!("{v:#}");
        return Ok(ExitCode::SUCCESS);
    }
    let out = std::io::stdout();
    let mut out = out.lock();
    while let Some(chunk) = body.next_chunk() {
        match chunk {
            Ok(b) => out.write_all(&b).context("writing to stdout")?,
            Err(e) => {
                let _ = out.flush();
                eprintln!("cairn: the body failed its check: {e}");
                return Ok(ExitCode::from(2));
            }
        }
    }
    out.flush().context("writing to stdout")?;
    Ok(ExitCode::SUCCESS)
}

// ---------------------------------------------------------------------------------------
// explain

fn explain(
    store: &Store,
    cfg: &Config,
    url: &str,
    header: &[String],
    json_out: bool,
) -> anyhow::Result<()> {
    let (report, lines) = explain_report(store, cfg, url, header)?;
    if json_out {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_pairs(&lines);
    }
    Ok(())
}

/// `label  value` lines, labels padded.
fn print_pairs(rows: &Lines) {
    let w = rows.lines.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in &rows.lines {
        println!("{k:<w$}  {v}");
    }
}

// ---------------------------------------------------------------------------------------
// summary / segments

fn summary(store: &Store, capacity: Option<u64>, json_out: bool) -> anyhow::Result<()> {
    let report = summary_report(store, capacity)?;
    if json_out {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        summary_human(&report);
    }
    Ok(())
}

/// `summary` for people (offline and live).
fn summary_human(v: &SummaryReport) {
    let mut rows = Lines::default();
    rows.push("objects", v.objects.to_string());
    rows.push("blobs", v.blobs.to_string());
    rows.push("live bytes", human(v.live_bytes));
    rows.push("bytes on disk", human(v.bytes_on_disk));
    let capacity = v.capacity.map_or("unknown (give --config)".into(), human);
    rows.push("capacity", capacity);
    rows.push("index on disk", human(v.index_bytes_on_disk));
    rows.push("segments", v.segments.to_string());
    for (st, n) in &v.segments_by_state {
        rows.push(format!("  {st}"), n.to_string());
    }
    rows.push("saved by dedup", human(v.dedup_saved_bytes));
    rows.push("expired, kept", v.expired_kept.to_string());
    for (k, n) in &v.kinds {
        rows.push(format!("kind {k}"), n.to_string());
    }
    for (d, x) in &v.distributions {
        let usage = format!("{} objects, {}", x.objects, human(x.body_bytes));
        rows.push(format!("distribution {d}"), usage);
    }
    for (which, x) in [("oldest", &v.oldest), ("newest", &v.newest)] {
        if let Some(x) = x {
            rows.push(which, format!("{}  {}", x.stored_at, x.key));
        }
    }
    print_pairs(&rows);
}

fn segments(store: &Store, json_out: bool) -> anyhow::Result<()> {
    let report = segments_report(store)?;
    if json_out {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        segments_human(&report);
    }
    Ok(())
}

/// `segments` as a table (offline and live).
fn segments_human(report: &[SegmentReport]) {
    let rows: Vec<Vec<String>> = report
        .iter()
        .map(|s| {
            vec![
                format!("{:016x}", s.id),
                s.state.clone(),
                human(s.bytes_on_disk),
                human(s.live_bytes),
                s.records.to_string(),
                s.created_at.clone(),
            ]
        })
        .collect();
    print_table(
        &["ID", "STATE", "ON DISK", "LIVE", "RECORDS", "CREATED"],
        &[false, false, true, true, true, false],
        &rows,
    );
}

// ---------------------------------------------------------------------------------------
// live: asking a running edge through its admin API

/// How a report the edge sends is printed for people: read back into its type, then
/// rendered as offline.
type Render = fn(Value) -> anyhow::Result<()>;

fn typed<T: serde::de::DeserializeOwned>(v: Value) -> anyhow::Result<T> {
    serde_json::from_value(v).context("the edge answered with a report this cairn cannot read")
}

fn render_summary(v: Value) -> anyhow::Result<()> {
    summary_human(&typed::<SummaryReport>(v)?);
    Ok(())
}

fn render_segments(v: Value) -> anyhow::Result<()> {
    segments_human(&typed::<Vec<SegmentReport>>(v)?);
    Ok(())
}

fn render_ls(v: Value) -> anyhow::Result<()> {
    ls_human(&typed::<Vec<ObjectReport>>(v)?);
    Ok(())
}

/// `show` and `explain` rows sent by a live edge, printed as offline.
fn render_lines(v: Value) -> anyhow::Result<()> {
    print_pairs(&typed::<Lines>(v)?);
    Ok(())
}

/// `cache-inspect --admin URL ...`: the same reports, from the running edge
/// (`GET /inspect/...`).
pub fn run_live(admin: &str, token: Option<&str>, what: Inspect) -> anyhow::Result<ExitCode> {
    let Some((path, query, json_out, render)) = live_request(what)? else {
        return Ok(ExitCode::from(2));
    };
    let mut url = format!("/inspect/{path}");
    if !query.is_empty() {
        url.push('?');
        url.push_str(&query.join("&"));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let base = admin.trim_end_matches('/');
    let (status, v) = rt.block_on(crate::admin_call(base, "GET", &url, token, None))?;
    if !status.is_success() {
        anyhow::bail!(
            "{status}: {}",
            v.get("error")
                .and_then(|e| e.as_str())
                .unwrap_or("request failed")
        );
    }
    if json_out {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        render(v)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The admin endpoint, its query, whether JSON is printed and how the answer is shown
/// for people; None (after saying why) for the offline-only subcommands.
#[allow(clippy::type_complexity)]
fn live_request(
    what: Inspect,
) -> anyhow::Result<Option<(&'static str, Vec<String>, bool, Render)>> {
    let enc = |s: &str| {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    let mut q: Vec<String> = Vec::new();
    let headers = |q: &mut Vec<String>, list: &[String]| {
        for h in list {
            q.push(format!("header={}", enc(h)));
        }
    };
    let request: (&str, bool, Render) = match what {
        Inspect::Summary { json, config } => {
            if config.is_some() {
                eprintln!("cairn: --config is ignored with --admin (the running edge's capacity is shown)");
            }
            ("summary", json, render_summary)
        }
        Inspect::Segments { json } => ("segments", json, render_segments),
        Inspect::Ls {
            distribution,
            prefix,
            limit,
            json,
        } => {
            if let Some(d) = distribution {
                q.push(format!("distribution={}", enc(&d)));
            }
            if let Some(p) = prefix {
                q.push(format!("prefix={}", enc(&p)));
            }
            q.push(format!("limit={limit}"));
            ("ls", json, render_ls)
        }
        Inspect::Show { target, json } => {
            let by_url = (&target.key_hex, &target.config, &target.distribution);
            match (&target.url, by_url) {
                (Some(url), (None, None, None)) => {
                    q.push(format!("url={}", enc(url)));
                    headers(&mut q, &target.header);
                }
                _ => q.push(format!("key_hex={}", hex(&resolve(&target)?))),
            }
            ("show", json, render_lines)
        }
        Inspect::Explain {
            url,
            config,
            header,
            json,
        } => {
            if config.is_some() {
                eprintln!("cairn: --config is ignored with --admin (the running edge's configuration is used)");
            }
            q.push(format!("url={}", enc(&url)));
            headers(&mut q, &header);
            ("explain", json, render_lines)
        }
        Inspect::Verify { .. } | Inspect::RebuildIndex { .. } | Inspect::Cat { .. } => {
            let name = match what {
                Inspect::Verify { .. } => "verify",
                Inspect::RebuildIndex { .. } => "rebuild-index",
                _ => "cat",
            };
            eprintln!(
                "cairn: cache-inspect {name} is offline-only: it cannot run against a live edge \
                 (--admin). Stop the edge, then run `cairn cache-inspect --cache-dir DIR {name}`"
            );
            return Ok(None);
        }
    };
    let (path, json, render) = request;
    if !json && matches!(path, "show" | "explain") {
        q.push("format=lines".into());
    }
    Ok(Some((path, q, json, render)))
}

// ---------------------------------------------------------------------------------------
// verify

/// Shows verification progress on stderr: a bar on a terminal, a plain line per phase and
/// per segment otherwise (so logs of scripted runs stay readable).
struct VerifyDisplay {
    bar: Option<indicatif::ProgressBar>,
    phase: Option<VerifyPhase>,
    segment: Option<u64>,
}

impl VerifyDisplay {
    fn new() -> Self {
        use std::io::IsTerminal;
        let bar = std::io::stderr().is_terminal().then(|| {
            indicatif::ProgressBar::with_draw_target(
                None,
                indicatif::ProgressDrawTarget::stderr_with_hz(10),
            )
        });
        Self {
            bar,
            phase: None,
            segment: None,
        }
    }

    fn update(&mut self, p: VerifyProgress) {
        let new_phase = self.phase != Some(p.phase);
        self.phase = Some(p.phase);
        match &self.bar {
            Some(bar) => {
                if new_phase {
                    let template = match p.phase {
                        VerifyPhase::Index => {
                            "{msg:>10} [{bar:40}] {pos}/{len} entries ({per_sec}, eta {eta})"
                        }
                        VerifyPhase::Segments => {
                            "{msg:>10} [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta})"
                        }
                    };
                    if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
                        bar.set_style(style.progress_chars("=> "));
                    }
                    bar.reset();
                    bar.set_message(p.phase.as_str());
                }
                bar.set_length(p.total);
                bar.set_position(p.done);
                if let Some(id) = p.segment {
                    if self.segment != Some(id) {
                        self.segment = Some(id);
                        bar.set_message(format!("{id:016x}"));
                    }
                }
            }
            None => {
                if new_phase {
                    eprintln!("verify: checking {}", p.phase.as_str());
                }
                if let Some(id) = p.segment {
                    if self.segment != Some(id) {
                        self.segment = Some(id);
                        eprintln!(
                            "verify: segment {id:016x} ({} of {} walked so far)",
                            human(p.done),
                            human(p.total)
                        );
                    }
                }
            }
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

fn verify(store: &Store, repair: bool, json_out: bool) -> anyhow::Result<ExitCode> {
    let mut display = VerifyDisplay::new();
    let result = store.verify(repair, &mut |p| display.update(p));
    display.finish();
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cairn: verifying {}: {e}", store.dir().display());
            return Ok(ExitCode::from(2));
        }
    };
    if json_out {
        println!("{:#}", verify_json(&report));
    } else {
        verify_human(&report);
    }
    Ok(if report.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn opt_hex(b: &Option<[u8; 32]>) -> Value {
    b.as_ref().map_or(Value::Null, |h| json!(hex(h)))
}

fn verify_json(r: &VerifyReport) -> Value {
    json!({
        "clean": r.is_clean(),
        "repair": r.repair,
        "records_checked": r.records_checked,
        "bytes_checked": r.bytes_checked,
        "objects_checked": r.objects_checked,
        "blobless_objects": r.blobless_objects,
        "blobs_checked": r.blobs_checked,
        "blob_bytes_hashed": r.blob_bytes_hashed,
        "corrupt_records": r.corrupt_records.iter().map(|c| json!({
            "segment": c.segment,
            "offset": c.offset,
            "kind": c.kind.map(|k| k.as_str()),
            "reason": c.reason,
            "header": c.header,
            "unreachable_bytes": c.unreachable_bytes,
            "live": c.live,
        })).collect::<Vec<_>>(),
        "live_corrupt_records": r.live_corrupt_records(),
        "orphans": {
            "extent_records": r.orphan_extent_records,
            "extent_bytes": r.orphan_extent_bytes,
            "blob_records": r.orphan_blob_records,
            "blob_bytes": r.orphan_blob_bytes,
        },
        "dangling": r.dangling.iter().map(|d| json!({
            "kind": d.kind.as_str(),
            "key": d.key.as_ref().map(|k| view_key(k).render()),
            "key_hex": d.key.as_ref().map(|k| hex(k)),
            "blob": opt_hex(&d.blob),
            "segment": d.segment,
            "offset": d.offset,
            "reason": d.reason,
            "repaired": d.repaired,
        })).collect::<Vec<_>>(),
        "ref_mismatches": r.ref_mismatches.iter().map(|m| json!({
            "blob": hex(&m.blob),
            "declared": m.declared,
            "used": m.used,
            "reason": m.reason,
            "repaired": m.repaired,
        })).collect::<Vec<_>>(),
        "segments": r.segments.iter().map(|s| json!({
            "id": s.id,
            "bytes": s.bytes,
            "end": s.end,
            "end_offset": s.end_offset,
            "records": s.records,
            "extent_records": s.extent_records,
            "blob_records": s.blob_records,
            "object_records": s.object_records,
            "tombstone_records": s.tombstone_records,
            "corrupt_records": s.corrupt_records,
            "orphan_records": s.orphan_records,
            "orphan_bytes": s.orphan_bytes,
        })).collect::<Vec<_>>(),
        "removed_objects": r.removed_objects,
        "dropped_blobs": r.dropped_blobs,
        "fixed_refs": r.fixed_refs,
    })
}

fn verify_human(r: &VerifyReport) {
    let rows: Vec<Vec<String>> = r
        .segments
        .iter()
        .map(|s| {
            vec![
                format!("{:016x}", s.id),
                s.records.to_string(),
                human(s.end_offset),
                s.corrupt_records.to_string(),
                s.orphan_records.to_string(),
                human(s.orphan_bytes),
                s.end.to_string(),
            ]
        })
        .collect();
    print_table(
        &[
            "SEGMENT",
            "RECORDS",
            "WRITTEN",
            "CORRUPT",
            "ORPHANS",
            "ORPHAN BYTES",
            "END",
        ],
        &[false, true, true, true, true, true, false],
        &rows,
    );
    corrupt_table(r);
    dangling_table(r);
    mismatch_table(r);
    verify_totals(r);
    println!();
    if r.is_clean() {
        println!("cache is sound");
    } else if r.repair {
        println!(
            "repaired: removed {} objects, dropped {} blobs, fixed {} references; damaged \
             records stay as dead space (run verify again to confirm)",
            r.removed_objects, r.dropped_blobs, r.fixed_refs
        );
    } else {
        println!(
            "cache has damage: run `cache-inspect verify --repair` to remove what cannot be served"
        );
    }
}

/// The corrupt records found, if any.
fn corrupt_table(r: &VerifyReport) {
    if !r.corrupt_records.is_empty() {
        println!();
        println!("corrupt records:");
        let rows: Vec<Vec<String>> = r
            .corrupt_records
            .iter()
            .map(|c| {
                vec![
                    format!("{:016x}", c.segment),
                    c.offset.to_string(),
                    c.kind.map_or("?", |k| k.as_str()).to_string(),
                    if c.live { "live" } else { "dead space" }.to_string(),
                    if c.header {
                        format!(
                            "{} (header: the {} after it cannot be walked)",
                            c.reason,
                            human(c.unreachable_bytes)
                        )
                    } else {
                        c.reason.clone()
                    },
                ]
            })
            .collect();
        print_table(
            &["SEGMENT", "OFFSET", "KIND", "STATE", "WHY"],
            &[false, true, false, false, false],
            &rows,
        );
    }
}

/// The index entries that name nothing usable, if any.
fn dangling_table(r: &VerifyReport) {
    let seg = |s: Option<u64>| s.map_or("-".to_string(), |s| format!("{s:016x}"));
    let off = |o: Option<u64>| o.map_or("-".to_string(), |o| o.to_string());
    if !r.dangling.is_empty() {
        println!();
        println!("dangling entries:");
        let rows: Vec<Vec<String>> = r
            .dangling
            .iter()
            .map(|d| {
                let what = match (&d.key, &d.blob) {
                    (Some(k), _) if d.kind == cairn::store::EntryKind::Object => {
                        view_key(k).render()
                    }
                    (_, Some(h)) => hex(h),
                    (Some(k), None) => format!("key {}", hex(k)),
                    (None, None) => "-".into(),
                };
                vec![
                    d.kind.as_str().to_string(),
                    seg(d.segment),
                    off(d.offset),
                    if d.repaired { "removed" } else { "-" }.to_string(),
                    format!("{what}: {}", d.reason),
                ]
            })
            .collect();
        print_table(
            &["ENTRY", "SEGMENT", "OFFSET", "REPAIR", "WHAT"],
            &[false, false, true, false, false],
            &rows,
        );
    }
}

/// The blobs whose reference counts disagree with their users, if any.
fn mismatch_table(r: &VerifyReport) {
    if !r.ref_mismatches.is_empty() {
        println!();
        println!("reference mismatches:");
        let rows: Vec<Vec<String>> = r
            .ref_mismatches
            .iter()
            .map(|m| {
                vec![
                    hex(&m.blob),
                    m.declared.to_string(),
                    m.used.to_string(),
                    if m.repaired { "fixed" } else { "-" }.to_string(),
                    m.reason.clone(),
                ]
            })
            .collect();
        print_table(
            &["BLOB", "COUNT", "USED BY", "REPAIR", "WHY"],
            &[false, false, false, false],
            &rows,
        );
    }
}

/// The totals of a verification.
fn verify_totals(r: &VerifyReport) {
    println!();
    let dead_corrupt = r.corrupt_records.len() - r.live_corrupt_records();
    let rows = [
        ("segments", r.segments.len().to_string()),
        ("records checked", r.records_checked.to_string()),
        ("bytes checked", human(r.bytes_checked)),
        ("objects checked", r.objects_checked.to_string()),
        ("blobs checked", r.blobs_checked.to_string()),
        ("body bytes hashed", human(r.blob_bytes_hashed)),
        (
            "corrupt records",
            format!(
                "{} ({} live, {dead_corrupt} in dead space)",
                r.corrupt_records.len(),
                r.live_corrupt_records()
            ),
        ),
        (
            "orphan records",
            format!(
                "{} extents ({}), {} blob records ({}): reclaimable dead space",
                r.orphan_extent_records,
                human(r.orphan_extent_bytes),
                r.orphan_blob_records,
                human(r.orphan_blob_bytes)
            ),
        ),
        (
            "dangling",
            format!(
                "{} objects, {} blobs",
                r.dangling_objects(),
                r.dangling_blobs()
            ),
        ),
        (
            "blobless objects",
            format!(
                "{} (their shared body was dropped; the sweeper removes them)",
                r.blobless_objects
            ),
        ),
        ("reference mismatches", r.ref_mismatches.len().to_string()),
    ];
    let w = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in rows {
        println!("{k:<w$}  {v}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn::cache_key::KeyParts;
    use std::time::UNIX_EPOCH;

    fn primary() -> Vec<u8> {
        KeyParts {
            distribution: "d1".into(),
            path: "/a b".into(),
            query: Some("x=1".into()),
            headers: vec![
                ("accept".into(), Some("text/html".into())),
                ("origin".into(), None),
            ],
            cookies: Some("s=1".into()),
        }
        .to_key()
    }

    #[test]
    fn renders_primary_variant_and_parts() {
        let p = primary();
        assert_eq!(
            view_key(&p).render(),
            "d1 /a b?x=1 [accept:text/html origin] [cookies: s=1]"
        );
        let mut v = p.clone();
        v.push(0);
        v.extend_from_slice(b"accept-language\x01en\x03origin\x01\x02");
        let kv = view_key(&v);
        assert_eq!(
            kv.extra,
            KeyExtra::Variant(vec![
                ("accept-language".into(), Some("en".into())),
                ("origin".into(), None)
            ])
        );
        assert!(kv
            .render()
            .ends_with(" variant{accept-language=en, origin absent}"));
        let mut idx = p.clone();
        idx.extend_from_slice(&[0, 5]);
        assert_eq!(view_key(&idx).extra, KeyExtra::PartsIndex);
        let mut part = idx.clone();
        part.extend_from_slice(b"0-99");
        assert_eq!(view_key(&part).extra, KeyExtra::Part("0-99".into()));
        assert!(view_key(&part).render().ends_with(" part 0-99"));
        // Not a key cache_key builds: shown escaped.
        assert_eq!(view_key(b"raw\x01key").render(), "raw\\x01key");
    }

    #[test]
    fn hex_round_trips() {
        let p = primary();
        assert_eq!(unhex(&hex(&p)).unwrap(), p);
        assert!(unhex("abc").is_err());
        assert!(unhex("zz").is_err());
    }

    #[test]
    fn durations_are_signed() {
        let t = UNIX_EPOCH + Duration::from_secs(100);
        assert_eq!(signed_secs(t, t + Duration::from_secs(5)), 5);
        assert_eq!(signed_secs(t + Duration::from_secs(5), t), -5);
        assert_eq!(dur(-5), "stale 5s");
        assert_eq!(dur(65), "1m 5s");
    }
}
