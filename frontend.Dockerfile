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
# A static-pie glibc binary: it runs in an empty image.
RUN RUSTFLAGS='-C target-feature=+crt-static' \
    cargo build --release --locked --target x86_64-unknown-linux-gnu \
 && strip target/x86_64-unknown-linux-gnu/release/repro-frontend \
 && cp target/x86_64-unknown-linux-gnu/release/repro-frontend /repro-frontend

FROM scratch
COPY --from=build /repro-frontend /repro-frontend
# BuildKit runs the frontend without network: it only talks gRPC on stdio.
LABEL moby.buildkit.frontend.network.none="true"
# The Dockerfile frontend forwards subrequests (buildx --print/--call
# targets) only to frontends that declare them.
LABEL moby.buildkit.frontend.caps="moby.buildkit.frontend.subrequests"
ENTRYPOINT ["/repro-frontend"]
