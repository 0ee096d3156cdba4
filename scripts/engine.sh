#!/usr/bin/env bash
# Choose the Docker Engine the tests run against; one runs at a time, on the
# default socket /var/run/docker.sock.
#   scripts/engine.sh use 20|26   stop the other engine (if this harness
#                                 started it), start this one, give its store
#                                 the base and frontend images, and record it
#                                 in target/harness/engine
#   scripts/engine.sh env         KEY=VALUE lines for the running engine:
#                                 DOCKER, DOCKER_CONFIG, ENGINE, BUILD (not
#                                 shell syntax: BUILD may hold a space)
#   scripts/engine.sh status      which engine answers, with its versions
#   scripts/engine.sh fetch       fetch and unpack engine 26's files (cached)
# 20 is Debian 12's docker.io 20.10; 26 is Debian 13's docker.io 26.1 with
# docker-buildx 0.13, unpacked under target/harness/engine26 (see lib.sh).
# Needs scripts/setup.sh to have run once (registry, base image, binary).
# Switching stops the other daemon: builds running on it (a CI run) fail.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  echo "usage: $0 use 20|26 | env | status | fetch"
}

# The engine recorded by the last `use`, checked against the one answering.
current_engine() {
  local rec="" run
  [[ -s "$ENGINE_FILE" ]] && rec="$(cat "$ENGINE_FILE")"
  run="$(engine_running)"
  [[ -n "$run" ]] || die "no Docker Engine answers on $DOCKER_SOCK (run $0 use 20|26)"
  [[ "$run" != other ]] || die "Docker $(server_version) answers on $DOCKER_SOCK: not an engine this harness knows"
  if [[ -n "$rec" && "$rec" != "$run" ]]; then
    die "$ENGINE_FILE says engine $rec but engine $run answers (run $0 use $rec)"
  fi
  echo "$run"
}

lock_harness() {
  mkdir -p "$HARNESS_DIR" "$LOG_DIR"
  exec 9>"$HARNESS_DIR/.setup.lock"
  flock -w 900 9 || die "another setup.sh or engine.sh holds $HARNESS_DIR/.setup.lock"
}

cmd="${1:-}"
case "$cmd" in
  use)
    if [[ $# != 2 ]] || ! engine_valid "$2"; then
      usage >&2
      exit 2
    fi
    lock_harness
    engine_use "$2"
    engine_images "$2"
    ;;
  env)
    if [[ $# != 1 ]]; then
      usage >&2
      exit 2
    fi
    e="$(current_engine)"
    [[ "$e" != 26 ]] || e26_present || die "engine 26 runs but its CLI is missing under $E26_DIR (run $0 fetch)"
    engine_env "$e"
    ;;
  status)
    e="$(current_engine)"
    if [[ "$e" == 26 ]]; then
      e26_present || die "engine 26 runs but its CLI is missing under $E26_DIR (run $0 fetch)"
      buildx="$(engine_docker 26 buildx version 2>&1 | awk '{print $2}')"
    else
      buildx="none (the classic CLI's DOCKER_BUILDKIT=1 build)"
    fi
    # shellcheck disable=SC2016 # Go templates, not shell
    engine_docker "$e" version --format \
      'engine '"$e"': server {{.Server.Version}} (API {{.Server.APIVersion}}), client {{.Client.Version}}'
    # shellcheck disable=SC2016
    engine_docker "$e" info --format \
      'containerd {{.ContainerdCommit.ID}}, runc {{.RuncCommit.ID}}, storage {{.Driver}}, cgroup v{{.CgroupVersion}}'
    echo "buildx $buildx"
    ;;
  fetch)
    lock_harness
    e26_fetch
    ;;
  -h | --help)
    usage
    ;;
  *)
    usage >&2
    exit 2
    ;;
esac
