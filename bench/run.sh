#!/usr/bin/env bash
# Runs the whole load benchmark and prints its tables:
#
#   1. the embedded store: login, refresh, mixed, burst, against the ceiling;
#   2. DynamoDB Local (started and stopped by scripts/dynamodb-local.sh):
#      the same scenarios, against the ceiling and DynamoDB Local's own rate,
#      then login with the default limits and with them off, back to back;
#   3. with -soak DURATION (e.g. -soak 5m), a mixed soak on the embedded store
#      with RSS sampled every 10 s.
#
#   bench/run.sh [-soak 5m]
#
# DURATION (default 10s) and USERS (default 64) set each scenario's measured
# time and concurrency; OUT names a directory for the JSON lines (default: a
# new temporary directory, printed at the end). With the defaults a run takes
# about 3 to 4 minutes on 2 cores, the soak not included.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

DURATION=${DURATION:-10s}
USERS=${USERS:-64}
SOAK=
while [ $# -gt 0 ]; do
	case "$1" in
	-soak | --soak)
		[ $# -ge 2 ] || { echo "usage: $0 [-soak DURATION]" >&2; exit 2; }
		SOAK=$2
		shift 2
		;;
	*)
		echo "usage: $0 [-soak DURATION]" >&2
		exit 2
		;;
	esac
done

OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/meshauth-bench-results.XXXXXX")}
mkdir -p "$OUT"
BIN_DIR=$(mktemp -d "${TMPDIR:-/tmp}/meshauth-bench-bin.XXXXXX")
trap 'rm -rf "$BIN_DIR"' EXIT

echo "bench: building the service and the harness" >&2
go build -o "$BIN_DIR/meshauth" ./cmd/meshauth
go build -o "$BIN_DIR/bench" ./bench
echo "bench: $(nproc) CPUs, $(uname -sr), $(go version | cut -d' ' -f3), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)" >&2

common=(-bin "$BIN_DIR/meshauth" -duration "$DURATION" -users "$USERS")

echo >&2
echo "=== embedded store ===" >&2
"$BIN_DIR/bench" "${common[@]}" -store embedded >"$OUT/embedded.jsonl"

echo >&2
echo "=== DynamoDB Local ===" >&2
# The same DynamoDB Local then serves the login scenario twice more, back to
# back, with the default login limits and with them off, for the target
# "login with the default limits is at least 80 % of the same service's
# login rate without them": adjacent runs, so that DynamoDB Local's JIT and
# table are in the same state for both.
scripts/dynamodb-local.sh run -- bash -c '
	"$0" "${@:3}" -store dynamodb -cold-starts 3 >"$1/dynamodb.jsonl" &&
	echo "=== DynamoDB Local, login with the default limits, then with LOGIN_LIMIT_ACCOUNT=off LOGIN_LIMIT_IP=off ===" >&2 &&
	"$0" "${@:3}" -store dynamodb -cold-starts 1 -ceiling=false -scenarios login >"$1/dynamodb-limits-on.jsonl" &&
	"$0" "${@:3}" -store dynamodb -cold-starts 1 -ceiling=false -scenarios login \
		-service-env LOGIN_LIMIT_ACCOUNT=off -service-env LOGIN_LIMIT_IP=off -limited "$1/dynamodb-limits-on.jsonl" >"$1/dynamodb-limits-off.jsonl"
' "$BIN_DIR/bench" "$OUT" x "${common[@]}"

if [ -n "$SOAK" ]; then
	echo >&2
	echo "=== soak: mixed for $SOAK, embedded store ===" >&2
	"$BIN_DIR/bench" -bin "$BIN_DIR/meshauth" -users "$USERS" -store embedded -soak "$SOAK" -cold-starts 1 >"$OUT/soak.jsonl"
fi

echo >&2
echo "bench: JSON lines in $OUT" >&2
