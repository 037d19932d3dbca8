#!/usr/bin/env bash
# Instructions per cache hit, counted by valgrind's callgrind (repeatable, unlike wall-clock
# time on a shared machine): each given `cairn` binary runs in quick mode in front of a
# small origin on loopback, one keep-alive viewer asks for the same 1 KiB object N times
# (all hits after the first), and the inclusive instruction count of the connection task
# (`edge::server::Connection::run`) divided by the requests is printed. Give two binaries
# to compare a change with the commit before it:
#
#   git worktree add /tmp/before HEAD~1 && (cd /tmp/before && cargo build --release)
#   cargo build --release && benches/hit_path.sh /tmp/before/target/release/cairn target/release/cairn
#
# Needs valgrind and python3. CAIRN_HIT_REQUESTS sets N (default 6000).
set -euo pipefail

N=${CAIRN_HIT_REQUESTS:-6000}
[ $# -gt 0 ] || set -- target/release/cairn
command -v valgrind >/dev/null || { echo "hit_path: valgrind is not installed" >&2; exit 2; }
work=$(mktemp -d)
cleanup() {
    [ -n "${origin_pid:-}" ] && kill "$origin_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

origin_port=$(free_port)
python3 - "$origin_port" <<'EOF' &
import http.server, sys
BODY = bytes(range(256)) * 4
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY)))
        self.send_header("Cache-Control", "max-age=3600")
        self.end_headers()
        self.wfile.write(BODY)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
EOF
origin_pid=$!

viewer() {
    python3 - "$1" "$N" <<'EOF'
import http.client, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
for _ in range(300):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        c.request("GET", "/1k")
        c.getresponse().read()
        break
    except OSError:
        time.sleep(0.2)
hits = 0
for _ in range(n):
    c.request("GET", "/1k", headers={"user-agent": "hit-path-bench", "accept": "*/*"})
    r = c.getresponse()
    r.read()
    hits += "Hit" in (r.getheader("x-cache") or "")
if hits != n:
    sys.exit(f"only {hits} of {n} requests were hits")
EOF
}

for bin in "$@"; do
    port=$(free_port)
    out="$work/callgrind.out"
    valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" serve \
        --origin "http://127.0.0.1:$origin_port" --listen "127.0.0.1:$port" \
        --admin-listen "127.0.0.1:$(free_port)" --cache-dir "$work/cache-$port" \
        --capacity 64MiB >/dev/null 2>"$work/edge.log" &
    edge=$!
    viewer "$port"
    kill -TERM "$edge"
    wait "$edge" || true
    total=$(callgrind_annotate --inclusive=yes "$out" 2>/dev/null |
        awk '/edge::server::Connection::run/ && !found { gsub(",", "", $1); print $1; found = 1 }')
    # N hits plus the miss that filled the cache, on one connection.
    echo "$bin: $((total / (N + 1))) instructions per request over $((N + 1)) requests ($N hits)"
done
