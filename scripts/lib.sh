# shellcheck shell=bash disable=SC2034 # variables are used by the sourcing scripts
# Shared helpers for the repro-frontend test harness scripts.
# Sourced by scripts/*.sh; not meant to be run directly.

# Absolute paths, derived from this file's location.
SCRIPTS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
REPO_ROOT="$(cd "$SCRIPTS_DIR/.." && pwd -P)"
HARNESS_DIR="$REPO_ROOT/target/harness"

# Always Debian's docker.io client (another client may come first in PATH).
DOCKER=/usr/bin/docker
DOCKERD=/usr/sbin/dockerd
export DOCKER_BUILDKIT=1

REGISTRY=127.0.0.1:5000
BASE_REPO="$REGISTRY/repro/debian"
BASE_TAG="$BASE_REPO:bookworm"
FRONTEND_IMAGE=repro-frontend:v0

POOL_DIR="$HARNESS_DIR/pool"
LOCK_DIR="$HARNESS_DIR/lock"
LOG_DIR="$HARNESS_DIR/logs"

: "${VERBOSE:=0}"
export LC_ALL=C

_script_name="$(basename "${0:-harness}")"
_script_name="${_script_name%.sh}"

say() { printf '%s: %s\n' "$_script_name" "$*"; }
die() {
  printf '%s: ERROR: %s\n' "$_script_name" "$*" >&2
  exit 1
}

# run_logged <logname> <cmd...>: run quietly, output to $LOG_DIR/<logname>.log;
# on failure show the log's tail and exit. VERBOSE=1 streams the output too.
run_logged() {
  local name="$1"
  shift
  mkdir -p "$LOG_DIR"
  local log="$LOG_DIR/$name.log"
  local rc=0
  if [[ "$VERBOSE" == 1 ]]; then
    "$@" 2>&1 | tee "$log" || rc=${PIPESTATUS[0]}
  else
    "$@" >"$log" 2>&1 </dev/null || rc=$?
  fi
  if ((rc != 0)); then
    printf '%s: ERROR: "%s" failed (exit %d); last lines of %s:\n' \
      "$_script_name" "$*" "$rc" "$log" >&2
    tail -n 40 "$log" | sed 's/^/    /' >&2
    exit "$rc"
  fi
}

# Seconds since the given epoch value (from `date +%s`).
since() { echo $(($(date +%s) - $1)); }

# pid_alive <pidfile> [comm-substring]: true if the pidfile names a live
# process (and, if given, its command line contains the substring).
pid_alive() {
  local pidfile="$1" want="${2:-}" pid
  [[ -s "$pidfile" ]] || return 1
  pid="$(cat "$pidfile")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [[ -d "/proc/$pid" ]] || return 1
  if [[ -n "$want" ]]; then
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$want" || return 1
  fi
  return 0
}

# stop_pidfile <pidfile> <comm-substring> <what> [timeout]: SIGTERM the
# process named by the pidfile (only if it still matches), wait, then KILL.
stop_pidfile() {
  local pidfile="$1" want="$2" what="$3" timeout="${4:-30}" pid i
  if ! pid_alive "$pidfile" "$want"; then
    rm -f "$pidfile"
    say "$what: not running (nothing to stop)"
    return 0
  fi
  pid="$(cat "$pidfile")"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < timeout * 10; i++)); do
    [[ -d "/proc/$pid" ]] || break
    sleep 0.1
  done
  if [[ -d "/proc/$pid" ]]; then
    say "$what: still running after ${timeout}s, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.5
  fi
  rm -f "$pidfile"
  say "$what: stopped (pid $pid)"
}

docker_up() { "$DOCKER" info >/dev/null 2>&1; }

registry_up() {
  curl -fsS -o /dev/null --max-time 3 "http://$REGISTRY/v2/" 2>/dev/null
}
