#!/usr/bin/env bash
# Try every everyday command of reachprobe without touching the Internet: a web site, a closed
# port and the control helper all run on 127.0.0.1, in a throw-away directory, and every probe
# command reads and writes only there. No root needed. (The simulated *censored* network is the
# lab: `sudo .venv/bin/probe lab run SCENARIO`, see the README.)
#
#   contrib/offline/try.sh            # uses .venv/bin/probe (make run or make test creates it)
#   PROBE=probe contrib/offline/try.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
probe=${PROBE:-$root/.venv/bin/probe}
python=$(dirname "$(command -v "$probe")")/python
work=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
export XDG_DATA_HOME=$work/data      # the probe's data directory (installation id, default database)
free_port() { "$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do "$python" -c "import socket; socket.create_connection(('127.0.0.1', $1), 0.2).close()" 2>/dev/null && return; sleep 0.1; done; echo "port $1 never opened" >&2; exit 1; }

site=$(free_port); helper=$(free_port); closed=$(free_port)
mkdir "$work/site" && printf '<html><head><title>Offline test page</title></head><body>hello</body></html>\n' > "$work/site/index.html"
"$python" -m http.server --bind 127.0.0.1 --directory "$work/site" "$site" >/dev/null 2>&1 & pids+=($!)
"$probe" helper serve --listen "127.0.0.1:$helper" --allow 127.0.0.0/8 --timeout 2 & pids+=($!)
wait_port "$site"; wait_port "$helper"

cat > "$work/targets.csv" <<CSV
url,category_code,category_description,date_added,source,notes
http://127.0.0.1:$site/,GRP,Social Networking,2026-01-01,offline,a page that loads
http://localhost:$closed/,GRP,Social Networking,2026-01-01,offline,a closed port (site down)
CSV
cat > "$work/settings.toml" <<TOML
[measure]
resolvers = []                 # only the system resolver: localhost comes from /etc/hosts
allow_loopback = true          # the targets are on 127.0.0.1
dns_timeout = 2.0
tcp_timeout = 2.0
tls_timeout = 2.0
http_timeout = 2.0
[control]
url = "http://127.0.0.1:$helper/"
[tests]                        # the tests beyond websites would reach the real services: off
whatsapp = false
telegram = false
signal = false
facebook_messenger = false
http3 = false
[targets]
lists = ["$work/targets.csv"]
[storage]
database_url = "sqlite:///$work/measurements.sqlite3"
TOML

step() { printf '\n$ %s\n' "$*" >&2; "$@"; }
step "$probe" measure "http://127.0.0.1:$site/" --config "$work/settings.toml"
step "$probe" run --once --config "$work/settings.toml"
step "$probe" status --config "$work/settings.toml"
step "$probe" export --format csv --config "$work/settings.toml"
step "$probe" export --format jsonl --config "$work/settings.toml" -o "$work/measurements.jsonl"
step "$probe" flags --config "$work/settings.toml"
step "$probe" report --config "$work/settings.toml" -o "$work/report.html"
echo "offline tour complete: every command ran against 127.0.0.1 only" >&2
