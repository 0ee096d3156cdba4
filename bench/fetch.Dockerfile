# Fetch only, the way a hand-written Dockerfile does it, for bench/run's
# fetch table: the lockfile's blobs with apt-helper (which checks each
# sha256), JOBS at a time (1: one after another), written out by basename.
ARG BASE
FROM ${BASE} AS fetch
ARG MIRROR
ARG JOBS=16
COPY SHA256SUMS-amd64 /tmp/debs/SHA256SUMS
RUN cd /tmp/debs \
 && grep -v '^#' SHA256SUMS | grep . | xargs -P "$JOBS" -n 2 sh -c \
      'exec /usr/lib/apt/apt-helper -qq download-file "$MIRROR/$1" "${1##*/}" "SHA256:$0"' \
 && rm SHA256SUMS

FROM scratch
COPY --from=fetch /tmp/debs/ /
