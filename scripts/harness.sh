# Process handling shared by e2e/run.sh and browser/run.sh, which source it
# after defining log(). Not meant to be run on its own.

# require_tools NAME: exit unless go, node (20 or newer), npm and curl exist.
require_tools() {
  local tool
  for tool in go node npm curl; do
    command -v "$tool" >/dev/null || { echo "$1: $tool is required" >&2; exit 1; }
  done
  node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' ||
    { echo "$1: Node 20 or newer is required (found $(node --version))" >&2; exit 1; }
}

# stop PID [NAME]: SIGTERM, up to 10 s to exit, then SIGKILL.
stop() {
  local pid=$1 name=${2:-process} i
  kill -0 "$pid" 2>/dev/null || { { wait "$pid"; } 2>/dev/null || true; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "$name (pid $pid) ignored SIGTERM for 10 s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  local status=0
  { wait "$pid"; } 2>/dev/null || status=$?
  if ((status != 0)); then log "$name (pid $pid) exited with status $status"; fi
}

# free_port: a loopback port nothing listens on.
free_port() {
  node -e 'const s = require("net").createServer(); s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });'
}

# wait_until SECONDS PID NAME COMMAND...: run COMMAND every 0.25 s until it
# succeeds; fail when PID exits or the time is up.
wait_until() {
  local limit=$1 pid=$2 name=$3 deadline=$((SECONDS + $1))
  shift 3
  until "$@" >/dev/null 2>&1; do
    if ! kill -0 "$pid" 2>/dev/null; then
      log "$name exited before it was ready"
      return 1
    fi
    if ((SECONDS >= deadline)); then
      log "$name was not ready within ${limit}s"
      return 1
    fi
    sleep 0.25
  done
}

# show_log FILE: the end of a log, to see why something failed.
show_log() {
  echo "----- last lines of $(basename "$1") -----"
  tail -n 40 "$1" || true
  echo "-----"
}
