#!/usr/bin/env bash
# Prepare everything the end-to-end tests need, on Debian 12 as root:
#   packages, the engines' files, dockerd, a local registry on 127.0.0.1:5000,
#   a debootstrapped base image pushed there (pinned by digest), the frontend
#   image repro-frontend:v0, and package lockfiles with a verified local blob
#   pool.
# Engines (see scripts/engine.sh): REPRO_ENGINES="20 26" (the default) lists
# the engines whose files to prepare (26: Debian 13's docker.io 26.1 and
# docker-buildx, fetched and unpacked, cached); REPRO_ENGINE (default 20) is
# the one left running, with the images in its store.
# All state lives in target/harness/. Idempotent: a second run only rebuilds
# the frontend image. Quiet by default (VERBOSE=1 streams command output);
# command logs are kept in target/harness/logs/.
#
#   scripts/setup.sh                  every phase (what scripts/test.sh needs)
#   scripts/setup.sh --only LIST      only the phases in LIST, comma-separated:
#     engine    the engines' files (REPRO_ENGINES) and the running dockerd
#     registry  the local registry on 127.0.0.1:5000
#     base      the debootstrapped base image, pushed and pinned
#     frontend  the static binary and the frontend image
#     pool      every example's lockfile and blobs; pool:NAME[+NAME] only those
#     corpus    the corpus lockfiles and blobs (needs pool:hello's mirror)
#     multi     an arm64 base (debootstrap under qemu-user-static) pushed
#               with the amd64 one as a two-platform index, and the
#               examples' lockfiles and blobs for both (needs pool:hello)
#     rpm, pacman, noapt   the test fixtures of those kinds (noapt: bases
#               without apt-get, and without dpkg either)
#     engine3   standalone BuildKit (see scripts/buildkit.sh)
#   Packages (only those the chosen phases need), binfmt_misc's entry for
#   arm64 (registered before any engine starts: BuildKit looks for emulators
#   when it starts) and target/harness/env are always done. scripts/demo.sh runs engine,registry,base,frontend,pool:<example>.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Example package sets: "<name>:<space-separated packages>".
EXAMPLES=(
  "hello:hello"
  "gcc:gcc libc6-dev"
)
ARCH=amd64
# The other platform of the two-platform tests, run under emulation.
OTHER_ARCH=arm64

# Phases in the order they run (see the header); packages and env always run.
ALL_PHASES=(engine registry base frontend pool corpus multi rpm pacman noapt engine3)
declare -A WANT=()
POOL_EXAMPLES=()
usage="usage: $0 [--only PHASE[,PHASE...]] (phases: ${ALL_PHASES[*]}, pool:NAME[+NAME])"
only=""
while (($# > 0)); do
  case "$1" in
    --only)
      (($# >= 2)) || die "--only needs a list of phases; $usage"
      only="$2"
      shift 2
      ;;
    --only=*)
      only="${1#--only=}"
      shift
      ;;
    -h | --help)
      echo "$usage"
      exit 0
      ;;
    *) die "unknown argument '$1'; $usage" ;;
  esac
  [[ -n "$only" ]] || die "--only needs a list of phases; $usage"
done
example_known() { # <name>
  local spec
  for spec in "${EXAMPLES[@]}"; do
    [[ "${spec%%:*}" == "$1" ]] && return 0
  done
  return 1
}
if [[ -z "$only" ]]; then
  for p in "${ALL_PHASES[@]}"; do WANT[$p]=1; done
  for spec in "${EXAMPLES[@]}"; do POOL_EXAMPLES+=("${spec%%:*}"); done
else
  IFS=, read -ra chosen <<<"$only"
  for p in "${chosen[@]}"; do
    case "$p" in
      pool:*)
        WANT[pool]=1
        IFS=+ read -ra names <<<"${p#pool:}"
        for n in "${names[@]}"; do
          example_known "$n" || die "--only: no example '$n' (examples: ${EXAMPLES[*]%%:*})"
          POOL_EXAMPLES+=("$n")
        done
        ;;
      pool)
        WANT[pool]=1
        for spec in "${EXAMPLES[@]}"; do POOL_EXAMPLES+=("${spec%%:*}"); done
        ;;
      *)
        [[ " ${ALL_PHASES[*]} " == *" $p "* ]] || die "--only: unknown phase '$p'; $usage"
        WANT[$p]=1
        ;;
    esac
  done
fi
want() { [[ -n "${WANT[$1]:-}" ]]; }

# What every phase needs, then what only some do.
PACKAGES=(docker.io docker-registry debootstrap curl ca-certificates python3 python3-venv
  cgroupfs-mount qemu-user-static)
! want rpm || PACKAGES+=(rpm)
! want pacman || PACKAGES+=(pacman-package-manager makepkg libarchive-tools zstd gnupg)
# /usr/bin/time is for bench/frontend-cost.sh, which runs after a full set-up.
[[ -n "$only" ]] || PACKAGES+=(time)
# `ip` finds the engine bridge's address for the mirror off the loopback
# (tests/support/pool.rs), after a full set-up.
[[ -n "$only" ]] || PACKAGES+=(iproute2)

: "${REPRO_ENGINES:=20 26}"
: "${REPRO_ENGINE:=20}"
read -ra PREP_ENGINES <<<"$REPRO_ENGINES"
for e in "${PREP_ENGINES[@]}"; do
  engine_valid "$e" || die "REPRO_ENGINES: unknown engine '$e' (known: ${ENGINES[*]})"
done
engine_valid "$REPRO_ENGINE" || die "REPRO_ENGINE: unknown engine '$REPRO_ENGINE' (known: ${ENGINES[*]})"

[[ "$HARNESS_DIR" != *[[:space:]]* ]] ||
  die "the repository path must not contain whitespace: $REPO_ROOT"
mkdir -p "$HARNESS_DIR" "$LOG_DIR"

# One setup at a time.
exec 9>"$HARNESS_DIR/.setup.lock"
flock -w 900 9 || die "another setup.sh or engine.sh holds $HARNESS_DIR/.setup.lock"

T0=$(date +%s)

# ---------------------------------------------------------------- packages
phase_packages() {
  local t missing=() p
  t=$(date +%s)
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed ||
      missing+=("$p")
  done
  if ((${#missing[@]} == 0)); then
    say "packages: all present"
    return
  fi
  need_root "installing ${missing[*]}"
  # Keep the packages' init scripts from starting their own daemons (the
  # packaged docker-registry would take :5000 with an htpasswd config).
  local policy=/usr/sbin/policy-rc.d made_policy=0
  if [[ ! -e "$policy" ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 0755 "$policy"
    made_policy=1
  fi
  export DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1
  local rc=0
  (
    run_logged apt-update apt-get update -q
    run_logged apt-install apt-get install -y -q \
      -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
      "${missing[@]}"
  ) || rc=$?
  ((made_policy)) && rm -f "$policy"
  ((rc == 0)) || exit "$rc"
  say "packages: installed ${missing[*]} ($(since "$t")s)"
}

# The kernel runs arm64 programs through Debian's qemu-user-static: its
# binfmt_misc entry, registered as the package ships it (flag F: the kernel
# opens the emulator now, so it works inside containers too). Done before
# any engine starts: BuildKit lists the platforms it can run at start-up.
phase_binfmt() {
  local dir=/proc/sys/fs/binfmt_misc entry=qemu-aarch64 conf
  conf="/usr/lib/binfmt.d/$entry.conf"
  [[ -f "$conf" ]] || die "binfmt: $conf is missing (is qemu-user-static installed?)"
  need_root "registering $entry with binfmt_misc"
  if ! mountpoint -q "$dir"; then
    mount -t binfmt_misc binfmt_misc "$dir" || die "binfmt: cannot mount $dir"
  fi
  if [[ -e "$dir/$entry" ]] && ! grep -q '^flags: .*F' "$dir/$entry"; then
    echo -1 >"$dir/$entry" # registered elsewhere without F: redo it
  fi
  if [[ ! -e "$dir/$entry" ]]; then
    cat "$conf" >"$dir/register" || die "binfmt: the kernel refused $conf"
  fi
  grep -qx enabled "$dir/$entry" || die "binfmt: $entry is not enabled ($(cat "$dir/$entry"))"
  say "binfmt: $entry registered ($(sed -n 's/^flags: //p' "$dir/$entry"))"
}

# ------------------------------------------------------------------ engines
phase_engine_files() {
  local e
  for e in "${PREP_ENGINES[@]}"; do
    # 20 is the installed docker.io; 26's files are fetched once and cached.
    [[ "$e" != 26 ]] || e26_fetch
  done
}

# The running engine (engine.sh's switch; lib.sh starts dockerd).
phase_dockerd() {
  engine_use "$REPRO_ENGINE"
}

# ----------------------------------------------------------------- registry
phase_registry() {
  local t pidfile="$HARNESS_DIR/registry.pid" log="$HARNESS_DIR/registry.log"
  local cfg="$HARNESS_DIR/registry.yml" code
  t=$(date +%s)
  if registry_up; then
    say "registry: already answering on http://$REGISTRY/v2/"
    return
  fi
  code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 3 "http://$REGISTRY/v2/" || true)"
  [[ "$code" == 000 ]] ||
    die "something else answers on $REGISTRY (HTTP $code for /v2/); stop it first"
  mkdir -p "$HARNESS_DIR/registry-data"
  cat >"$cfg" <<YAML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $HARNESS_DIR/registry-data
  delete:
    enabled: true
http:
  addr: $REGISTRY
YAML
  if pid_alive "$pidfile" docker-registry; then
    kill -TERM "$(cat "$pidfile")" 2>/dev/null || true # alive but not answering
    sleep 1
  fi
  printf '\n==== %s setup.sh starts docker-registry\n' "$(date -u +%FT%TZ)" >>"$log"
  setsid nohup docker-registry serve "$cfg" </dev/null >>"$log" 2>&1 9>&- &
  echo $! >"$pidfile"
  await_start 30 "$pidfile" "$log" docker-registry registry_up
  say "registry: started on $REGISTRY, pid $(cat "$pidfile") ($(since "$t")s)"
}

# --------------------------------------------------------------- base image
registry_has_manifest() { # <repo path> <digest>
  curl -fsS -o /dev/null -I --max-time 10 \
    -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
    -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    -H 'Accept: application/vnd.docker.distribution.manifest.list.v2+json' \
    -H 'Accept: application/vnd.oci.image.index.v1+json' \
    "http://$REGISTRY/v2/$1/manifests/$2" 2>/dev/null
}

base_ok() {
  local ref
  [[ -s "$HARNESS_DIR/base.ref" ]] || return 1
  ref="$(cat "$HARNESS_DIR/base.ref")"
  [[ "$ref" =~ ^$BASE_REPO@sha256:[0-9a-f]{64}$ ]] || return 1
  registry_has_manifest "${BASE_REPO#"$REGISTRY"/}" "${ref##*@}"
}

debootstrap_rootfs() {
  local rootfs="$1"
  # No mirror argument: debootstrap's own default; the image's apt sources
  # come from it, and every later mirror URL is derived from those.
  debootstrap --variant=minbase bookworm "$rootfs" || {
    [[ -f "$rootfs/debootstrap/debootstrap.log" ]] &&
      tail -n 30 "$rootfs/debootstrap/debootstrap.log"
    return 1
  }
}

import_rootfs() {
  local rootfs="$1"
  tar -C "$rootfs" --numeric-owner -c . |
    "$DOCKER" import \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'CMD ["bash"]' \
      - "$BASE_TAG"
}

phase_base() {
  local t rootfs="$HARNESS_DIR/rootfs" digest ref how
  t=$(date +%s)
  if base_ok; then
    ref="$(cat "$HARNESS_DIR/base.ref")"
    # Keep a local copy too (docker run / image inspect in tests).
    if ! "$DOCKER" image inspect "$ref" >/dev/null 2>&1; then
      run_logged base-pull "$DOCKER" pull "$ref"
      how="cached, pulled"
    else
      how="cached"
    fi
    say "base image: $ref ($how)"
    return
  fi
  if "$DOCKER" image inspect "$BASE_TAG" >/dev/null 2>&1; then
    how="re-pushed local $BASE_TAG"
  else
    need_root "debootstrap"
    rm -rf "$rootfs"
    run_logged debootstrap debootstrap_rootfs "$rootfs"
    # Downloaded .debs would hide packages from `apt-get --print-uris`.
    rm -f "$rootfs"/var/cache/apt/archives/*.deb
    run_logged base-import import_rootfs "$rootfs"
    rm -rf "$rootfs"
    how="debootstrapped"
  fi
  run_logged base-push "$DOCKER" push "$BASE_TAG"
  digest="$(sed -n 's/^.*: digest: \(sha256:[0-9a-f]\{64\}\) size: .*$/\1/p' \
    "$LOG_DIR/base-push.log" | tail -n 1)"
  if [[ -z "$digest" ]]; then
    digest="$("$DOCKER" inspect --format '{{range .RepoDigests}}{{println .}}{{end}}' "$BASE_TAG" |
      sed -n "s|^$BASE_REPO@||p" | tail -n 1)"
  fi
  [[ "$digest" =~ ^sha256:[0-9a-f]{64}$ ]] || die "could not find the pushed digest of $BASE_TAG"
  ref="$BASE_REPO@$digest"
  registry_has_manifest "${BASE_REPO#"$REGISTRY"/}" "$digest" ||
    die "registry does not serve $ref after the push"
  echo "$ref" >"$HARNESS_DIR/base.ref.tmp"
  mv "$HARNESS_DIR/base.ref.tmp" "$HARNESS_DIR/base.ref"
  say "base image: $ref ($how, $(since "$t")s)"
}

# ----------------------------------------------------------- frontend image
phase_frontend() {
  local t
  t=$(date +%s)
  static_bin_build "$REPO_ROOT"
  # Into the running engine's store (engine.sh imports it into the other
  # engine's store when switching).
  frontend_install "$REPRO_ENGINE" "$STATIC_BIN"
  say "frontend image: $FRONTEND_IMAGE = ${FRONTEND_ID:0:19} in engine $REPRO_ENGINE ($(since "$t")s)"
}

# ------------------------------------------------------- lockfiles and pool
urldecode() { printf '%b' "${1//%/\\x}"; }

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

# The count of a lockfile's entries, as the frontend reads them.
lock_count() { # <lockfile>
  "$STATIC_BIN" lockfile entries "$1" | wc -l
}

lock_verified() { # <lockfile>
  [[ -s "$1" ]] || return 1
  (cd "$POOL_DIR" && "$STATIC_BIN" lockfile entries "$1" | sha256sum --check --status --strict -) 2>/dev/null
}

print_uris() { # <out> <pkgs...>
  # Acquire::ForceHash: without it apt 2.6 prints MD5Sum, not SHA256.
  local out="$1"
  shift
  "$DOCKER" run --rm "$BASE_REF" sh -c \
    'apt-get update -qq && apt-get install -o Acquire::ForceHash=SHA256 -y --no-install-recommends --print-uris "$@"' \
    sh "$@" >"$out"
}

fetch_blob() { # <url> <name> <hex>
  local url="$1" name="$2" hex="$3" dest="$POOL_DIR/$2" got
  if [[ -f "$dest" && "$(sha256_of "$dest")" == "$hex" ]]; then
    return 0
  fi
  mkdir -p "$(dirname "$dest")"
  curl -fsSL --retry 3 --connect-timeout 20 -o "$dest.part" "$url" ||
    die "download failed: $url"
  got="$(sha256_of "$dest.part")"
  if [[ "$got" != "$hex" ]]; then
    rm -f "$dest.part"
    die "sha256 mismatch for $name from $url: expected $hex, got $got"
  fi
  mv -f "$dest.part" "$dest"
  FETCHED=$((FETCHED + 1))
  echo "fetched $name"
}

phase_lock_one() { # <example> <packages>
  local ex="$1" pkgs="$2" t dir="$LOCK_DIR/$1" lock uris stamp n
  t=$(date +%s)
  lock="$dir/SHA256SUMS-$ARCH"
  uris="$LOG_DIR/print-uris-$ex.txt"
  stamp="$(printf 'format=3\nbase=%s\npackages=%s\narch=%s\n' "$BASE_REF" "$pkgs" "$ARCH")"
  if [[ -f "$dir/.stamp" && "$(cat "$dir/.stamp")" == "$stamp" ]] && lock_verified "$lock"; then
    say "lock $ex: $(lock_count "$lock") packages, pool verified (cached)"
    return
  fi
  mkdir -p "$dir" "$POOL_DIR"
  rm -f "$dir/.stamp"
  # shellcheck disable=SC2086 # $pkgs is a word list on purpose
  run_logged "print-uris-$ex" print_uris "$uris" $pkgs

  local line url hash hex name prefix
  local -a entries=() prefixes=()
  while IFS= read -r line; do
    [[ "$line" == "'"* ]] || continue
    read -r url _ _ hash <<<"$line"
    url="${url#\'}"
    url="${url%\'}"
    [[ "$hash" == SHA256:* ]] ||
      die "lock $ex: apt gave no SHA256 for $url (hash field: '$hash')"
    hex="${hash#SHA256:}"
    [[ "$hex" =~ ^[0-9a-f]{64}$ ]] || die "lock $ex: bad SHA256 '$hex' for $url"
    [[ "$url" == */pool/* ]] || die "lock $ex: URL has no /pool/ part: $url"
    prefix="${url%%/pool/*}/"
    name="$(urldecode "pool/${url#*/pool/}")"
    [[ "$name" =~ ^pool/[A-Za-z0-9.+~_:/-]+$ && "$name" != *..* && "$name" != *//* ]] ||
      die "lock $ex: unexpected package path '$name' from $url"
    entries+=("$name $hex $url")
    prefixes+=("$prefix")
  done <"$uris"
  ((${#entries[@]} > 0)) || die "lock $ex: apt printed no package URIs (see $uris)"

  # The file the lock target writes, header and sizes included, by the
  # frontend's own library (built by phase_frontend), so builds see a
  # lockfile made for this base and these packages.
  printf '%s\n' "${prefixes[@]}" | sort -u >"$dir/mirror"
  # shellcheck disable=SC2086 # $pkgs is a word list on purpose
  "$STATIC_BIN" lockfile from-apt --base "$BASE_REF" --roots "$dir/mirror" $pkgs \
    <"$uris" >"$lock.tmp" || die "lock $ex: repro-frontend lockfile from-apt failed on $uris"
  mv -f "$lock.tmp" "$lock"

  local e
  FETCHED=0
  for e in "${entries[@]}"; do
    read -r name hex url <<<"$e"
    fetch_blob "$url" "$name" "$hex" >>"$LOG_DIR/fetch-$ex.log"
  done
  lock_verified "$lock" || die "lock $ex: pool verification failed after download"
  printf '%s\n' "$stamp" >"$dir/.stamp"
  n=$(lock_count "$lock")
  say "lock $ex: $n packages, $FETCHED downloaded, pool verified ($(since "$t")s)"
}

phase_locks() {
  local spec
  for spec in "${EXAMPLES[@]}"; do
    [[ " ${POOL_EXAMPLES[*]} " == *" ${spec%%:*} "* ]] || continue
    phase_lock_one "${spec%%:*}" "${spec#*:}"
  done
}

# pool_fill <what> <lockfile> <mirror root> <log>: every blob a lockfile the
# lock target wrote names, fetched from the mirror into the pool (sets
# FETCHED) and verified there.
pool_fill() {
  local what="$1" lock="$2" mirror="$3" log="$4" hex name
  [[ -s "$lock" ]] || die "$what: the lock target wrote no $lock"
  FETCHED=0
  while read -r hex name; do
    fetch_blob "$mirror$name" "$name" "$hex" >>"$log"
  done < <("$STATIC_BIN" lockfile entries "$lock")
  lock_verified "$lock" || die "$what: pool verification failed for $lock"
}

# ------------------------------------------------------------------ corpus
# Real package sets users install (tests/corpus/<set>/repro.yaml): each is
# locked by the frontend's own lock target through the running engine,
# against the base image's mirror, and its blobs go to the pool from the
# mirror root the examples' apt output named (lock/hello/mirror).
phase_corpus() {
  local t dir set recipe stamp lock mirror n
  t=$(date +%s)
  mirror="$(head -n 1 "$LOCK_DIR/hello/mirror")"
  [[ "$mirror" == http* ]] || die "corpus: no mirror root in $LOCK_DIR/hello/mirror"
  for dir in "$REPO_ROOT"/tests/corpus/*/; do
    set="$(basename "$dir")"
    recipe="$dir/repro.yaml"
    lock="$LOCK_DIR/corpus-$set/SHA256SUMS-$ARCH"
    stamp="$(printf 'format=2\nbase=%s\nrecipe=%s\n' "$BASE_REF" "$(sha256_of "$recipe")")"
    if [[ -f "$LOCK_DIR/corpus-$set/.stamp" && "$(cat "$LOCK_DIR/corpus-$set/.stamp")" == "$stamp" ]] &&
      lock_verified "$lock"; then
      continue
    fi
    mkdir -p "$LOCK_DIR/corpus-$set"
    rm -f "$LOCK_DIR/corpus-$set/.stamp" "$lock"
    DOCKER_BUILDKIT=1 run_logged "lock-corpus-$set" "$DOCKER" build --progress=plain \
      --target lock --output "type=local,dest=$LOCK_DIR/corpus-$set" \
      --build-arg "BASE=$BASE_REF" -f "$recipe" "$dir"
    pool_fill "corpus $set" "$lock" "$mirror" "$LOG_DIR/fetch-corpus-$set.log"
    printf '%s\n' "$stamp" >"$LOCK_DIR/corpus-$set/.stamp"
    n=$(lock_count "$lock")
    say "corpus $set: locked $n packages, $FETCHED downloaded"
  done
  say "corpus: $(find "$REPO_ROOT"/tests/corpus -name repro.yaml | wc -l) sets locked, pool verified ($(since "$t")s)"
}

# ----------------------------------------------------------- two platforms
# The base for the two-platform tests: an index of the amd64 base (the same
# manifest as BASE_REF) and an arm64 one debootstrapped under emulation,
# pushed by push-image.py (Docker 20.10 cannot import another platform's
# rootfs). Its config's created time is the amd64 one's, so both platforms
# get the same default epoch.
multi_base() {
  local t rootfs="$HARNESS_DIR/rootfs-$OTHER_ARCH" tar="$HARNESS_DIR/rootfs-$OTHER_ARCH.tar"
  local created other index ref
  t=$(date +%s)
  ref="$(ref_of multi-base.ref)"
  if [[ -n "$ref" && "$(ref_of multi-base.from)" == "$BASE_REF" ]] &&
    registry_has_manifest "${BASE_REPO#"$REGISTRY"/}" "${ref##*@}"; then
    say "two-platform base: $ref (cached)"
    MULTI_BASE_REF="$ref"
    return
  fi
  need_root "debootstrap --arch=$OTHER_ARCH"
  rm -rf "$rootfs"
  run_logged "debootstrap-$OTHER_ARCH" debootstrap --arch="$OTHER_ARCH" --variant=minbase bookworm "$rootfs"
  rm -f "$rootfs"/var/cache/apt/archives/*.deb
  tar -C "$rootfs" --numeric-owner -cf "$tar" .
  rm -rf "$rootfs"
  created="$("$DOCKER" image inspect --format '{{.Created}}' "$BASE_REF")"
  other="$(python3 "$SCRIPTS_DIR/push-image.py" image "$BASE_REPO:bookworm-$OTHER_ARCH" \
    --arch "$OTHER_ARCH" --rootfs-tar "$tar" --created "$created" \
    --env 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' --cmd bash)" ||
    die "could not push the $OTHER_ARCH base"
  rm -f "$tar"
  index="$(python3 "$SCRIPTS_DIR/push-image.py" index "$BASE_REPO:bookworm-multi" \
    "${BASE_REF##*@}" "$other")" || die "could not push the two-platform index"
  MULTI_BASE_REF="$BASE_REPO@$index"
  registry_has_manifest "${BASE_REPO#"$REGISTRY"/}" "$index" ||
    die "registry does not serve $MULTI_BASE_REF after the push"
  echo "$MULTI_BASE_REF" >"$HARNESS_DIR/multi-base.ref"
  echo "$BASE_REF" >"$HARNESS_DIR/multi-base.from"
  say "two-platform base: $MULTI_BASE_REF ($OTHER_ARCH: $BASE_REPO@$other, $(since "$t")s)"
}

# Each example's lockfile for each platform of the two-platform base, by
# the frontend's lock target (one platform per build, so Docker 20.10 can
# run it), and their blobs in the pool, from the mirror root the examples'
# apt output named.
multi_locks() {
  local t ex dir stamp arch lock mirror
  t=$(date +%s)
  mirror="$(head -n 1 "$LOCK_DIR/hello/mirror" 2>/dev/null || true)"
  [[ "$mirror" == http* ]] || die "multi: no mirror root in $LOCK_DIR/hello/mirror (run the pool phase)"
  for ex in hello gcc; do
    dir="$LOCK_DIR/multi-$ex"
    stamp="$(printf 'format=1\nbase=%s\nrecipe=%s\n' "$MULTI_BASE_REF" \
      "$(sha256_of "$REPO_ROOT/examples/$ex/repro.yaml")")"
    if [[ -f "$dir/.stamp" && "$(cat "$dir/.stamp")" == "$stamp" ]] &&
      lock_verified "$dir/SHA256SUMS-$ARCH" && lock_verified "$dir/SHA256SUMS-$OTHER_ARCH"; then
      continue
    fi
    mkdir -p "$dir"
    rm -f "$dir/.stamp" "$dir"/SHA256SUMS-*
    for arch in "$ARCH" "$OTHER_ARCH"; do
      lock="$dir/SHA256SUMS-$arch"
      DOCKER_BUILDKIT=1 run_logged "lock-multi-$ex-$arch" "$DOCKER" build --progress=plain \
        --platform "linux/$arch" --target lock --output "type=local,dest=$dir" \
        --build-arg "BASE=$MULTI_BASE_REF" -f "$REPO_ROOT/examples/$ex/repro.yaml" "$REPO_ROOT/examples/$ex"
      pool_fill "multi $ex" "$lock" "$mirror" "$LOG_DIR/fetch-multi-$ex.log"
    done
    printf '%s\n' "$stamp" >"$dir/.stamp"
    say "multi $ex: $(lock_count "$dir/SHA256SUMS-$ARCH") + $(lock_count "$dir/SHA256SUMS-$OTHER_ARCH") packages locked, pool verified"
  done
  say "two-platform lockfiles: done ($(since "$t")s)"
}

phase_multi() {
  multi_base
  multi_locks
}

# --------------------------------------------------------------------- env
# Files tool_base copies to /tmp in the image before the RUN command.
tool_base_files=()

# tool_base <tool> <RUN command>: the Debian base image plus what the RUN
# command installs, pushed as $REGISTRY/repro/debian-<tool>; its pinned
# reference goes to target/harness/base-<tool>.ref (cached while the base
# image and the registry's copy stay the same). Sets TOOL_BASE_HOW.
tool_base() {
  local tool="$1" run="$2" dir="$HARNESS_DIR/$1/base" refile="$HARNESS_DIR/base-$1.ref" digest
  if [[ -s "$refile" ]] && grep -q "^$BASE_REF\$" "$HARNESS_DIR/base-$tool.from" 2>/dev/null &&
    registry_has_manifest "repro/debian-$tool" "$(sed 's/^.*@//' "$refile")"; then
    TOOL_BASE_HOW="cached"
    return
  fi
  mkdir -p "$dir"
  {
    printf 'FROM %s\n' "$BASE_REF"
    local f
    for f in "${tool_base_files[@]}"; do
      cp "$f" "$dir/"
      printf 'COPY %s /tmp/\n' "$(basename "$f")"
    done
    printf 'RUN %s\n' "$run"
  } >"$dir/Dockerfile"
  DOCKER_BUILDKIT=1 run_logged "$tool-base-build" "$DOCKER" build -t "$REGISTRY/repro/debian-$tool:bookworm" "$dir"
  run_logged "$tool-base-push" "$DOCKER" push "$REGISTRY/repro/debian-$tool:bookworm"
  digest="$(sed -n 's/^.*: digest: \(sha256:[0-9a-f]\{64\}\) size: .*$/\1/p' "$LOG_DIR/$tool-base-push.log" | tail -n 1)"
  [[ "$digest" =~ ^sha256:[0-9a-f]{64}$ ]] || die "could not find the pushed digest of the $tool base image"
  echo "$REGISTRY/repro/debian-$tool@$digest" >"$refile"
  echo "$BASE_REF" >"$HARNESS_DIR/base-$tool.from"
  TOOL_BASE_HOW="built"
}

# ------------------------------------------------------- rpm test fixtures
# A package the tests build themselves (no rpm repository is reachable here)
# and a base image that carries rpm: the Debian base plus Debian's rpm.
RPM_SPEC_NAME=repro-hello
phase_rpm() {
  local t dir="$HARNESS_DIR/rpm" rpmfile name
  t=$(date +%s)
  mkdir -p "$dir" "$POOL_DIR/rpm/noarch" "$LOCK_DIR/rpm"
  name="rpm/noarch/$RPM_SPEC_NAME-1.0-1.noarch.rpm"
  if [[ ! -s "$POOL_DIR/$name" ]]; then
    cat >"$dir/$RPM_SPEC_NAME.spec" <<'SPEC'
Name: repro-hello
Version: 1.0
Release: 1
Summary: One file, to show an rpm install
License: MIT
BuildArch: noarch
AutoReqProv: no

%description
Installs one text file.

%install
mkdir -p %{buildroot}/usr/share/repro-hello
echo "hello from an rpm" > %{buildroot}/usr/share/repro-hello/hello.txt

%files
/usr/share/repro-hello/hello.txt
SPEC
    SOURCE_DATE_EPOCH=1700000000 run_logged rpmbuild rpmbuild -bb \
      --define "_topdir $dir/top" --define "_buildhost reproducible" \
      --define "use_source_date_epoch_as_buildtime 1" \
      --define "clamp_mtime_to_source_date_epoch 1" "$dir/$RPM_SPEC_NAME.spec"
    rpmfile="$dir/top/RPMS/noarch/$RPM_SPEC_NAME-1.0-1.noarch.rpm"
    [[ -s "$rpmfile" ]] || die "rpmbuild did not produce $rpmfile"
    cp "$rpmfile" "$POOL_DIR/$name"
  fi
  fixture_done rpm "$name" "$t" \
    "apt-get update -qq && apt-get install -y -qq --no-install-recommends rpm && rm -rf /var/lib/apt/lists/*"
}

# fixture_done <tool> <pool name> <start time> <install command>: the
# fixture's one-line lockfile and its base image (see tool_base).
fixture_done() {
  printf '%s  %s\n' "$(sha256_of "$POOL_DIR/$2")" "$2" >"$LOCK_DIR/$1/SHA256SUMS-amd64"
  tool_base "$1" "$4"
  say "$1: package $2, base image $(cat "$HARNESS_DIR/base-$1.ref") ($TOOL_BASE_HOW, $(since "$3")s)"
}

# ---------------------------------------------------- pacman test fixtures
# The same for pacman: a package made with makepkg (as an unprivileged user,
# which makepkg insists on) and a base image carrying Debian's pacman, with
# the /etc/mtab link Arch images have (pacman reads it to check free space).
PKG_BUILD_USER=repro-build
phase_pacman() {
  local t dir="$HARNESS_DIR/pacman" name
  t=$(date +%s)
  name="pacman/repro-hello-1.0-1-any.pkg.tar.zst"
  mkdir -p "$dir" "$POOL_DIR/pacman" "$LOCK_DIR/pacman"
  if [[ ! -s "$POOL_DIR/$name" ]]; then
    id "$PKG_BUILD_USER" >/dev/null 2>&1 || useradd --system --no-create-home "$PKG_BUILD_USER"
    rm -rf "$dir/build" && mkdir -p "$dir/build"
    cat >"$dir/build/PKGBUILD" <<'PKGBUILD'
pkgname=repro-hello
pkgver=1.0
pkgrel=1
pkgdesc="One file, to show a pacman install"
arch=('any')
license=('MIT')
package() {
  mkdir -p "$pkgdir/usr/share/repro-hello"
  echo "hello from a pacman package" > "$pkgdir/usr/share/repro-hello/hello.txt"
}
PKGBUILD
    chown -R "$PKG_BUILD_USER" "$dir/build"
    run_logged makepkg su "$PKG_BUILD_USER" -s /bin/sh -c \
      "cd '$dir/build' && HOME='$dir/build' SOURCE_DATE_EPOCH=1700000000 PKGEXT=.pkg.tar.zst makepkg --nodeps --noconfirm --force"
    [[ -s "$dir/build/repro-hello-1.0-1-any.pkg.tar.zst" ]] || die "makepkg did not produce the package"
    cp "$dir/build/repro-hello-1.0-1-any.pkg.tar.zst" "$POOL_DIR/$name"
  fi
  fixture_done pacman "$name" "$t" \
    "apt-get update -qq && apt-get install -y -qq --no-install-recommends pacman-package-manager && rm -rf /var/lib/apt/lists/* && mkdir -p /var/lib/pacman && ln -sf ../proc/self/mounts /etc/mtab"
  phase_pacman_signed "$name"
}

# The signed case: a key of the tests' own signs the package (a detached
# .sig beside it, and a bad one made over other bytes, under badsig/), and a
# base image whose pacman keyring trusts that key and requires signatures on
# local files. (Debian's pacman-key needs makepkg's libraries; gpg sets the
# keyring up directly.)
phase_pacman_signed() {
  local name="$1" dir="$HARNESS_DIR/pacman" gnupg fpr t
  t=$(date +%s)
  gnupg="$dir/gnupg"
  if [[ ! -s "$dir/signing.fpr" ]]; then
    rm -rf "$gnupg" && mkdir -p "$gnupg" && chmod 700 "$gnupg"
    run_logged gpg-key env GNUPGHOME="$gnupg" gpg --batch --passphrase '' \
      --quick-gen-key "repro-frontend tests <tests@repro-frontend.invalid>" ed25519 sign never
    env GNUPGHOME="$gnupg" gpg --batch --with-colons --list-secret-keys |
      awk -F: '/^fpr:/ {print $10; exit}' >"$dir/signing.fpr"
    env GNUPGHOME="$gnupg" gpg --batch --armor --export "$(cat "$dir/signing.fpr")" >"$dir/signing.asc"
  fi
  fpr="$(cat "$dir/signing.fpr")"
  if [[ ! -s "$POOL_DIR/$name.sig" ]]; then
    run_logged gpg-sign env GNUPGHOME="$gnupg" gpg --batch --yes --detach-sign -u "$fpr" \
      --output "$POOL_DIR/$name.sig" "$POOL_DIR/$name"
  fi
  if [[ ! -s "$POOL_DIR/badsig/$name.sig" ]]; then
    mkdir -p "$POOL_DIR/badsig/$(dirname "$name")"
    cp "$POOL_DIR/$name" "$POOL_DIR/badsig/$name"
    printf 'other bytes\n' >"$dir/other"
    run_logged gpg-sign-bad env GNUPGHOME="$gnupg" gpg --batch --yes --detach-sign -u "$fpr" \
      --output "$POOL_DIR/badsig/$name.sig" "$dir/other"
  fi
  printf '%s  %s\n%s  %s\n' "$(sha256_of "$POOL_DIR/$name")" "$name" \
    "$(sha256_of "$POOL_DIR/$name.sig")" "$name.sig" >"$LOCK_DIR/pacman/SHA256SUMS-signed"
  printf '%s  %s\n%s  %s\n' "$(sha256_of "$POOL_DIR/badsig/$name")" "$name" \
    "$(sha256_of "$POOL_DIR/badsig/$name.sig")" "$name.sig" >"$LOCK_DIR/pacman/SHA256SUMS-badsig"
  cp "$dir/signing.asc" "$HARNESS_DIR/pacman-signing.asc"
  tool_base_files=("$HARNESS_DIR/pacman-signing.asc")
  tool_base pacman-signed "apt-get update -qq && apt-get install -y -qq --no-install-recommends pacman-package-manager gnupg && rm -rf /var/lib/apt/lists/* && mkdir -p /var/lib/pacman && ln -sf ../proc/self/mounts /etc/mtab && mkdir -p -m 700 /etc/pacman.d/gnupg && gpg --homedir /etc/pacman.d/gnupg --batch --import /tmp/pacman-signing.asc && echo $fpr:6: | gpg --homedir /etc/pacman.d/gnupg --batch --import-ownertrust && sed -i 's/^#LocalFileSigLevel.*/LocalFileSigLevel = Required/' /etc/pacman.conf"
  tool_base_files=()
  say "pacman (signed): base image $(cat "$HARNESS_DIR/base-pacman-signed.ref") ($TOOL_BASE_HOW, $(since "$t")s)"
}

# A Debian base without apt-get (as some slim images are): its install step
# falls back to dpkg alone, and the tests check what that can and cannot do.
# And one without dpkg either, shaped like a distroless image (os-release
# still says Debian): the tests check the message a lockfile meets there.
phase_noapt() {
  local t
  t=$(date +%s)
  tool_base noapt "rm -f /usr/bin/apt-get"
  say "no-apt base: $(cat "$HARNESS_DIR/base-noapt.ref") ($TOOL_BASE_HOW, $(since "$t")s)"
  t=$(date +%s)
  tool_base nodpkg "rm -f /usr/bin/apt-get /usr/bin/dpkg"
  say "no-dpkg base: $(cat "$HARNESS_DIR/base-nodpkg.ref") ($TOOL_BASE_HOW, $(since "$t")s)"
}

# Engine 3: standalone BuildKit built from ../shared/third_party, started
# beside dockerd, with our frontend image and the Dockerfile frontend image
# (built from the same source) pushed to the local registry, since it has no
# image store to load them into. Without the tarball, set-up goes on and
# says so; the engine-3 tests then fail with the same message.
E3_MISSING_MSG=""
E3_FRONTEND_REF=""
E3_DOCKERFILE_REF=""
phase_engine3() {
  local t image
  t=$(date +%s)
  E3_MISSING_MSG="$(e3_missing)"
  if [[ -n "$E3_MISSING_MSG" ]]; then
    printf '\n%s: WARNING: %s\n\n' "$_script_name" "$E3_MISSING_MSG" >&2
    return
  fi
  e3_build
  e3_start
  E3_FRONTEND_REF="$(e3_push_image "$DOCKER" "$FRONTEND_IMAGE" "$E3_FRONTEND_REPO")"
  # The Dockerfile frontend image is made once per binary: docker import
  # stamps each import with the time, so a new one would be a new digest.
  local stamp="$E3_DIR/dockerfile-frontend.ref" sum
  sum="$(sha256sum "$E3_BIN/dockerfile-frontend" | cut -d' ' -f1)"
  if [[ -s "$stamp" && "$(head -n 1 "$stamp")" == "$sum" ]] &&
    registry_has_manifest "${E3_DOCKERFILE_REPO#"$REGISTRY"/}" "$(sed -n '2s/^.*@//p' "$stamp")"; then
    E3_DOCKERFILE_REF="$(sed -n 2p "$stamp")"
  else
    image="$(e3_dockerfile_frontend_image "$DOCKER")"
    E3_DOCKERFILE_REF="$(e3_push_image "$DOCKER" "$image" "$E3_DOCKERFILE_REPO")"
    printf '%s\n%s\n' "$sum" "$E3_DOCKERFILE_REF" >"$stamp"
  fi
  say "engine 3: frontend $E3_FRONTEND_REF, Dockerfile frontend $E3_DOCKERFILE_REF ($(since "$t")s)"
}

# The in-toto attestation framework's published schemas (its protobuf
# definitions, with Python bindings, from PyPI), for the tests that check the
# provenance and the verify statement (scripts/check-intoto.py).
INTOTO_PY=(in-toto-attestation==0.9.3 protobuf==7.36.2)

phase_schemas() {
  local t venv="$HARNESS_DIR/venv" want_stamp
  t=$(date +%s)
  want_stamp="${INTOTO_PY[*]}"
  if [[ -x "$venv/bin/python" && "$(cat "$venv/.repro-stamp" 2>/dev/null)" == "$want_stamp" ]]; then
    say "schemas: present (${INTOTO_PY[*]})"
    return
  fi
  rm -rf "$venv"
  run_logged venv /usr/bin/python3 -m venv "$venv"
  run_logged pip "$venv/bin/pip" install --quiet --disable-pip-version-check "${INTOTO_PY[@]}"
  printf '%s\n' "$want_stamp" >"$venv/.repro-stamp"
  say "schemas: installed ${INTOTO_PY[*]} into $venv ($(since "$t")s)"
}

# ref_of <file>: the pinned reference a phase wrote, or nothing when that
# phase has not run (a partial set-up, see --only).
ref_of() { cat "$HARNESS_DIR/$1" 2>/dev/null || true; }

phase_env() {
  # A partial set-up without engine 3 pushed no frontend for it: say so, so
  # the engine-3 tests fail with this rather than with an empty reference.
  want engine3 ||
    E3_MISSING_MSG="the last scripts/setup.sh ran --only $only, without engine3; run scripts/setup.sh"
  local tmp="$HARNESS_DIR/env.tmp"
  printf '# written by scripts/setup.sh; read with state_load (scripts/state.sh)\n' >"$tmp"
  local -a entries=(
    DOCKER "$DOCKER"
    BASE_REF "$BASE_REF"
    MULTI_BASE_REF "$(ref_of multi-base.ref)"
    RPM_BASE_REF "$(ref_of base-rpm.ref)"
    PACMAN_BASE_REF "$(ref_of base-pacman.ref)"
    PACMAN_SIGNED_BASE_REF "$(ref_of base-pacman-signed.ref)"
    NOAPT_BASE_REF "$(ref_of base-noapt.ref)"
    NODPKG_BASE_REF "$(ref_of base-nodpkg.ref)"
    BUILDCTL "$E3_BIN/buildctl"
    E3_ADDR "$E3_ADDR"
    E3_FRONTEND_REF "$E3_FRONTEND_REF"
    E3_DOCKERFILE_REF "$E3_DOCKERFILE_REF"
    E3_MISSING "$E3_MISSING_MSG"
    FRONTEND_IMAGE "$FRONTEND_IMAGE"
    POOL_DIR "$POOL_DIR"
    LOCK_DIR "$LOCK_DIR"
    REGISTRY "$REGISTRY"
    HARNESS_DIR "$HARNESS_DIR"
  )
  if e26_present; then
    entries+=(ENGINE26_DOCKER "$E26_DOCKER" ENGINE26_DOCKER_CONFIG "$E26_CONFIG")
  fi
  local i
  for ((i = 0; i < ${#entries[@]}; i += 2)); do
    state_put "$tmp" "${entries[i]}" "${entries[i + 1]}" || die "cannot record ${entries[i]}"
  done
  mv -f "$HARNESS_DIR/env.tmp" "$HARNESS_DIR/env"
  say "env: $HARNESS_DIR/env"
}

phase_packages
phase_binfmt
phase_schemas
if want engine; then
  phase_engine_files
  phase_dockerd
fi
! want registry || phase_registry
! want base || phase_base
# The pinned base, from this run or an earlier one (a partial set-up).
BASE_REF="$(ref_of base.ref)"
if [[ -z "$BASE_REF" ]]; then
  for p in pool corpus multi rpm pacman noapt; do
    ! want "$p" || die "phase $p needs the base image: add the phase base"
  done
fi
! want frontend || phase_frontend
! want pool || phase_locks
! want corpus || phase_corpus
! want multi || phase_multi
! want rpm || phase_rpm
! want pacman || phase_pacman
! want noapt || phase_noapt
! want engine3 || phase_engine3
phase_env
say "done in $(since "$T0")s${only:+ (phases: $only)}"
