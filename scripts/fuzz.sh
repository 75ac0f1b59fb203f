#!/usr/bin/env bash
# Runs every fuzz target, one at a time, for a bounded time each.
#
#   scripts/fuzz.sh                     every target, FUZZTIME each (default 20s)
#   FUZZTIME=2m scripts/fuzz.sh         longer
#   FUZZTIME=10000x scripts/fuzz.sh     a number of executions instead of a time
#   scripts/fuzz.sh FuzzVerify ...      only the named targets
#
# `go test -fuzz` takes one package and one target per run, so each target
# runs on its own: its seeds first (f.Add and testdata/fuzz/<target>), then
# fuzzing. A failing input is written to testdata/fuzz/<target>/ in the
# package: commit it with the fix, so that every `go test` replays it. New
# interesting inputs go to the Go build cache ($(go env GOCACHE)/fuzz), not
# to the work tree. Every target runs even when one fails; the exit status is
# non-zero when any failed.
#
# Go 1.26's fuzzing coordinator can end a duration-bounded run with a bare
# "context deadline exceeded" and no failing input (go.dev/issue/75804, fixed
# in Go 1.27). Such a run is reported as a flake, not a failure: it found
# nothing. A count (FUZZTIME=200000x) avoids the race altogether.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

FUZZTIME=${FUZZTIME:-20s}
# A bare number means seconds.
if [[ $FUZZTIME =~ ^[0-9]+$ ]]; then
	FUZZTIME=${FUZZTIME}s
fi

# package and target, one pair a line.
TARGETS=(
	"./internal/token FuzzRefreshParse"
	"./internal/token FuzzVerify"
	"./internal/server FuzzGraphQLRequest"
	"./graph FuzzDocumentBounds"
	"./internal/store/embedded FuzzDecodeSession"
	"./internal/store/dynamo FuzzUnpackData"
)

SELECTED=("$@")

# selected NAME succeeds when NAME is to run: no names were given, or it is one of them.
selected() {
	[ ${#SELECTED[@]} -eq 0 ] && return 0
	local w
	for w in "${SELECTED[@]}"; do
		[ "$w" = "$1" ] && return 0
	done
	return 1
}

for name in "${SELECTED[@]}"; do
	found=0
	for t in "${TARGETS[@]}"; do
		[ "${t#* }" = "$name" ] && found=1
	done
	[ "$found" = 1 ] || { echo "fuzz: unknown target $name" >&2; exit 2; }
done

failed=()
flaked=()
ran=0
out=$(mktemp)
trap 'rm -f "$out"' EXIT

# corpus PKG NAME lists the committed inputs of a target.
corpus() { ls -1 "$1/testdata/fuzz/$2" 2>/dev/null || true; }

for t in "${TARGETS[@]}"; do
	pkg=${t% *}
	name=${t#* }
	selected "$name" || continue
	ran=$((ran + 1))
	echo "fuzz: $name in $pkg for $FUZZTIME" >&2
	before=$(corpus "$pkg" "$name")
	set +e
	go test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" "$pkg" 2>&1 | tee "$out"
	rc=${PIPESTATUS[0]}
	set -e
	if [ "$rc" -eq 0 ]; then
		echo "fuzz: $name passed" >&2
	elif [ "$before" = "$(corpus "$pkg" "$name")" ] &&
		grep -qx '    context deadline exceeded' "$out" &&
		! grep -q -e 'failure while testing seed corpus' -e 'Failing input written' "$out"; then
		echo "fuzz: $name stopped with the coordinator's deadline race (go.dev/issue/75804), no failing input: not a failure" >&2
		flaked+=("$name")
	else
		echo "fuzz: $name FAILED (a new failing input, if any, is in $pkg/testdata/fuzz/$name/)" >&2
		failed+=("$name")
	fi
done

if [ ${#flaked[@]} -gt 0 ]; then
	echo "fuzz: deadline race, ignored: ${flaked[*]}" >&2
fi
if [ ${#failed[@]} -gt 0 ]; then
	echo "fuzz: ${#failed[@]} of $ran targets failed: ${failed[*]}" >&2
	exit 1
fi
echo "fuzz: no failure in $ran targets" >&2
