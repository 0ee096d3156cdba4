#!/usr/bin/env bash
# The project's test command: prepare the harness (scripts/setup.sh), then run
# every cargo test with REPRO_HARNESS_ENV pointing at target/harness/env.
# Extra arguments go to `cargo test`, e.g. scripts/test.sh -- --nocapture
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

"$SCRIPTS_DIR/setup.sh"

export REPRO_HARNESS_ENV="$HARNESS_DIR/env"
[[ -s "$REPRO_HARNESS_ENV" ]] || die "setup.sh did not write $REPRO_HARNESS_ENV"
say "cargo test --all-targets (REPRO_HARNESS_ENV=$REPRO_HARNESS_ENV)"
cd "$REPO_ROOT"
rc=0
cargo test --all-targets "$@" || rc=$?
if ((rc != 0)); then
  say "FAILED: cargo test exited with $rc"
fi
exit "$rc"
