# e2e-lib.sh - what the end-to-end scripts share (sourced by e2e-claude.sh and e2e-failover.sh):
# the ok/FAIL bookkeeping and summary line, the prerequisites (python3, timeout, tmux), finding
# or npm-installing a client, polling, checking a transcript is valid JSONL, and the clean-up of
# the temp world. The sourcing script sets `E2E_NAME` (the summary line's label) first.
# shellcheck shell=bash

t_start=$(date +%s)
passed=0 failed=0

ok() { passed=$((passed + 1)); echo "ok $1 $2"; }
bad() { failed=$((failed + 1)); echo "FAIL $1 $2: $3"; }
# check STEP WHAT WHY-IF-NOT COMMAND...
check() {
  local n=$1 what=$2 why=$3
  shift 3
  if "$@"; then ok "$n" "$what"; else bad "$n" "$what" "$why"; fi
}
say() { echo "# $*"; }
# shellcheck disable=SC1003 # sed's "$a\" (end the last line with a newline)
quote() { sed -e 's/^/    | /' -e '$a\'; }
summary() {
  echo "# runtime: $(($(date +%s) - t_start))s"
  echo "$E2E_NAME: $passed passed, $failed failed"
}
setup_fail() {
  bad 0 setup "$1"
  summary
  exit 1
}

# e2e_prerequisites: python3, timeout and tmux (installed with apt-get as root when missing).
e2e_prerequisites() {
  command -v python3 >/dev/null || setup_fail "python3 is required"
  command -v timeout >/dev/null || setup_fail "timeout (coreutils) is required"
  if ! command -v tmux >/dev/null; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
      say "installing tmux"
      { apt-get install -y tmux || { apt-get update && apt-get install -y tmux; }; } >/dev/null 2>&1
    fi
    command -v tmux >/dev/null || setup_fail "tmux is required (apt-get install tmux)"
  fi
}

# find_ccsfs: sets `ccsfs_bin` to $CCSFS, else builds this repo's (`repo`) and takes that.
find_ccsfs() {
  if [ -n "${CCSFS:-}" ]; then
    ccsfs_bin=$CCSFS
  else
    say "building ccsfs (cargo build --release)"
    # shellcheck disable=SC2154 # repo: set by the sourcing script
    (cd "$repo" && cargo build --release --quiet) || setup_fail "cargo build --release failed"
    ccsfs_bin="${CARGO_TARGET_DIR:-$repo/target}/release/ccsfs"
  fi
  [ -x "$ccsfs_bin" ] || setup_fail "no ccsfs binary at $ccsfs_bin"
}

cache_dir=${CCSFS_E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ccsfs-e2e}
# npm_client VAR NAME PACKAGE: sets `client` to $VAR, else NAME on PATH, else the cache's
# (npm-installed there when missing).
npm_client() {
  client=${!1:-}
  [ -n "$client" ] && return
  client=$(command -v "$2") && return
  client=$cache_dir/node_modules/.bin/$2
  [ -x "$client" ] && return
  command -v npm >/dev/null || setup_fail "no $2 binary and no npm to install it"
  say "installing $3 into $cache_dir"
  mkdir -p "$cache_dir" || setup_fail "cannot create $cache_dir"
  npm_config_cache="$cache_dir/npm-cache" npm_config_update_notifier=false \
    npm install --prefix "$cache_dir" --prefer-offline --no-audit --no-fund --loglevel=error \
    "$3" >"$cache_dir/npm-install.log" 2>&1 ||
    setup_fail "npm install $3 failed, see $cache_dir/npm-install.log"
}

# wait_for SECONDS COMMAND...: polls every 0.2 s until COMMAND succeeds.
wait_for() {
  local deadline=$(($(date +%s%N) / 1000000 + $1 * 1000))
  shift
  until "$@"; do
    [ $(($(date +%s%N) / 1000000)) -ge "$deadline" ] && return 1
    sleep 0.2
  done
}

# jsonl_valid FILE: every line is a JSON object and the file ends with a newline.
jsonl_valid() {
  python3 - "$1" <<'EOF'
import json, sys
try:
    data = open(sys.argv[1], "rb").read()
except OSError as e:
    sys.exit("cannot read it: %s" % e.strerror)
if not data.endswith(b"\n"):
    sys.exit("does not end with a newline")
for i, line in enumerate(data.split(b"\n")[:-1], 1):
    try:
        assert isinstance(json.loads(line), dict)
    except Exception:
        sys.exit("line %d is not a JSON object: %r" % (i, line[:120]))
EOF
}

# The temp world's tmux, mock and mount, by the sourcing script's globals: `T` (temp dir),
# `sock` (tmux socket), `mock_pid`, `ccsfs`, `ccs` (CCS dir), `mnt` (mount point).
# shellcheck disable=SC2154 # all set by the sourcing script before any of these runs
tm() { env -u TMUX tmux -f /dev/null -S "$sock" "$@"; }
# shellcheck disable=SC2154
is_mounted() { awk -v m="$mnt" '$5 == m { f = 1 } END { exit !f }' /proc/self/mountinfo; }
# shellcheck disable=SC2154
cleanup() {
  [ -S "$sock" ] && tm kill-server >/dev/null 2>&1
  [ -n "$mock_pid" ] && kill "$mock_pid" 2>/dev/null
  if is_mounted; then
    sleep 0.5 # let the clients that tmux hung up on exit
    "$ccsfs" --ccs-dir "$ccs" unmount "$mnt" >/dev/null 2>&1 ||
      "$ccsfs" --ccs-dir "$ccs" unmount -z "$mnt" >/dev/null 2>&1
  fi
  if is_mounted; then
    echo "# note: $mnt is still mounted; left $T in place"
  elif [ "${CCSFS_E2E_KEEP:-}" = 1 ]; then
    echo "# kept $T"
  else
    rm -rf "$T"
  fi
}
# e2e_cleanup_on_exit: tmux, mock, mount and temp dir go on exit, also on failure or a signal.
e2e_cleanup_on_exit() {
  trap cleanup EXIT
  trap 'exit 130' INT TERM HUP
}

# A client run's result, as the sourcing script's runner sets it: `out`, `err`, `rc`.
# show_cli: what the caller saw (for failure messages).
# shellcheck disable=SC2154
show_cli() {
  echo "    exit status: $rc"
  echo "    stdout:"
  printf '%s' "$out" | quote
  echo "    stderr:"
  printf '%s' "$err" | quote
}
# jfield KEY: KEY of the JSON result in $out (its last line: ccs prints notes before it).
jfield() { printf '%s' "$out" | python3 -c '
import json, sys
try:
    v = json.loads(sys.stdin.read().strip().splitlines()[-1]).get(sys.argv[1], "")
except Exception:
    v = ""
print(v if isinstance(v, str) else json.dumps(v))' "$1"; }
