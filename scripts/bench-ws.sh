#!/usr/bin/env bash
# Runs taskqueue's WebSocket fanout and Centrifugo side by side in the same
# rounds (memory per idle subscribed connection, append→client latency):
# installs Centrifugo v6 as a Go module into a cache directory, builds
# taskqueue, raises the file limit, and runs `taskqueue bench ws`.
# Arguments are passed to it (defaults: 3 rounds, 10,000 clients, 1,000
# events/s for 20 s). docs/BENCHMARKS.md, "Realtime fanout", shows figures.
#
#   scripts/bench-ws.sh [--rounds 3] [--clients 10000] [--rate 1000] ...
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${TASKQUEUE_BENCH_BIN:-${XDG_CACHE_HOME:-$HOME/.cache}/taskqueue-bench}"
mkdir -p "$bin"
centrifugo_version="${CENTRIFUGO_VERSION:-v6.9.1}"
if [[ ! -x "$bin/centrifugo-$centrifugo_version" ]]; then
	GOBIN="$bin" go install "github.com/centrifugal/centrifugo/v6@$centrifugo_version"
	mv "$bin/centrifugo" "$bin/centrifugo-$centrifugo_version"
fi
go build -o "$bin/taskqueue" ./cmd/taskqueue
# One socket is a descriptor in the server and one in the clients' process.
ulimit -n "$(ulimit -Hn)"
echo "# $(date -u +%FT%TZ) $(uname -m), $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), file limit $(ulimit -n), load $(cut -d' ' -f1-3 /proc/loadavg), centrifugo $centrifugo_version"
exec "$bin/taskqueue" bench ws --centrifugo "$bin/centrifugo-$centrifugo_version" "$@"
