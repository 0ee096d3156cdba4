#!/usr/bin/env bash
# scripts/serve-pool.sh start|stop|status
# Serve target/harness/pool over HTTP on 127.0.0.1 (port 8765 if free, else
# the next free one). The base URL (no trailing slash) goes to
# target/harness/pool.url, so a blob is at "$(cat pool.url)/<lockfile name>".
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PIDFILE="$HARNESS_DIR/pool-server.pid"
URLFILE="$HARNESS_DIR/pool.url"
LOG="$HARNESS_DIR/pool-server.log"


serving() {
  pid_alive "$PIDFILE" pool.py && [[ -s "$URLFILE" ]] &&
    curl -fsS -o /dev/null --max-time 3 "$(cat "$URLFILE")/" 2>/dev/null
}

start() {
  if serving; then
    say "pool: already serving at $(cat "$URLFILE")"
    return
  fi
  stop >/dev/null
  [[ -x "$PYTHON" ]] || die "$PYTHON not found (run scripts/setup.sh)"
  [[ -d "$POOL_DIR" ]] || die "$POOL_DIR does not exist (run scripts/setup.sh)"
  local port i
  port=$(free_port 8765)
  setsid nohup "$PYTHON" "$SCRIPTS_DIR/pool.py" "$POOL_DIR" "$port" \
    </dev/null >>"$LOG" 2>&1 9>&- &
  echo $! >"$PIDFILE"
  local url="http://127.0.0.1:$port"
  for ((i = 0; i < 100; i++)); do
    curl -fsS -o /dev/null --max-time 2 "$url/" 2>/dev/null && break
    ! pid_gone "$PIDFILE" || {
      tail -n 20 "$LOG" | sed 's/^/    /' >&2
      die "pool server exited during start-up (log: $LOG)"
    }
    sleep 0.1
  done
  curl -fsS -o /dev/null --max-time 2 "$url/" 2>/dev/null ||
    die "pool server did not answer at $url within 10s (log: $LOG)"
  echo "$url" >"$URLFILE"
  say "pool: serving $POOL_DIR at $url (pid $(cat "$PIDFILE"))"
}

stop() {
  stop_pidfile "$PIDFILE" pool.py "pool server" 10
  rm -f "$URLFILE"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status)
    if serving; then
      cat "$URLFILE"
    else
      say "pool: not serving"
      exit 1
    fi
    ;;
  *) die "usage: $0 start|stop|status" ;;
esac
