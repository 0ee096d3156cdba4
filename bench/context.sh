# shellcheck shell=bash
# shellcheck disable=SC2154 # $root, $engine, $out: the sourcing script's globals (below)
# bench/context.sh: sourced by the bench scripts (after scripts/lib.sh and
# target/harness/env).

# bench_context <example> <dir>: the example (or, for python, the corpus
# set), its harness lockfile and the hand-written bench/<example>/Dockerfile,
# in a fresh <dir>.
bench_context() {
  rm -rf "$2" && mkdir -p "$2"
  if [[ "$1" == python ]]; then
    cp "$REPO_ROOT/tests/corpus/python"/* "$2/"
    cp "$LOCK_DIR/corpus-python/SHA256SUMS-amd64" "$2/SHA256SUMS-amd64"
  else
    cp "$REPO_ROOT/examples/$1"/* "$2/"
    cp "$LOCK_DIR/$1/SHA256SUMS-amd64" "$2/SHA256SUMS-amd64"
  fi
  cp "$REPO_ROOT/bench/$1/Dockerfile" "$2/Dockerfile"
}

# The helpers below read the sourcing script's globals: $root (the repo),
# $PYTHON and $POOL_DIR (the harness), $out (where raw.tsv is), $engine
# (the engine measured) and the array pool_pids (killed on exit).

# start_pool <variable> <delay ms>: serves the harness pool and sets
# <variable> to its URL. Not in a $(...) subshell: cleanup needs the pid.
start_pool() {
  local port i
  port=$(free_port 18700)
  "$PYTHON" "$root/scripts/pool.py" "$POOL_DIR" "$port" "$2" </dev/null >/dev/null 2>&1 &
  pool_pids+=($!)
  for ((i = 0; i < 100; i++)); do
    if curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$port/" 2>/dev/null; then
      printf -v "$1" 'http://127.0.0.1:%s' "$port"
      return
    fi
    sleep 0.1
  done
  die "the package pool on port $port did not answer within 10 s"
}

# stats <table> <row> <side>: "median min max" in ms over this engine's rounds.
stats() {
  awk -F'\t' -v e="$engine" -v t="$1" -v r="$2" -v s="$3" \
    '$1 == e && $2 == t && $3 == r && $4 == s { print $6 }' "$out/raw.tsv" |
    sort -n | awk '{ v[NR] = $1 } END {
      if (NR == 0) { print "0 0 0"; exit }
      m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
      print m, v[1], v[NR] }'
}

secs() { awk -v m="$1" 'BEGIN { printf "%.2f", m / 1000 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "-"; else printf "%.2fx", a / b }'; }
cell() {
  local m lo hi
  read -r m lo hi <<<"$(stats "$@")"
  printf '%s (%s-%s)' "$(secs "$m")" "$(secs "$lo")" "$(secs "$hi")"
}
median() {
  local m _
  read -r m _ <<<"$(stats "$@")"
  echo "$m"
}

# step_ms <log> <regex>: the summed DONE times (ms) of the build steps whose
# progress name matches <regex> (from --progress=plain).
step_ms() {
  awk -v re="$2" '
    /^#[0-9]+ / {
      n = $1; rest = substr($0, length($1) + 2)
      if (!(n in name) && rest !~ /^(DONE|CACHED|ERROR|sha256:|[0-9.]+ )/) name[n] = rest
      if (rest ~ /^DONE [0-9.]+s$/) { d = rest; sub(/^DONE /, "", d); sub(/s$/, "", d); done[n] = d }
    }
    END { s = 0; for (n in done) if (name[n] ~ re) s += done[n]; printf "%d", s * 1000 }' "$1"
}

