#!/usr/bin/env bash
# The checked soak against DynamoDB Local (issue "Hardening"): mixed traffic
# (login, refresh, concurrent duplicate refreshes, probes with revoked
# sessions' tokens, revoke) for a bounded time over loopback, then the
# invariants checked through the GraphQL API and in the table itself:
#
#   bench/soak.sh [DURATION]        (default 3m; USERS, default 64)
#
# DynamoDB Local is started and stopped by scripts/dynamodb-local.sh (or an
# already running one is used). The service runs with a reuse interval of
# REUSE_INTERVAL (default 1s), so that the last check can wait it out. The
# summary on stderr ends with "N passed, N failed"; the exit status is 1 when
# an invariant failed. The JSON line goes to $OUT/soak-check.jsonl (default:
# a new temporary directory, printed at the end). The whole run takes the
# soak's duration plus about a minute (build, start, checks).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

SOAK=${1:-${SOAK:-3m}}
USERS=${USERS:-64}
REUSE_INTERVAL=${REUSE_INTERVAL:-1s}
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/meshauth-soak-results.XXXXXX")}
mkdir -p "$OUT"
BIN_DIR=$(mktemp -d "${TMPDIR:-/tmp}/meshauth-soak-bin.XXXXXX")
trap 'rm -rf "$BIN_DIR"' EXIT

echo "soak: building the service and the harness" >&2
go build -o "$BIN_DIR/meshauth" ./cmd/meshauth
go build -o "$BIN_DIR/bench" ./bench
echo "soak: $(nproc) CPUs, $(uname -sr), $(go version | cut -d' ' -f3), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)" >&2

rc=0
scripts/dynamodb-local.sh run -- "$BIN_DIR/bench" -bin "$BIN_DIR/meshauth" -users "$USERS" \
	-store dynamodb -soak "$SOAK" -check -reuse-interval "$REUSE_INTERVAL" -cold-starts 1 \
	>"$OUT/soak-check.jsonl" || rc=$?

echo >&2
echo "soak: JSON line in $OUT/soak-check.jsonl (exit status $rc)" >&2
exit "$rc"
