# The repro-frontend image: one static binary on scratch.
#
# Published build (needs the Rust image from a registry):
#   docker buildx build -f frontend.Dockerfile -t <registry>/repro-frontend:v0 .
# From a binary you built yourself (nothing is pulled): the named context
# "build" replaces the Rust stage with a folder holding `repro-frontend`:
#   docker buildx build -f frontend.Dockerfile --build-context build=<folder> -t repro-frontend:v0 <folder>

ARG RUST_IMAGE=rust:1-bookworm

FROM ${RUST_IMAGE} AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
# A static-pie glibc binary: it runs in an empty image. Built for the
# machine the stage runs on (x86_64, or aarch64 on an arm64 host).
RUN target="$(uname -m)-unknown-linux-gnu" \
 && RUSTFLAGS='-C target-feature=+crt-static' \
    cargo build --release --locked --target "$target" \
 && strip "target/$target/release/repro-frontend" \
 && cp "target/$target/release/repro-frontend" /repro-frontend

FROM scratch
COPY --from=build /repro-frontend /repro-frontend
# BuildKit runs the frontend without network: it only talks gRPC on stdio.
LABEL moby.buildkit.frontend.network.none="true"
# The Dockerfile frontend forwards subrequests (buildx --print/--call
# targets) only to frontends that declare them.
LABEL moby.buildkit.frontend.caps="moby.buildkit.frontend.subrequests"
ENTRYPOINT ["/repro-frontend"]
