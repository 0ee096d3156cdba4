#!/usr/bin/env bash
# Stop what scripts/setup.sh and scripts/engine.sh started (pool server,
# registry, dockerd of engine 20 or 26), found by their pidfiles in
# target/harness/. Processes not started by them are left alone. Caches (base
# image, lockfiles, pool, registry data, engine 26's files) are kept unless
# --purge is given: then the images setup.sh made are removed from the
# running engine's store and target/harness is deleted. The engines' data
# roots (/var/lib/docker, /var/lib/docker-26) stay.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

purge=0
case "${1:-}" in
  "") ;;
  --purge) purge=1 ;;
  -h | --help)
    echo "usage: $0 [--purge]"
    exit 0
    ;;
  *) die "unknown argument '$1' (usage: $0 [--purge])" ;;
esac

if [[ ! -d "$HARNESS_DIR" ]]; then
  say "nothing to do: $HARNESS_DIR does not exist"
  exit 0
fi

# Wait for a running setup.sh to finish before pulling things from under it.
exec 9>"$HARNESS_DIR/.setup.lock"
flock -w 60 9 || say "warning: a setup.sh still holds $HARNESS_DIR/.setup.lock after 60s; going on"

"$SCRIPTS_DIR/serve-pool.sh" stop

if ((purge)) && docker_up; then
  imgs=("$FRONTEND_IMAGE" "$BASE_TAG")
  [[ -s "$HARNESS_DIR/base.ref" ]] && imgs+=("$(cat "$HARNESS_DIR/base.ref")")
  for img in "${imgs[@]}"; do
    if "$DOCKER" image inspect "$img" >/dev/null 2>&1; then
      "$DOCKER" rmi -f "$img" >/dev/null 2>&1 || say "images: could not remove $img"
    fi
  done
  say "images: removed $FRONTEND_IMAGE and $BASE_REPO"
elif ((purge)); then
  say "images: docker is not running, images (if any) left in place"
fi

e3_stop
stop_pidfile "$HARNESS_DIR/registry.pid" docker-registry registry 15
for e in "${ENGINES[@]}"; do
  engine_stop "$e"
done
rm -f "$ENGINE_FILE"

if ((purge)); then
  exec 9>&-
  rm -rf "$HARNESS_DIR"
  say "purged $HARNESS_DIR"
fi
