#!/usr/bin/env bash
# Rebuilds a checkout's frontend image the way set-up makes it, and prints
# its ID, to compare with another build of the same commit:
#   scripts/frontend-image.sh [--repo DIR] [--tag NAME]
# DIR (default: this checkout; best a clean clone of the commit) gets its
# static binary built under DIR/target/static with its path and cargo's home
# remapped (static_bin_build), and its image made from its frontend.Dockerfile
# with the times of its last commit (frontend_image_tar: buildx on engine 26
# when its files are set up, else a `docker load` archive). The image is
# loaded into the running engine as NAME (default repro-frontend:rebuilt)
# and the last line printed is
#   frontend image NAME sha256:<hex>
# Needs a finished scripts/setup.sh (an engine running; engine 26's files for
# the buildx build).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

repo="$REPO_ROOT"
tag="repro-frontend:rebuilt"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --repo) repo="$(cd "${2:?--repo needs a folder}" && pwd -P)"; shift 2 ;;
    --tag) tag="${2:?--tag needs a name}"; shift 2 ;;
    *) die "unknown argument '$1' (usage: scripts/frontend-image.sh [--repo DIR] [--tag NAME])" ;;
  esac
done
need_root "building the frontend image"

static_bin_build "$repo"
out="$HARNESS_DIR/rebuilt-frontend-image.tar"
frontend_image_tar "$repo" "$(static_bin_of "$repo")" "$tag" "$out"
e="$(engine_running)"
engine_valid "$e" || die "no engine of this harness is running (run scripts/setup.sh)"
run_logged frontend-rebuilt-load engine_docker "$e" load -i "$out"
rm -f "$out"
say "binary sha256 $(sha256sum "$(static_bin_of "$repo")" | cut -d' ' -f1), commit $(git -C "$repo" rev-parse HEAD)"
echo "frontend image $tag $(engine_docker "$e" image inspect --format '{{.Id}}' "$tag")"
