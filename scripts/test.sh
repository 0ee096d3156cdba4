#!/usr/bin/env bash
# The project's test command. Prepares the harness (scripts/setup.sh), then:
#   1. every cargo test, end-to-end through Docker 20.10 (`docker build`);
#   2. the end-to-end tests again through Docker 26.1 (`docker buildx build`,
#      frontend image built from frontend.Dockerfile), and the frontend image
#      rebuilt from two clean clones to one ID;
#   3. the engine-3 tests through standalone BuildKit and buildctl;
#   4. the cross-engine checks: each example's rootfs tar is byte-identical
#      on all three, and Docker 26.1's image config is engine 3's, byte for byte.
# Leaves Docker 20.10 running. Extra arguments go to every `cargo test`
# (e.g. scripts/test.sh -- --nocapture). REPRO_ENGINES="20" skips engine 26.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

engines="${REPRO_ENGINES:-20 26}"
REPRO_ENGINE=20 "$SCRIPTS_DIR/setup.sh"

export REPRO_HARNESS_ENV="$HARNESS_DIR/env"
[[ -s "$REPRO_HARNESS_ENV" ]] || die "setup.sh did not write $REPRO_HARNESS_ENV"
cd "$REPO_ROOT"
rm -rf "$HARNESS_DIR/out"

rc=0
step() { # <label> <command...>
  local label="$1"
  shift
  say "$label"
  "$@" || {
    rc=$?
    say "FAILED: $label (exit $rc)"
  }
}

# Every --no-cache build leaves snapshots behind, and neither engine collects
# them by default: drop the build cache, dangling images and the tests'
# own tags (repro-test/build, left by a test that ended without removing its
# image) after each group of tests (the base and frontend images stay), and
# say how much disk is free, so that a run on a small disk shows where it went.
prune() { # <engine>
  local tagged
  engine_docker "$1" builder prune -af >/dev/null 2>&1 || true
  tagged=$(engine_docker "$1" image ls --format '{{.Repository}}:{{.Tag}}' repro-test/build 2>/dev/null || true)
  # shellcheck disable=SC2086 # one tag per word
  [[ -z "$tagged" ]] || engine_docker "$1" image rm -f $tagged >/dev/null 2>&1 || true
  engine_docker "$1" image prune -f >/dev/null 2>&1 || true
  disk_free "after pruning engine $1"
}
disk_free() { # <when>
  say "disk: $(df -h --output=avail "$REPO_ROOT" | tail -n 1 | tr -d ' ') free $1"
}

# The corpus sets (a root filesystem of a few hundred MB each, several times
# over in the cache) run as a group of their own, with a prune before and
# after, so the cache of the whole suite is never on disk at once.
CORPUS=e2e::corpus
# The extra arguments with `--skip $CORPUS` for the test binary after them.
but_corpus=("$@")
[[ " $* " == *" -- "* ]] || but_corpus+=(--)
but_corpus+=(--skip "$CORPUS")

# One test at a time on Docker 20.10: its BuildKit (v0.8) can panic ("failed
# to get edge") or refuse reads ("invalid request ... for build") when
# concurrent builds share ops, which the tests' builds do.
disk_free "before the tests"
step "engine 20: cargo test --all-targets (but the corpus)" env REPRO_ENGINE=20 RUST_TEST_THREADS=1 \
  cargo test --all-targets "${but_corpus[@]}"
prune 20
step "engine 20: the corpus" env REPRO_ENGINE=20 RUST_TEST_THREADS=1 cargo test --test tests "$CORPUS" "$@"
prune 20
if [[ " $engines " == *" 26 "* ]]; then
  "$SCRIPTS_DIR/engine.sh" use 26
  step "engine 26: cargo test --test tests e2e (but the corpus)" env REPRO_ENGINE=26 \
    cargo test --test tests e2e "${but_corpus[@]}"
  prune 26
  step "engine 26: the corpus" env REPRO_ENGINE=26 cargo test --test tests "$CORPUS" "$@"
  prune 26
  step "engine 26: buildx --print targets, --sbom=true, the provenance" env REPRO_ENGINE=26 \
    cargo test --test tests -- --ignored e2e::targets::buildx e2e::sbom::buildx e2e::provenance::buildx
  step "engine 26: the frontend image from two clean clones" env REPRO_ENGINE=26 \
    cargo test --test tests -- --ignored e2e::frontend_image
  prune 26
  "$SCRIPTS_DIR/engine.sh" use 20
fi
# Engine 3 runs beside whichever dockerd is up; one build at a time (a
# faulty blob's fetch would be shared by concurrent builds of the same one).
step "engine 3: cargo test --test tests engine3 -- --ignored" env RUST_TEST_THREADS=1 \
  cargo test --test tests engine3 -- --ignored
e3_ctl prune --all >/dev/null 2>&1 || true
disk_free "after pruning engine 3"
if [[ " $engines " == *" 26 "* ]]; then
  step "all engines: cargo test --test tests cross_engine -- --ignored" \
    cargo test --test tests cross_engine -- --ignored
fi
exit "$rc"
