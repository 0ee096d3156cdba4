# shellcheck shell=bash
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
