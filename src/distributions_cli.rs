//! `cairn distributions create|get|list|update|enable|disable|delete`: the distribution
//! API from the command line. Files are TOML (a `[[distribution]]` block, or a table of a
//! distribution's keys) or JSON; what the API answers is printed as JSON; `--wait` polls
//! until the distribution is Deployed. Any error exits with status 1 and the API's message.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Subcommand;
use serde_json::Value;

use crate::admin_client::{send, Answer, Call};

/// How long `--wait` waits for Deployed.
const WAIT_LIMIT: Duration = Duration::from_secs(600);

#[derive(Subcommand)]
pub enum Action {
    /// Create a distribution from a TOML or JSON file of its settings.
    Create {
        file: PathBuf,
        /// Wait until it is Deployed.
        #[arg(long)]
        wait: bool,
    },
    /// Show one distribution (its settings, status and ETag).
    Get { id: String },
    /// List every distribution (the configuration file's and the API's).
    List,
    /// Replace a distribution's settings with a file's (the current ETag is sent as
    /// If-Match, so a concurrent change is refused rather than overwritten).
    Update {
        id: String,
        file: PathBuf,
        /// The ETag the update is based on (default: the current one).
        #[arg(long)]
        if_match: Option<String>,
        #[arg(long)]
        wait: bool,
    },
    /// Enable a distribution.
    Enable {
        id: String,
        #[arg(long)]
        wait: bool,
    },
    /// Disable a distribution (it then answers 403).
    Disable {
        id: String,
        #[arg(long)]
        wait: bool,
    },
    /// Delete a distribution that is disabled and Deployed.
    Delete { id: String },
}

/// The settings in `file`: JSON, or TOML (one `[[distribution]]` block, or the keys of a
/// distribution at the top).
fn settings_file(file: &Path) -> anyhow::Result<Value> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    if let Ok(v) = serde_json::from_str::<Value>(&text) {
        return Ok(v);
    }
    let table: toml::Table = toml::from_str(&text)
        .with_context(|| format!("{} is neither JSON nor TOML", file.display()))?;
    let v = serde_json::to_value(&table)?;
    match v
        .get("distribution")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
    {
        Some([one]) => Ok(one.clone()),
        Some(_) => anyhow::bail!("{}: give one [[distribution]]", file.display()),
        None => Ok(v),
    }
}

struct Api<'a> {
    base: &'a str,
    token: Option<&'a str>,
}

impl Api<'_> {
    async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        if_match: Option<&str>,
    ) -> anyhow::Result<Answer> {
        let call = Call {
            method,
            path,
            token: self.token,
            body,
            if_match,
        };
        let answer = send(self.base, call).await?;
        if !answer.status.is_success() {
            anyhow::bail!("{}", answer.message());
        }
        Ok(answer)
    }

    /// The distribution's view and its ETag.
    async fn get(&self, id: &str) -> anyhow::Result<(Value, String)> {
        let a = self
            .call("GET", &format!("/distributions/{id}"), None, None)
            .await?;
        let etag = a.etag.context("the API answered without an ETag")?;
        Ok((a.json, etag))
    }

    /// Polls until the distribution is Deployed.
    async fn wait(&self, id: &str) -> anyhow::Result<Value> {
        let start = Instant::now();
        loop {
            let (v, _) = self.get(id).await?;
            if v["status"] == "Deployed" {
                return Ok(v);
            }
            if start.elapsed() > WAIT_LIMIT {
                anyhow::bail!(
                    "distribution {id} is not Deployed after {} s",
                    WAIT_LIMIT.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Replaces `id`'s settings (based on `etag`), then optionally waits.
    async fn put(
        &self,
        id: &str,
        settings: Value,
        etag: &str,
        wait: bool,
    ) -> anyhow::Result<Value> {
        let path = format!("/distributions/{id}");
        let a = self.call("PUT", &path, Some(settings), Some(etag)).await?;
        if wait {
            return self.wait(id).await;
        }
        Ok(a.json)
    }
}

/// Runs the action against the admin API at `admin`.
pub fn run(admin: &str, token: Option<&str>, action: Action) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let api = Api { base: admin, token };
    let printed = rt.block_on(async {
        match action {
            Action::Create { file, wait } => {
                let a = api
                    .call("POST", "/distributions", Some(settings_file(&file)?), None)
                    .await?;
                let id = a.json["id"].as_str().unwrap_or_default().to_string();
                if wait {
                    return api.wait(&id).await;
                }
                Ok(a.json)
            }
            Action::Get { id } => Ok(api.get(&id).await?.0),
            Action::List => Ok(api.call("GET", "/distributions", None, None).await?.json),
            Action::Update {
                id,
                file,
                if_match,
                wait,
            } => {
                let etag = match if_match {
                    Some(tag) => tag,
                    None => api.get(&id).await?.1,
                };
                api.put(&id, settings_file(&file)?, &etag, wait).await
            }
            Action::Enable { id, wait } => switch(&api, &id, true, wait).await,
            Action::Disable { id, wait } => switch(&api, &id, false, wait).await,
            Action::Delete { id } => {
                let (_, etag) = api.get(&id).await?;
                let path = format!("/distributions/{id}");
                api.call("DELETE", &path, None, Some(&etag)).await?;
                Ok(serde_json::json!({ "id": id, "deleted": true }))
            }
        }
    })?;
    println!("{}", serde_json::to_string_pretty(&printed)?);
    Ok(ExitCode::SUCCESS)
}

/// Enables or disables `id`: its current settings with `enabled` set, based on its ETag.
async fn switch(api: &Api<'_>, id: &str, enabled: bool, wait: bool) -> anyhow::Result<Value> {
    let (view, etag) = api.get(id).await?;
    let mut settings = view["config"].clone();
    settings["enabled"] = Value::Bool(enabled);
    api.put(id, settings, &etag, wait).await
}
