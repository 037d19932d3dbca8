//! The `cairn` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use cairn::config;
use cairn::control::Source;

mod admin_client;
mod distributions_cli;
mod inspect;

#[derive(Parser)]
#[command(
    name = "cairn",
    version,
    about = "A self-hosted CDN edge with a persistent cache"
)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the edge. With neither --config nor --origin, it runs in front of the built-in
    /// demo origin (the example site bundled into the binary).
    Serve(ServeArgs),
    /// Validate a configuration file and print every problem with its location.
    CheckConfig {
        /// The configuration file.
        file: PathBuf,
    },
    /// Invalidate paths or cache tags of a distribution through a running edge's admin API.
    Invalidate(InvalidateArgs),
    /// Create, show, list, update, enable, disable or delete distributions through a
    /// running edge's admin API.
    Distributions {
        /// The edge's admin API.
        #[arg(long, default_value = "http://127.0.0.1:9090")]
        admin: String,
        /// The admin token (or the CAIRN_ADMIN_TOKEN environment variable).
        #[arg(long)]
        token: Option<String>,
        #[command(subcommand)]
        action: distributions_cli::Action,
    },
    /// Look inside a cache directory (offline: the edge must not be running on it), or
    /// ask a running edge through its admin API (--admin).
    CacheInspect {
        /// The cache directory.
        #[arg(long, default_value = "./cairn-cache")]
        cache_dir: PathBuf,
        /// Ask the running edge at this admin API instead of reading the directory
        /// (summary, segments, ls, show, explain; verify, rebuild-index and cat are
        /// offline-only).
        #[arg(long, conflicts_with = "cache_dir")]
        admin: Option<String>,
        /// The admin token with --admin (or the CAIRN_ADMIN_TOKEN environment variable).
        #[arg(long, requires = "admin")]
        token: Option<String>,
        #[command(subcommand)]
        what: Inspect,
    },
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Configuration file (TOML; see cairn.example.toml).
    #[arg(long, conflicts_with_all = ["origin", "listen", "admin_listen", "admin_token", "cache_dir", "capacity", "default_ttl", "min_ttl", "max_ttl", "query_strings", "forward_headers", "forward_host", "state_dir"])]
    config: Option<PathBuf>,
    /// Quick mode: one distribution answering any Host, in front of this origin URL.
    #[arg(long)]
    origin: Option<String>,
    /// Viewer listener (quick mode). Default 127.0.0.1:8080.
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// Admin listener (quick mode). Default 127.0.0.1:9090.
    #[arg(long)]
    admin_listen: Option<std::net::SocketAddr>,
    /// Bearer token the admin API requires (quick mode); needed when --admin-listen is
    /// not a loopback address.
    #[arg(long)]
    admin_token: Option<String>,
    /// Cache directory (quick mode). Default ./cairn-cache.
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Cache capacity (quick mode), e.g. 10GiB, 500MB. Default 10GiB.
    #[arg(long)]
    capacity: Option<String>,
    /// Default TTL in seconds (quick mode). Default 86400.
    #[arg(long)]
    default_ttl: Option<u64>,
    /// Minimum TTL in seconds (quick mode). Default 0.
    #[arg(long)]
    min_ttl: Option<u64>,
    /// Maximum TTL in seconds (quick mode). Default 31536000.
    #[arg(long)]
    max_ttl: Option<u64>,
    /// Query string parameters keyed and forwarded (quick mode): all, none or
    /// allow=NAME,NAME. Default all.
    #[arg(long, value_name = "all|none|allow=a,b")]
    query_strings: Option<String>,
    /// Viewer headers forwarded to the origin, not keyed (quick mode): all (every one but
    /// hop-by-hop ones and Host), none or allow=NAME,NAME. Default all.
    #[arg(long, value_name = "all|none|allow=a,b")]
    forward_headers: Option<String>,
    /// Key and forward the viewer's Host (quick mode); without it the origin's own host
    /// is sent.
    #[arg(long)]
    forward_host: bool,
    /// Where distributions created through the admin API are kept (quick mode). Default
    /// cairn-state beside the cache directory.
    #[arg(long)]
    state_dir: Option<PathBuf>,
}

#[derive(clap::Args)]
struct InvalidateArgs {
    /// The edge's admin API.
    #[arg(long, default_value = "http://127.0.0.1:9090")]
    admin: String,
    /// The distribution id.
    #[arg(long)]
    distribution: String,
    /// Only count the objects the paths and tags match.
    #[arg(long)]
    dry_run: bool,
    /// The admin token (or the CAIRN_ADMIN_TOKEN environment variable).
    #[arg(long)]
    token: Option<String>,
    /// Wait until the invalidation has completed.
    #[arg(long)]
    wait: bool,
    /// A cache tag (the origin's Surrogate-Key / Cache-Tag): removes every object
    /// carrying it. Repeatable.
    #[arg(long = "tag", value_name = "TAG")]
    tags: Vec<String>,
    /// Paths: "/a.jpg", "/images/*", "/*" (case-sensitive; '*' only at the end).
    /// Optional when --tag is given.
    #[arg(required_unless_present = "tags")]
    paths: Vec<String>,
}

#[derive(Subcommand)]
enum Inspect {
    /// Objects, blobs, bytes, segments, objects per distribution, oldest and newest.
    Summary {
        /// The edge's configuration file (for the capacity).
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// One line per segment.
    Segments {
        #[arg(long)]
        json: bool,
    },
    /// Rebuild the index from the segments (the old index is moved aside).
    RebuildIndex {
        #[arg(long)]
        json: bool,
    },
    /// Check every record of every segment (header and payload checksums) and every index
    /// entry (blob runs, blob hashes, object records, references). Exit status: 0 sound,
    /// 1 corruption or dangling entries found (also after --repair), 2 the cache could not
    /// be opened.
    Verify {
        /// Remove every object and blob that cannot be served (with durable tombstones).
        /// Damaged records stay in their segments as dead space.
        #[arg(long)]
        repair: bool,
        #[arg(long)]
        json: bool,
    },
    /// One line per object: key, kind, status, size, times, age and TTL left.
    Ls {
        /// Only this distribution's objects.
        #[arg(long)]
        distribution: Option<String>,
        /// Only paths starting with this (e.g. /images/).
        #[arg(long)]
        prefix: Option<String>,
        /// At most this many objects (0: all).
        #[arg(long, default_value_t = 1000)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// Every metadata field of one object and where its body lives.
    Show {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        json: bool,
    },
    /// Write one object's body to stdout (checked chunk by chunk).
    Cat {
        #[command(flatten)]
        target: Target,
        /// Print `{key, body_len, body_base64}` instead of the raw bytes.
        #[arg(long)]
        json: bool,
    },
    /// How the edge would answer a URL: distribution, behaviour, key, what is stored and
    /// what the next request would do.
    Explain {
        /// http://HOST/path?query
        url: String,
        /// The edge's configuration file (required offline; with --admin the running
        /// edge's configuration is used).
        #[arg(long)]
        config: Option<PathBuf>,
        /// A request header of the synthetic request (NAME:VALUE; repeatable).
        #[arg(long, short = 'H')]
        header: Vec<String>,
        #[arg(long)]
        json: bool,
    },
}

/// One object: a URL (keyed with --config or --distribution) or a raw key.
#[derive(clap::Args)]
struct Target {
    /// http://HOST/path?query
    #[arg(required_unless_present = "key_hex")]
    url: Option<String>,
    /// The raw key in hex, as `ls --json` prints it.
    #[arg(long, conflicts_with_all = ["url", "config", "distribution"])]
    key_hex: Option<String>,
    /// Route the URL and form its key as the edge configured by this file would.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Key the URL's path in this distribution (no query, headers or cookies).
    #[arg(long, conflicts_with = "config")]
    distribution: Option<String>,
    /// A request header of the synthetic request (NAME:VALUE; repeatable): keyed headers,
    /// Vary selection.
    #[arg(long, short = 'H')]
    header: Vec<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.log_format);
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("cairn: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        let source = match args.config {
            Some(path) => Source::File(path),
            None => {
                let origin = match args.origin {
                    Some(o) => o,
                    None => {
                        let addr = cairn::demo::start()
                            .await
                            .context("starting the demo origin")?;
                        eprintln!("cairn: no --config or --origin given: serving the built-in demo site (origin http://{addr})");
                        format!("http://{addr}")
                    }
                };
                let opts = config::QuickOptions {
                    origin,
                    listen: args.listen,
                    admin_listen: args.admin_listen,
                    admin_token: args.admin_token,
                    cache_dir: args.cache_dir,
                    capacity: args.capacity,
                    default_ttl: args.default_ttl,
                    min_ttl: args.min_ttl,
                    max_ttl: args.max_ttl,
                    query_strings: args.query_strings,
                    forward_headers: args.forward_headers,
                    forward_host: args.forward_host,
                    state_dir: args.state_dir,
                };
                // Checked here, so that a bad flag is refused before anything starts.
                config::quick(&opts).map_err(|e| anyhow::anyhow!("{e}"))?;
                Source::Quick(Box::new(opts))
            }
        };
        let (_stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        anyhow::Ok(cairn::serve::run(source, stop_rx).await?)
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `cairn invalidate`: POST /invalidations, print the answer (and with --wait, poll).
fn invalidate(args: InvalidateArgs) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        let base = args.admin.trim_end_matches('/').to_string();
        let body = serde_json::json!({
            "distribution": args.distribution,
            "paths": args.paths,
            "tags": args.tags,
            "dry_run": args.dry_run,
        });
        let env_token = std::env::var("CAIRN_ADMIN_TOKEN").ok();
        let token = args.token.as_deref().or(env_token.as_deref());
        let (status, v) = admin_call(&base, "POST", "/invalidations", token, Some(body)).await?;
        if !status.is_success() {
            anyhow::bail!(
                "{}: {}",
                status,
                v.get("error")
                    .and_then(|e| e.as_str())
                    .unwrap_or("request failed")
            );
        }
        if args.dry_run {
            println!("dry run: {} object(s) match", v["objects"]);
            return Ok(ExitCode::SUCCESS);
        }
        let id = v["id"].as_str().unwrap_or_default().to_string();
        let mut v = v;
        if args.wait {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
            while v["status"] != "Completed" && std::time::Instant::now() < deadline {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                let (s, nv) =
                    admin_call(&base, "GET", &format!("/invalidations/{id}"), token, None).await?;
                if !s.is_success() {
                    anyhow::bail!("{s}: {}", nv["error"]);
                }
                v = nv;
            }
        }
        println!(
            "{id} {} {} object(s)",
            v["status"].as_str().unwrap_or("?"),
            v["objects"]
        );
        Ok(ExitCode::SUCCESS)
    })
}

/// One JSON request to the admin API (bounded to 60 s): its status and JSON answer.
async fn admin_call(
    base: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<serde_json::Value>,
) -> anyhow::Result<(http::StatusCode, serde_json::Value)> {
    let call = admin_client::Call {
        method,
        path,
        token,
        body,
        if_match: None,
    };
    let answer = admin_client::send(base, call).await?;
    Ok((answer.status, answer.json))
}

fn check_config(file: &std::path::Path) -> ExitCode {
    match config::load_file(file) {
        Ok(c) => {
            println!(
                "{}: configuration is valid ({} distribution(s))",
                file.display(),
                c.distributions.len()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            eprintln!("{}: configuration test failed", file.display());
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::CheckConfig { file } => Ok(check_config(&file)),
        Command::Invalidate(args) => invalidate(args),
        Command::Distributions {
            admin,
            token,
            action,
        } => {
            let env_token = std::env::var("CAIRN_ADMIN_TOKEN").ok();
            distributions_cli::run(&admin, token.as_deref().or(env_token.as_deref()), action)
        }
        Command::CacheInspect {
            cache_dir,
            admin: Some(admin),
            token,
            what,
        } => {
            let _ = cache_dir;
            let env_token = std::env::var("CAIRN_ADMIN_TOKEN").ok();
            inspect::run_live(&admin, token.as_deref().or(env_token.as_deref()), what)
        }
        Command::CacheInspect {
            cache_dir, what, ..
        } => inspect::run(&cache_dir, what),
    }
}
