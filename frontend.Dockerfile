# The repro-frontend image: one static binary on scratch.
#
# Published build (needs the Rust image from a registry):
#   docker buildx build -f frontend.Dockerfile -t <registry>/repro-frontend:v0 .
# From a binary you built yourself (no registry needed; the "binary" stage is
# replaced by the named context, a folder holding repro-frontend):
#   docker buildx build -f frontend.Dockerfile --build-context binary=<folder> -t repro-frontend:v0 .

ARG RUST_IMAGE=rust:1-bookworm

FROM ${RUST_IMAGE} AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
# A static-pie glibc binary: it runs in an empty image.
RUN RUSTFLAGS='-C target-feature=+crt-static' \
    cargo build --release --locked --target x86_64-unknown-linux-gnu \
 && strip target/x86_64-unknown-linux-gnu/release/repro-frontend \
 && mkdir /out && cp target/x86_64-unknown-linux-gnu/release/repro-frontend /out/

FROM scratch AS binary
COPY --from=build /out/repro-frontend /repro-frontend

FROM scratch
COPY --from=binary /repro-frontend /repro-frontend
# BuildKit runs the frontend without network: it only talks gRPC on stdio.
LABEL moby.buildkit.frontend.network.none="true"
ENTRYPOINT ["/repro-frontend"]
