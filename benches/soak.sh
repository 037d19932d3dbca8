#!/usr/bin/env bash
# The soak: mixed load with sweeper pressure and periodic restarts against the release
# binary, every body verified, RssAnon and open fds sampled each minute (a table is
# printed). CAIRN_SOAK_SECS (default 600) and CAIRN_SOAK_RESTART_SECS (default 120)
# tune it. Usage: benches/soak.sh [extra cargo test args]
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo test --release --test integration "$@" -- --ignored --nocapture soak
