#!/usr/bin/env bash
# The main job: build an example recipe twice through a real engine, with
# --no-cache, and show that both builds give the same image digest.
#   scripts/demo.sh [hello|gcc]
# Runs as root. Sets up only what it needs first, with scripts/setup.sh's
# phases: Docker 20.10, a local registry, a debootstrap base image, the
# frontend image and the example's package pool, served on 127.0.0.1 (no
# other engine, no test fixtures: scripts/test.sh sets up all of those).
set -euo pipefail

example=${1:-hello}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
[[ -f "$root/examples/$example/repro.yaml" ]] || { echo "demo: no example \"$example\"" >&2; exit 2; }

REPRO_ENGINES=20 REPRO_ENGINE=20 \
  "$root/scripts/setup.sh" --only "engine,registry,base,frontend,pool:$example"
# shellcheck source=scripts/state.sh
source "$root/scripts/state.sh"
state_load "$root/target/harness/env"
"$root/scripts/serve-pool.sh" start >/dev/null
trap '"$root/scripts/serve-pool.sh" stop >/dev/null 2>&1 || true' EXIT
mirror=$(cat "$HARNESS_DIR/pool.url")

# The example's folder is the build context; its lockfile is the one the
# harness computed against the local base image (mirrors drop old versions).
ctx="$HARNESS_DIR/demo/$example"
rm -rf "$ctx" && mkdir -p "$ctx"
cp "$root/examples/$example"/* "$ctx/"
cp "$LOCK_DIR/$example/SHA256SUMS-amd64" "$ctx/SHA256SUMS-amd64"

ids=()
for n in 1 2; do
  echo "== build $n of examples/$example/repro.yaml (--no-cache)"
  DOCKER_BUILDKIT=1 "$DOCKER" build --no-cache --progress=plain \
    --build-arg "BASE=$BASE_REF" --build-arg "MIRROR=$mirror" \
    --iidfile "$ctx/iid$n" -f "$root/examples/$example/repro.yaml" "$ctx" \
    >"$ctx/build$n.log" 2>&1 || { tail -n 40 "$ctx/build$n.log" >&2; exit 1; }
  ids+=("$(cat "$ctx/iid$n")")
  echo "   image ${ids[-1]}"
done

echo "== the container says:"
"$DOCKER" run --rm "${ids[0]}"
if [[ "${ids[0]}" == "${ids[1]}" ]]; then
  echo "== identical: ${ids[0]}"
else
  echo "== DIFFERENT: ${ids[0]} vs ${ids[1]}" >&2
  exit 1
fi
