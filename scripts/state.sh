# shellcheck shell=bash
# The harness's state file (target/harness/env): what set-up records for the
# later scripts and the Rust tests. Sourced; defines functions only.
#
# Format, read the same way by state_load here and by tests/support (Rust),
# and never evaluated: one `KEY=VALUE` a line, KEY matching
# [A-Za-z_][A-Za-z0-9_]*, VALUE the rest of the line taken byte for byte
# (spaces, quotes, `$`, a leading `--` included). Lines starting with `#`
# and blank lines are skipped. A value cannot hold a newline: state_put
# refuses one rather than write a line that would read back as two.

# state_put <file> <key> <value>: append one entry.
state_put() {
  local file="$1" key="$2" value="$3"
  [[ "$key" =~ ^[A-Za-z_][A-Za-z0-9_]*$ && "$key" != _sl_* ]] || {
    printf 'state_put: %s: bad key "%s"\n' "$file" "$key" >&2
    return 2
  }
  [[ "$value" != *$'\n'* ]] || {
    printf 'state_put: %s: the value of %s holds a newline\n' "$file" "$key" >&2
    return 2
  }
  printf '%s=%s\n' "$key" "$value" >>"$file"
}

# state_load <file>: set every entry as a (global, unexported) shell
# variable, without evaluating any value. A malformed line is an error naming
# its number. The locals carry a prefix no entry uses, so an entry named like
# one of them still reaches the caller.
state_load() {
  local _sl_file="$1" _sl_line _sl_key _sl_n=0
  [[ -r "$_sl_file" ]] || {
    printf 'state_load: cannot read %s (run scripts/setup.sh)\n' "$_sl_file" >&2
    return 1
  }
  while IFS= read -r _sl_line || [[ -n "$_sl_line" ]]; do
    _sl_n=$((_sl_n + 1))
    [[ -z "$_sl_line" || "$_sl_line" == \#* ]] && continue
    _sl_key="${_sl_line%%=*}"
    if [[ "$_sl_line" != *=* || ! "$_sl_key" =~ ^[A-Za-z_][A-Za-z0-9_]*$ || "$_sl_key" == _sl_* ]]; then
      printf 'state_load: %s:%d: not KEY=VALUE\n' "$_sl_file" "$_sl_n" >&2
      return 1
    fi
    printf -v "$_sl_key" '%s' "${_sl_line#*=}"
  done <"$_sl_file"
}
