# The repro-frontend image: one static binary on scratch.
#
# Published build (needs the Rust image from a registry; pin it by digest and
# take the times from the commit, and the image rebuilds bit for bit):
#   docker buildx build -f frontend.Dockerfile --provenance=false --sbom=false \
#     --build-arg RUST_IMAGE=rust:1-bookworm@sha256:<digest> \
#     --build-arg SOURCE_DATE_EPOCH="$(git log -1 --format=%ct)" \
#     -t <registry>/repro-frontend:v0 .
# From a binary you built yourself (nothing is pulled): the named context
# "build" replaces the Rust stage with a folder holding `repro-frontend`
# (scripts/frontend-image.sh does this with the binary's time set from the
# commit, and prints the image's digest to compare with a published one):
#   docker buildx build -f frontend.Dockerfile --build-context build=<folder> \
#     --build-arg SOURCE_DATE_EPOCH=<commit time> -t repro-frontend:v0 <folder>

ARG RUST_IMAGE=rust:1-bookworm

FROM ${RUST_IMAGE} AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
# The binary's time, and the config's (BuildKit reads this build arg).
ARG SOURCE_DATE_EPOCH=0
# A static-pie glibc binary: it runs in an empty image. Built for the
# machine the stage runs on (x86_64, or aarch64 on an arm64 host). The
# source and cargo paths are remapped to the names scripts/lib.sh uses, so
# the bytes do not depend on where the sources were.
RUN target="$(uname -m)-unknown-linux-gnu" \
 && CARGO_ENCODED_RUSTFLAGS="$(printf -- '-Ctarget-feature=+crt-static\037--remap-path-prefix=/src=/repro-frontend\037--remap-path-prefix=%s=/cargo' "${CARGO_HOME:-$HOME/.cargo}")" \
    cargo build --release --locked --target "$target" --target-dir /src/target/static \
 && cp "target/static/$target/release/repro-frontend" /repro-frontend \
 && touch -d "@$SOURCE_DATE_EPOCH" /repro-frontend

FROM scratch
COPY --from=build /repro-frontend /repro-frontend
# BuildKit runs the frontend without network: it only talks gRPC on stdio.
LABEL moby.buildkit.frontend.network.none="true"
# The Dockerfile frontend forwards subrequests (buildx --print/--call
# targets) only to frontends that declare them.
LABEL moby.buildkit.frontend.caps="moby.buildkit.frontend.subrequests"
ENTRYPOINT ["/repro-frontend"]
