# shellcheck shell=bash disable=SC2034 # variables are used by the sourcing scripts
# Shared helpers for the repro-frontend test harness scripts.
# Sourced by scripts/*.sh; not meant to be run directly.

# Absolute paths, derived from this file's location.
SCRIPTS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
# shellcheck source=scripts/state.sh
source "$SCRIPTS_DIR/state.sh"
REPO_ROOT="$(cd "$SCRIPTS_DIR/.." && pwd -P)"
HARNESS_DIR="$REPO_ROOT/target/harness"

# Always Debian's docker.io client (another client may come first in PATH).
DOCKER=/usr/bin/docker
DOCKERD=/usr/sbin/dockerd
export DOCKER_BUILDKIT=1
# Debian's python3 (the package pool), not a pyenv shim that may come first.
PYTHON=/usr/bin/python3

REGISTRY=127.0.0.1:5000
BASE_REPO="$REGISTRY/repro/debian"
BASE_TAG="$BASE_REPO:bookworm"
FRONTEND_IMAGE=repro-frontend:v0

POOL_DIR="$HARNESS_DIR/pool"
LOCK_DIR="$HARNESS_DIR/lock"
LOG_DIR="$HARNESS_DIR/logs"

: "${VERBOSE:=0}"
export LC_ALL=C

_script_name="$(basename "${0:-harness}")"
_script_name="${_script_name%.sh}"

say() { printf '%s: %s\n' "$_script_name" "$*"; }
die() {
  printf '%s: ERROR: %s\n' "$_script_name" "$*" >&2
  exit 1
}

# run_logged <logname> <cmd...>: run quietly, output to $LOG_DIR/<logname>.log;
# on failure show the log's tail and exit. VERBOSE=1 streams the output too.
run_logged() {
  local name="$1"
  shift
  mkdir -p "$LOG_DIR"
  local log="$LOG_DIR/$name.log"
  local rc=0
  if [[ "$VERBOSE" == 1 ]]; then
    "$@" 2>&1 | tee "$log" || rc=${PIPESTATUS[0]}
  else
    "$@" >"$log" 2>&1 </dev/null || rc=$?
  fi
  if ((rc != 0)); then
    printf '%s: ERROR: "%s" failed (exit %d); last lines of %s:\n' \
      "$_script_name" "$*" "$rc" "$log" >&2
    tail -n 40 "$log" | sed 's/^/    /' >&2
    exit "$rc"
  fi
}

# free_port <first> [last]: the first port on 127.0.0.1 from <first> that no
# one listens on (last: <first> + 99).
free_port() {
  local port="$1" last="${2:-$(($1 + 99))}"
  while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
    port=$((port + 1))
    ((port <= last)) || die "no free port in $1-$last"
  done
  echo "$port"
}

# Seconds since the given epoch value (from `date +%s`).
since() { echo $(($(date +%s) - $1)); }

# pid_alive <pidfile> [comm-substring]: true if the pidfile names a live
# process (and, if given, its command line contains the substring).
# pid_gone <pidfile>: the process the pidfile names has exited. Start-up
# loops use this rather than pid_alive's name check: while a freshly
# started process execs (setsid, then nohup, then the daemon), its
# /proc/<pid>/cmdline can read empty for a moment.
pid_gone() {
  local pid
  pid="$(cat "$1" 2>/dev/null)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 0
  [[ ! -d "/proc/$pid" ]] || grep -q '^State:.*(zombie)' "/proc/$pid/status" 2>/dev/null
}

# await_start <seconds> <pidfile> <log> <name> <probe...>: waits until the
# probe command succeeds; dies with the log's tail when the process exits
# first or the time runs out.
await_start() {
  local secs=$1 pidfile=$2 log=$3 name=$4 i
  shift 4
  for ((i = 0; i < secs * 10; i++)); do
    "$@" && return 0
    pid_gone "$pidfile" && break
    sleep 0.1
  done
  tail -n 30 "$log" | sed 's/^/    /' >&2
  if pid_gone "$pidfile"; then
    die "$name exited during start-up (log: $log)"
  fi
  die "$name did not answer within ${secs}s (log: $log)"
}

pid_alive() {
  local pidfile="$1" want="${2:-}" pid
  [[ -s "$pidfile" ]] || return 1
  pid="$(cat "$pidfile")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [[ -d "/proc/$pid" ]] || return 1
  if [[ -n "$want" ]]; then
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$want" || return 1
  fi
  return 0
}

# stop_pidfile <pidfile> <comm-substring> <what> [timeout]: SIGTERM the
# process named by the pidfile (only if it still matches), wait, then KILL.
stop_pidfile() {
  local pidfile="$1" want="$2" what="$3" timeout="${4:-30}" pid i
  if ! pid_alive "$pidfile" "$want"; then
    rm -f "$pidfile"
    say "$what: not running (nothing to stop)"
    return 0
  fi
  pid="$(cat "$pidfile")"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < timeout * 10; i++)); do
    [[ -d "/proc/$pid" ]] || break
    sleep 0.1
  done
  if [[ -d "/proc/$pid" ]]; then
    say "$what: still running after ${timeout}s, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.5
  fi
  rm -f "$pidfile"
  say "$what: stopped (pid $pid)"
}

docker_up() { "$DOCKER" info >/dev/null 2>&1; }

registry_up() {
  curl -fsS -o /dev/null --max-time 3 "http://$REGISTRY/v2/" 2>/dev/null
}

need_root() {
  [[ "$(id -u)" == 0 ]] || die "$1 needs root; run as root"
}

# ------------------------------------------------------------------ engines
# Two Docker Engines, run one at a time on the default socket:
#   20  Debian 12's docker.io 20.10 (BuildKit v0.8), installed by setup.sh;
#       data in /var/lib/docker.
#   26  Debian 13's docker.io 26.1 (BuildKit v0.13) with docker-buildx 0.13:
#       .debs fetched with a private apt state, unpacked (not installed)
#       under $E26_ROOT. Its own dockerd, containerd and shims, but bookworm's
#       runc (trixie's needs a newer glibc); data in $E26_DATA_ROOT, which
#       survives teardown like /var/lib/docker does. It runs with the
#       containerd image store (the default of Docker 29), which SBOM
#       attestations, OCI exports and multi-platform images need.
# Images are per engine: each store gets the base image (pulled from the
# local registry) and its own import of the frontend image.
ENGINES=(20 26)
DOCKER_SOCK=/var/run/docker.sock
ENGINE_FILE="$HARNESS_DIR/engine"
STATIC_BIN="$REPO_ROOT/target/static/x86_64-unknown-linux-gnu/release/repro-frontend"

E26_DIR="$HARNESS_DIR/engine26"
E26_ROOT="$E26_DIR/root"
E26_DOCKER="$E26_ROOT/usr/bin/docker"
E26_DOCKERD="$E26_ROOT/usr/sbin/dockerd"
E26_CONFIG="$E26_DIR/docker-config"
E26_DATA_ROOT=/var/lib/docker-26
E26_EXEC_ROOT=/var/run/docker-26
E26_SUITE=trixie
E26_PACKAGES=(docker.io docker-cli containerd docker-buildx)
E26_RUNC=/usr/sbin/runc # bookworm's, from the installed runc package
# PATH for dockerd 26: its containerd, shims and docker-proxy come first;
# runc (no trixie copy is unpacked) and docker-init resolve to bookworm's.
E26_PATH="$E26_ROOT/usr/bin:$E26_ROOT/usr/sbin:/usr/sbin:/usr/bin:/sbin:/bin"

engine_valid() { [[ "${1:-}" == 20 || "${1:-}" == 26 ]]; }

engine_pidfile() { # <engine>
  if [[ "$1" == 20 ]]; then echo "$HARNESS_DIR/dockerd.pid"; else echo "$HARNESS_DIR/dockerd26.pid"; fi
}

engine_log() { # <engine>
  if [[ "$1" == 20 ]]; then echo "$HARNESS_DIR/dockerd.log"; else echo "$HARNESS_DIR/dockerd26.log"; fi
}

# engine_docker <engine> <args...>: that engine's own docker CLI.
engine_docker() {
  local e="$1"
  shift
  if [[ "$e" == 20 ]]; then
    "$DOCKER" "$@"
  else
    DOCKER_CONFIG="$E26_CONFIG" "$E26_DOCKER" "$@"
  fi
}

# engine_build_cmd <engine>: the build command users type there. On 26 the
# containerd image store makes buildx add a provenance attestation, which
# records build times; it is turned off (README: "Keep provenance off").
engine_build_cmd() {
  if [[ "$1" == 20 ]]; then echo build; else echo buildx build --provenance=false; fi
}

# engine_iid_flag <engine> / engine_iid <engine> <file>: where a build
# leaves the image ID `docker run` takes, and reading it back. With the
# containerd image store, buildx 0.13's --iidfile holds the config digest,
# which the store does not know; the ID is the manifest digest, found in
# the --metadata-file.
engine_iid_flag() { if [[ "$1" == 20 ]]; then echo --iidfile; else echo --metadata-file; fi; }
engine_iid() {
  if [[ "$1" == 20 ]]; then
    cat "$2"
  else
    sed -n 's/^ *"containerimage.digest": "\(sha256:[0-9a-f]*\)".*/\1/p' "$2"
  fi
}

# The version of the daemon answering on the default socket, or nothing.
# Debian 12's client speaks an API version both engines accept.
server_version() {
  timeout 20 "$DOCKER" version --format '{{.Server.Version}}' 2>/dev/null || true
}

# engine_of_version <version>: 20, 26, or "other".
engine_of_version() {
  case "$1" in
    20.10.*) echo 20 ;;
    26.*) echo 26 ;;
    *) echo other ;;
  esac
}

# engine_running: 20 or 26 for the engine answering on the default socket,
# "other" for any other version, nothing if no daemon answers.
engine_running() {
  local v
  v="$(server_version)"
  [[ -n "$v" ]] || return 0
  engine_of_version "$v"
}

cgroups_mounted() { grep -qE ' - cgroup2? ' /proc/self/mountinfo; }

ensure_cgroups() {
  cgroups_mounted && return 0
  command -v cgroupfs-mount >/dev/null || die "no cgroups mounted and no cgroupfs-mount"
  cgroupfs-mount || die "cgroupfs-mount failed"
}

# ---------------------------------------------------- engine 26: its files
e26_present() {
  [[ -x "$E26_DOCKERD" && -x "$E26_DOCKER" && -x "$E26_CONFIG/cli-plugins/docker-buildx" ]]
}

# static_bin_build [repo]: build the static frontend binary of a checkout
# (default: this one, $STATIC_BIN) under its target/static; cargo does
# nothing when it is up to date. The checkout's path and cargo's home are
# remapped to fixed names, so the bytes do not depend on where the clone is
# (two clean clones in different folders give one binary).
static_bin_build() {
  local repo="${1:-$REPO_ROOT}" bin
  bin="$(static_bin_of "$repo")"
  command -v cargo >/dev/null || die "cargo not found in PATH"
  (
    cd "$repo" || die "cannot enter $repo"
    CARGO_ENCODED_RUSTFLAGS="$(static_rustflags "$repo")"
    export CARGO_ENCODED_RUSTFLAGS
    unset RUSTFLAGS
    run_logged cargo-static \
      cargo build --release --locked --target x86_64-unknown-linux-gnu --target-dir "$repo/target/static"
  ) || exit
  [[ -x "$bin" ]] || die "cargo did not produce $bin"
  if ldd "$bin" 2>&1 | grep -q '=>'; then
    die "$bin is dynamically linked: $(ldd "$bin" 2>&1 | tr '\n' ' ')"
  fi
}

static_bin_of() { echo "$1/target/static/x86_64-unknown-linux-gnu/release/repro-frontend"; }

# The rustc flags of the static build (CARGO_ENCODED_RUSTFLAGS: one flag per
# 0x1f-separated field, so a path with a space stays one flag).
static_rustflags() { # <repo>
  local home="${CARGO_HOME:-$HOME/.cargo}"
  printf -- '-Ctarget-feature=+crt-static\x1f--remap-path-prefix=%s=/repro-frontend\x1f--remap-path-prefix=%s=/cargo' \
    "$1" "$home"
}

# The time of a checkout's last commit (seconds): the frontend image's file
# and config times, never the clock.
commit_epoch() { # <repo>
  git -C "$1" log -1 --format=%ct 2>/dev/null || die "$1 is not a git checkout: the frontend image takes its times from the last commit"
}

# The machine's own Debian mirror: the first `deb` source whose suite is
# bookworm, in apt's reading order, as the frontend's own parser of apt
# sources finds it (src/distro/sources.rs). Run static_bin_build first.
debian_mirror_uri() {
  "$STATIC_BIN" sources --root / --suite bookworm
}

# apt options for a private state: only our sources, our lists, our cache,
# an empty dpkg status and no pinning; the machine's apt.conf.d still applies
# (proxies). APT::Sandbox::User=root: the _apt user cannot write there.
e26_apt_opts() {
  local a="$E26_DIR/apt"
  E26_APT_OPTS=(
    -o "Dir::Etc::SourceList=/dev/null"
    -o "Dir::Etc::SourceParts=$a/sources.list.d"
    -o "Dir::Etc::Preferences=/dev/null"
    -o "Dir::Etc::PreferencesParts=/dev/null"
    -o "Dir::State=$a/state"
    -o "Dir::State::status=$a/state/status"
    -o "Dir::Cache=$a/cache"
    -o "Acquire::Languages=none"
    -o "APT::Sandbox::User=root"
  )
}

e26_apt_setup() {
  local mirror a="$E26_DIR/apt" keyring=/usr/share/keyrings/debian-archive-keyring.gpg
  static_bin_build "$REPO_ROOT"
  mirror="$(debian_mirror_uri)" ||
    die "no 'deb' source for bookworm in /etc/apt/sources.list or /etc/apt/sources.list.d/"
  [[ -r "$keyring" ]] || die "$keyring not found (package debian-archive-keyring)"
  mkdir -p "$a/sources.list.d" "$a/state/lists/partial" "$a/cache/archives/partial"
  : >"$a/state/status"
  cat >"$a/sources.list.d/$E26_SUITE.sources" <<SRC
Types: deb
URIs: $mirror
Suites: $E26_SUITE
Components: main
Targets: Packages
Signed-By: $keyring
SRC
}

# e26_candidate <package>: the version apt would download from the private index.
e26_candidate() {
  apt-cache "${E26_APT_OPTS[@]}" policy "$1" 2>/dev/null | awk '$1 == "Candidate:" { print $2 }'
}

# trixie_unpack <name> <dir> <package...>: the packages' current trixie
# versions, downloaded with the private apt state and unpacked (not
# installed) into <dir> (replaced), with "<package> <version>" lines in
# <dir>/.debs. Logs are <name>-apt-update and <name>-download.
trixie_unpack() {
  local name=$1 dir=$2 p v deb debs="$E26_DIR/$1-debs"
  shift 2
  e26_apt_setup
  e26_apt_opts
  run_logged "$name-apt-update" apt-get "${E26_APT_OPTS[@]}" update
  for p in "$@"; do
    v="$(e26_candidate "$p")"
    [[ -n "$v" && "$v" != "(none)" ]] || die "$E26_SUITE has no package $p (see $LOG_DIR/$name-apt-update.log)"
  done
  rm -rf "$debs" "$dir"
  mkdir -p "$debs" "$dir"
  run_logged "$name-download" env --chdir="$debs" apt-get "${E26_APT_OPTS[@]}" download "$@"
  for deb in "$debs"/*.deb; do
    dpkg-deb -x "$deb" "$dir"
    # shellcheck disable=SC2016 # dpkg's format, not the shell's
    dpkg-deb --show --showformat='${Package} ${Version}\n' "$deb" >>"$dir/.debs"
  done
  rm -rf "$debs" "$E26_DIR/apt/cache/archives"
}

# e26_fetch: make sure engine 26's files are unpacked (cached after the
# first run; no network then).
e26_fetch() {
  local t p v tmp="$E26_ROOT.tmp"
  t=$(date +%s)
  if [[ -x "$E26_DOCKERD" ]]; then
    say "engine 26 files: present (cached)"
  else
    need_root "fetching engine 26"
    [[ -x "$E26_RUNC" ]] || die "$E26_RUNC not found (package runc; engine 26 uses bookworm's runc)"
    trixie_unpack engine26 "$tmp" "${E26_PACKAGES[@]}"
    while read -r p v; do
      case "$p:$v" in
        docker.io:26.1.* | docker-cli:26.1.* | docker-buildx:0.13.* | containerd:*) ;;
        *) die "$E26_SUITE's $p is $v; expected docker.io and docker-cli 26.1, docker-buildx 0.13" ;;
      esac
    done <"$tmp/.debs"
    # docker.io's docker-init points at trixie's tini-static, not unpacked:
    # drop the dangling link so bookworm's /usr/bin/docker-init is found.
    [[ -e "$tmp/usr/bin/docker-init" ]] || rm -f "$tmp/usr/bin/docker-init"
    for p in usr/sbin/dockerd usr/bin/docker usr/bin/containerd usr/bin/containerd-shim-runc-v2 \
      usr/libexec/docker/cli-plugins/docker-buildx; do
      [[ -x "$tmp/$p" ]] || die "the unpacked packages have no /$p"
    done
    "$tmp/usr/sbin/dockerd" --version >/dev/null 2>&1 ||
      die "trixie's dockerd does not run here: $("$tmp/usr/sbin/dockerd" --version 2>&1 | head -n 1)"
    rm -rf "$E26_ROOT"
    mv "$tmp" "$E26_ROOT"
    say "engine 26 files: $(paste -sd, "$E26_ROOT/.debs" | sed 's/,/, /g') from $E26_SUITE ($(since "$t")s)"
  fi
  # The CLI finds buildx in its config dir's cli-plugins folder.
  mkdir -p "$E26_CONFIG/cli-plugins"
  ln -sfn ../../root/usr/libexec/docker/cli-plugins/docker-buildx \
    "$E26_CONFIG/cli-plugins/docker-buildx"
  # The containerd image store keeps compressed blobs beside the unpacked
  # snapshots: cap the build cache so a test run fits on a small disk.
  cat >"$E26_DIR/daemon.json" <<'JSON'
{
  "features": {"containerd-snapshotter": true},
  "builder": {"gc": {"enabled": true, "defaultKeepStorage": "8GB"}}
}
JSON
}

# ------------------------------------------------- start, stop, switch
dockerd_cmd() { # <engine> <pidfile>: the command line that starts it
  if [[ "$1" == 20 ]]; then
    DOCKERD_CMD=("$DOCKERD" --pidfile "$2")
  else
    # Its own daemon.json (not /etc/docker's), data root, exec root (its
    # containerd's sockets live there) and pidfile; the default socket.
    DOCKERD_CMD=(env "PATH=$E26_PATH" "$E26_DOCKERD" --pidfile "$2"
      --config-file "$E26_DIR/daemon.json" --data-root "$E26_DATA_ROOT"
      --exec-root "$E26_EXEC_ROOT" --host "unix://$DOCKER_SOCK")
  fi
}

dockerd_answers() { [[ -n "$(server_version)" ]]; }

# engine_start <engine>: start that engine's dockerd (no other daemon may
# answer on the socket) and wait until it answers with its version.
engine_start() {
  local e="$1" pidfile log i starter t v
  t=$(date +%s)
  pidfile="$(engine_pidfile "$e")"
  log="$(engine_log "$e")"
  need_root "starting dockerd"
  ensure_cgroups
  if ! pid_alive "$pidfile" dockerd; then
    # No systemd here: dockerd starts its own containerd (managed mode) when
    # no system containerd listens on /run/containerd/containerd.sock.
    # dockerd maintains the pidfile itself.
    rm -f "$pidfile"
    dockerd_cmd "$e" "$pidfile"
    printf '\n==== %s %s starts engine %s: %s\n' "$(date -u +%FT%TZ)" "$_script_name" "$e" \
      "${DOCKERD_CMD[*]}" >>"$log"
    setsid nohup "${DOCKERD_CMD[@]}" </dev/null >>"$log" 2>&1 9>&- &
    starter=$!
    for ((i = 0; i < 100; i++)); do
      [[ -s "$pidfile" ]] && break
      [[ -d "/proc/$starter" ]] || break
      sleep 0.1
    done
    [[ -s "$pidfile" ]] || echo "$starter" >"$pidfile"
  fi
  await_start 60 "$pidfile" "$log" "dockerd $e" dockerd_answers
  v="$(server_version)"
  [[ "$(engine_of_version "$v")" == "$e" ]] ||
    die "started engine $e but Docker $v answers on $DOCKER_SOCK (log: $log)"
  say "engine $e: started Docker $v, pid $(cat "$pidfile") ($(since "$t")s)"
}

engine_stop() { # <engine>
  stop_pidfile "$(engine_pidfile "$1")" dockerd "engine $1 (dockerd)" 60
}

# engine_use <engine>: make that engine the one running on the default
# socket, stopping the other one if this harness started it.
engine_use() {
  local want="$1" other cur
  engine_valid "$want" || die "unknown engine '$want' (known: ${ENGINES[*]})"
  for other in "${ENGINES[@]}"; do
    [[ "$other" != "$want" ]] || continue
    if pid_alive "$(engine_pidfile "$other")" dockerd; then
      need_root "stopping engine $other"
      engine_stop "$other"
    fi
  done
  [[ "$want" != 26 ]] || e26_fetch
  cur="$(engine_running)"
  if [[ "$cur" == "$want" ]]; then
    say "engine $want: already running (Docker $(server_version))"
  elif [[ -n "$cur" ]]; then
    die "Docker $(server_version) answers on $DOCKER_SOCK but was not started by this harness (no live $HARNESS_DIR/dockerd*.pid); stop it first"
  else
    engine_start "$want"
  fi
  echo "$want" >"$ENGINE_FILE.tmp"
  mv -f "$ENGINE_FILE.tmp" "$ENGINE_FILE"
}

# ---------------------------------------------------- images per engine
frontend_tar() { # <dir holding repro-frontend> <epoch>
  tar -C "$1" --owner=0 --group=0 --numeric-owner --mtime="@$2" --sort=name \
    --mode=0755 -c repro-frontend
}

# frontend_archive <dir holding repro-frontend> <out>: without engine 26,
# the image is written as a `docker load` archive by push-image.py: a
# config with the commit's time and the labels frontend.Dockerfile sets, so
# its ID is the same on every set-up (a `docker import` would carry the
# clock).
frontend_archive() { # <stage> <out> [repo] [tag]
  local epoch
  epoch="$(commit_epoch "${3:-$REPO_ROOT}")"
  frontend_tar "$1" "$epoch" >"$1.layer.tar"
  python3 "$SCRIPTS_DIR/push-image.py" archive "${4:-$FRONTEND_IMAGE}" --arch amd64 \
    --rootfs-tar "$1.layer.tar" --out "$2" \
    --created "$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)" \
    --entrypoint /repro-frontend \
    --label moby.buildkit.frontend.network.none=true \
    --label moby.buildkit.frontend.caps=moby.buildkit.frontend.subrequests
  rm -f "$1.layer.tar"
}

# On engine 26 the image is built from frontend.Dockerfile with buildx, the
# way users make it, with the named context "build" (a folder holding the
# binary) standing in for the Rust stage, so nothing is pulled. Its times
# come from the checkout's last commit: the binary's mtime and
# SOURCE_DATE_EPOCH (the config's created and history), so the image is the
# same bytes wherever and whenever it is built.
frontend_buildx() { # <dir holding repro-frontend> [repo] [tag]
  local repo="${2:-$REPO_ROOT}" tag="${3:-$FRONTEND_IMAGE}" epoch
  epoch="$(commit_epoch "$repo")"
  touch -h -d "@$epoch" "$1/repro-frontend"
  engine_docker 26 buildx build --progress=plain --provenance=false --sbom=false \
    --build-arg "SOURCE_DATE_EPOCH=$epoch" \
    -f "$repo/frontend.Dockerfile" --build-context "build=$1" \
    -t "$tag" "$1"
}

# A stamp per engine: "<binary sha256> <image id>" of the last import.
frontend_stamp() { echo "$HARNESS_DIR/frontend-image.$1"; }

# The identity of a frontend image: its binary, the Dockerfile around it and
# the commit time its times come from.
frontend_sum() { # <binary>
  { cat "$1" "$REPO_ROOT/frontend.Dockerfile"; commit_epoch "$REPO_ROOT"; } | sha256sum | cut -d' ' -f1
}

frontend_fresh() { # <engine> <binary>: the store holds an import of this binary
  local e="$1" stamp id
  stamp="$(frontend_stamp "$e")"
  [[ -s "$stamp" ]] || return 1
  id="$(engine_docker "$e" image inspect --format '{{.Id}}' "$FRONTEND_IMAGE" 2>/dev/null)" || return 1
  [[ "$(cat "$stamp")" == "$(frontend_sum "$2") $id" ]]
}

# frontend_tarball <binary>: the frontend image for this binary, saved as a
# tar (cached by the binary's sha256) and printed as a path. With engine 26's
# files present it is built from frontend.Dockerfile with buildx, on engine 26
# (started for the purpose; the engine that was running is started again
# afterwards), so both engines load the very image users would build.
# Without them it is written by frontend_archive. Either way its times come
# from the last commit, so a set-up of the same commit makes the same image.
frontend_tarball() {
  local bin="$1" sum tarball
  sum="$(frontend_sum "$bin")"
  tarball="$HARNESS_DIR/frontend-image-$sum.tar"
  if [[ ! -s "$tarball" ]]; then
    rm -f "$HARNESS_DIR"/frontend-image-*.tar
    frontend_image_tar "$REPO_ROOT" "$bin" "$FRONTEND_IMAGE" "$tarball"
  fi
  echo "$tarball"
}

# frontend_image_tar <repo> <binary> <tag> <out>: a checkout's frontend image
# (its binary, its frontend.Dockerfile, its commit's time) as a `docker load`
# archive, made as frontend_tarball says.
frontend_image_tar() {
  local repo="$1" bin="$2" tag="$3" out="$4" stage cur
  stage="$HARNESS_DIR/frontend-image"
  rm -rf "$stage"
  mkdir -p "$stage"
  install -m 0755 "$bin" "$stage/repro-frontend"
  if e26_present; then
    cur="$(engine_running)"
    [[ "$cur" == 26 ]] || engine_use 26 >&2
    run_logged frontend-buildx frontend_buildx "$stage" "$repo" "$tag" >&2
    run_logged frontend-save engine_docker 26 save -o "$out.tmp" "$tag" >&2
    if [[ -n "$cur" && "$cur" != 26 && "$cur" != other ]]; then
      engine_use "$cur" >&2
    fi
  else
    run_logged frontend-archive frontend_archive "$stage" "$out.tmp" "$repo" "$tag" >&2
  fi
  mv -f "$out.tmp" "$out"
  rm -rf "$stage"
}

# frontend_install <engine> <binary>: load the frontend image for this binary
# as $FRONTEND_IMAGE into that engine's store; its ID goes to FRONTEND_ID.
frontend_install() {
  local e="$1" bin="$2" old new tarball
  tarball="$(frontend_tarball "$bin")"
  old="$(engine_docker "$e" image inspect --format '{{.Id}}' "$FRONTEND_IMAGE" 2>/dev/null || true)"
  run_logged "frontend-load-$e" engine_docker "$e" load -i "$tarball"
  new="$(engine_docker "$e" image inspect --format '{{.Id}}' "$FRONTEND_IMAGE")"
  # Drop the previous (now untagged) image; ignore it if something uses it.
  if [[ -n "$old" && "$old" != "$new" ]]; then
    engine_docker "$e" rmi "$old" >/dev/null 2>&1 || true
  fi
  echo "$(frontend_sum "$bin") $new" >"$(frontend_stamp "$e")"
  FRONTEND_ID="$new"
}

# engine_images <engine>: the base image and an up-to-date frontend image in
# that engine's store (needs a finished setup.sh: base.ref, the binary).
engine_images() {
  local e="$1" ref base front t
  t=$(date +%s)
  if [[ ! -s "$HARNESS_DIR/base.ref" || ! -x "$STATIC_BIN" ]]; then
    say "images (engine $e): none yet, run scripts/setup.sh"
    return 0
  fi
  ref="$(cat "$HARNESS_DIR/base.ref")"
  if engine_docker "$e" image inspect "$ref" >/dev/null 2>&1; then
    base="present"
  else
    registry_up || die "the registry on $REGISTRY does not answer (run scripts/setup.sh)"
    run_logged "base-pull-$e" engine_docker "$e" pull "$ref"
    base="pulled"
  fi
  if frontend_fresh "$e" "$STATIC_BIN"; then
    front="up to date"
  else
    frontend_install "$e" "$STATIC_BIN"
    front="made ${FRONTEND_ID:0:19}"
  fi
  say "images (engine $e): base $base, $FRONTEND_IMAGE $front ($(since "$t")s)"
}

# engine_env <engine>: KEY=VALUE lines for that engine's CLI (not shell
# syntax: BUILD may hold a space).
engine_env() {
  if [[ "$1" == 20 ]]; then
    printf 'DOCKER=%s\nDOCKER_CONFIG=\nENGINE=20\nBUILD=build\n' "$DOCKER"
  else
    printf 'DOCKER=%s\nDOCKER_CONFIG=%s\nENGINE=26\nBUILD=buildx build\n' "$E26_DOCKER" "$E26_CONFIG"
  fi
}

# shellcheck source=scripts/buildkit.sh
source "$SCRIPTS_DIR/buildkit.sh"
