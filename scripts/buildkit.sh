# shellcheck shell=bash disable=SC2034 # variables are used by the sourcing scripts
# Engine 3: standalone BuildKit (buildkitd + buildctl) built from the
# BuildKit source tarball in ../shared/third_party (REPRO_THIRD_PARTY
# overrides), with Go from Debian trixie's packages (fetched and unpacked
# like engine 26's files, no install). Sourced by lib.sh.
#
# Everything lives in target/harness/engine3/: go/ (the unpacked Go), src/
# (the unpacked tarball), bin/ (buildctl, buildkitd, dockerfile-frontend,
# cached by the tarball's sha256), state/ (buildkitd's root), the socket,
# the config and the log. buildkitd runs beside dockerd (its own state and
# socket) with the OCI worker, bookworm's runc, and the local registry as
# plain HTTP.

E3_DIR="$HARNESS_DIR/engine3"
E3_BIN="$E3_DIR/bin"
E3_SOCK="$E3_DIR/buildkitd.sock"
E3_ADDR="unix://$E3_SOCK"
E3_PIDFILE="$E3_DIR/buildkitd.pid"
E3_LOG="$E3_DIR/buildkitd.log"
E3_THIRD_PARTY="${REPRO_THIRD_PARTY:-$REPO_ROOT/../shared/third_party}"
E3_TARBALL_NAME=buildkit-v0.26.3.tar.xz
E3_TARBALL_SHA256=5a2250bb60db848ad4c99117b6a501015050279ea26ee4063b3235a1be9287a5
E3_GO_PACKAGES=(golang-1.24-go golang-1.24-src)
E3_GOROOT="$E3_DIR/go/usr/lib/go-1.24"
# Where the frontend and the Dockerfile frontend live for engine 3 (it has
# no image store of its own to load them into).
E3_FRONTEND_REPO="$REGISTRY/repro/frontend"
E3_DOCKERFILE_REPO="$REGISTRY/repro/dockerfile-frontend"

e3_tarball() { echo "$E3_THIRD_PARTY/$E3_TARBALL_NAME"; }

# e3_missing: why engine 3 cannot be built here, or nothing.
e3_missing() {
  local tb
  tb="$(e3_tarball)"
  if [[ ! -f "$tb" ]]; then
    echo "engine 3 (standalone BuildKit) needs $tb, BuildKit v0.26.3's source; it is not there (a clone outside this project? set REPRO_THIRD_PARTY to the folder holding it)"
  fi
}

e3_built() {
  [[ -x "$E3_BIN/buildctl" && -x "$E3_BIN/buildkitd" && -x "$E3_BIN/dockerfile-frontend" ]] &&
    [[ "$(cat "$E3_BIN/.source-sha256" 2>/dev/null)" == "$E3_TARBALL_SHA256" ]]
}

# e3_fetch_go: Go 1.24 from trixie, unpacked under engine3/go (cached).
e3_fetch_go() {
  [[ -x "$E3_GOROOT/bin/go" ]] && return 0
  trixie_unpack engine3-go "$E3_DIR/go.tmp" "${E3_GO_PACKAGES[@]}"
  rm -rf "$E3_DIR/go"
  mv "$E3_DIR/go.tmp" "$E3_DIR/go"
  [[ -x "$E3_GOROOT/bin/go" ]] || die "the unpacked Go packages have no $E3_GOROOT/bin/go"
}

# e3_build: buildctl, buildkitd and the Dockerfile frontend from the
# tarball, with no network (vendored modules); cached by its sha256.
e3_build() {
  local t tb got src="$E3_DIR/src"
  t=$(date +%s)
  if e3_built; then
    say "engine 3 binaries: present (cached, BuildKit v0.26.3)"
    return
  fi
  tb="$(e3_tarball)"
  got="$(sha256sum "$tb" | cut -d' ' -f1)"
  [[ "$got" == "$E3_TARBALL_SHA256" ]] ||
    die "$tb has sha256 $got, expected $E3_TARBALL_SHA256"
  need_root "building engine 3"
  e3_fetch_go
  rm -rf "$src" && mkdir -p "$src" "$E3_BIN"
  tar -xJf "$tb" -C "$src" --strip-components=1
  [[ -f "$src/go.mod" ]] || die "$tb did not unpack to a Go module (no go.mod)"
  local gobuild=(env -C "$src" GOROOT="$E3_GOROOT" PATH="$E3_GOROOT/bin:$PATH"
    GOFLAGS=-mod=vendor GOTOOLCHAIN=local GOPROXY=off CGO_ENABLED=0
    GOCACHE="$E3_DIR/gocache" GOPATH="$E3_DIR/gopath"
    "$E3_GOROOT/bin/go" build -trimpath -o "$E3_BIN/")
  run_logged engine3-go-build "${gobuild[@]}" ./cmd/buildctl ./cmd/buildkitd \
    ./frontend/dockerfile/cmd/dockerfile-frontend
  echo "$E3_TARBALL_SHA256" >"$E3_BIN/.source-sha256"
  rm -rf "$src"
  say "engine 3 binaries: built from $(basename "$tb") ($(since "$t")s)"
}

e3_ctl() { "$E3_BIN/buildctl" --addr "$E3_ADDR" "$@"; }

e3_up() { [[ -S "$E3_SOCK" ]] && e3_ctl debug workers >/dev/null 2>&1; }

# e3_start: buildkitd beside dockerd (idempotent).
e3_start() {
  local t cfg="$E3_DIR/buildkitd.toml"
  t=$(date +%s)
  if pid_alive "$E3_PIDFILE" buildkitd && e3_up; then
    say "engine 3: buildkitd already running (pid $(cat "$E3_PIDFILE"))"
    return
  fi
  e3_stop >/dev/null
  [[ -x "$E26_RUNC" ]] || die "$E26_RUNC not found (package runc)"
  mkdir -p "$E3_DIR/state"
  cat >"$cfg" <<TOML
root = "$E3_DIR/state"
[grpc]
  address = ["$E3_ADDR"]
[worker.oci]
  enabled = true
  gc = false
[worker.containerd]
  enabled = false
[registry."$REGISTRY"]
  http = true
  insecure = true
TOML
  printf '\n==== %s buildkitd starts\n' "$(date -u +%FT%TZ)" >>"$E3_LOG"
  # shellcheck disable=SC2016
  setsid nohup env PATH="/usr/sbin:/usr/bin:/sbin:/bin" "$E3_BIN/buildkitd" --config "$cfg" \
    </dev/null >>"$E3_LOG" 2>&1 9>&- &
  echo $! >"$E3_PIDFILE"
  await_start 30 "$E3_PIDFILE" "$E3_LOG" buildkitd e3_up
  say "engine 3: started buildkitd v0.26.3 on $E3_ADDR, pid $(cat "$E3_PIDFILE") ($(since "$t")s)"
}

e3_stop() {
  local pid i
  if pid_alive "$E3_PIDFILE" buildkitd; then
    pid="$(cat "$E3_PIDFILE")"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    say "engine 3 (buildkitd): stopped (pid $pid)"
  else
    say "engine 3 (buildkitd): not running (nothing to stop)"
  fi
  rm -f "$E3_PIDFILE"
}

# e3_push_image <docker> <local image> <repository>: pushes a local image to
# the registry and prints its pinned reference (repository@digest).
e3_push_image() {
  local docker="$1" image="$2" repo="$3" log digest
  "$docker" tag "$image" "$repo:v0" || die "docker tag $image $repo:v0 failed"
  log="$LOG_DIR/push-$(basename "$repo").log"
  "$docker" push "$repo:v0" >"$log" 2>&1 || {
    tail -n 20 "$log" >&2
    die "docker push $repo:v0 failed"
  }
  digest="$(sed -n 's/^.*: digest: \(sha256:[0-9a-f]\{64\}\) size: .*$/\1/p' "$log" | tail -n 1)"
  [[ "$digest" =~ ^sha256:[0-9a-f]{64}$ ]] || die "no digest in the push log $log"
  echo "$repo@$digest"
}

# e3_dockerfile_frontend_image <docker>: the Dockerfile frontend built from
# the same tarball, as an image (scratch + the binary + the labels BuildKit
# reads), in the running engine's store; prints its name.
e3_dockerfile_frontend_image() {
  local docker="$1" dir="$E3_DIR/dockerfile-image" name="repro-dockerfile-frontend:v0.26.3"
  rm -rf "$dir" && mkdir -p "$dir/bin"
  cp "$E3_BIN/dockerfile-frontend" "$dir/bin/"
  tar -C "$dir" --numeric-owner --owner=0 --group=0 --mtime=@0 -c bin |
    "$docker" import \
      --change 'ENTRYPOINT ["/bin/dockerfile-frontend"]' \
      --change 'LABEL moby.buildkit.frontend.network.none="true"' \
      --change 'LABEL moby.buildkit.frontend.caps="moby.buildkit.frontend.inputs,moby.buildkit.frontend.subrequests,moby.buildkit.frontend.contexts,moby.buildkit.frontend.gitquerystring"' \
      - "$name" >/dev/null || die "docker import of the Dockerfile frontend failed"
  echo "$name"
}
