#!/usr/bin/env bash
# Frontend cost alone (issue 6, item 3): the time from start to a finished
# Definition, and the peak memory, for lockfiles of 10, 500 and 5000 entries,
# measured on `repro-frontend llb` (the gateway's conversion, without the
# engine round trips). Prints a table; asserts nothing.
#   bench/frontend-cost.sh [rounds]   (default 7; median and min-max shown)
set -euo pipefail
[[ -x /usr/bin/time ]] || { echo "frontend-cost: needs /usr/bin/time (apt-get install time; scripts/setup.sh installs it)" >&2; exit 1; }

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
rounds=${1:-7}
cd "$root"
cargo build -q --release
bin="$root/target/release/repro-frontend"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

printf '%s\n' '{"architecture":"amd64","os":"linux","created":"2024-05-01T00:00:00Z","config":{"Env":["PATH=/usr/bin:/bin"]}}' >"$work/base.json"

printf '| entries | providers | median ms | min-max ms | peak RSS MB | Definition KB |\n'
printf '| ---: | ---: | ---: | ---: | ---: | ---: |\n'
for n in 10 500 5000; do
  for providers in 1 2; do
    ctx="$work/ctx-$n-$providers"
    mkdir -p "$ctx"
    for ((i = 0; i < n; i++)); do
      printf '%064x  pool/main/p/pkg%05d/pkg%05d_1.0-1_amd64.deb\n' "$((i + 1))" "$i" "$i"
    done >"$ctx/SHA256SUMS-amd64"
    {
      echo "base: debian@sha256:$(printf '%064d' 1)"
      echo "packages:"
      echo "  sums: SHA256SUMS-amd64"
      echo "  providers:"
      echo "    - http://mirror.invalid/debian/{{.Name}}"
      ((providers == 2)) && echo "    - http://cache.invalid/{{.SHA256}}"
      echo "steps:"
      echo "  - run: true"
    } >"$ctx/repro.yaml"
    times=()
    rss=0
    for ((r = 0; r < rounds; r++)); do
      start=$(date +%s%N)
      /usr/bin/time -f '%M' -o "$work/rss" "$bin" llb "$ctx/repro.yaml" --context "$ctx" \
        --base-config "$work/base.json" >"$work/def.bin"
      end=$(date +%s%N)
      times+=($(((end - start) / 1000000)))
      m=$(cat "$work/rss")
      ((m > rss)) && rss=$m
    done
    mapfile -t sorted < <(printf '%s\n' "${times[@]}" | sort -n)
    median=${sorted[$((rounds / 2))]}
    kb=$(($(stat -c %s "$work/def.bin") / 1024))
    printf '| %d | %d | %d | %d-%d | %.1f | %d |\n' "$n" "$providers" "$median" \
      "${sorted[0]}" "${sorted[$((rounds - 1))]}" "$(awk -v k="$rss" 'BEGIN { print k / 1024 }')" "$kb"
  done
done
