#!/usr/bin/env bash
# The whole test suite, as CI runs it (root or not):
#   0. prerequisites: the apt packages below (installed when root and missing, else named with
#      the command that installs them), and the real `claude` (@anthropic-ai/claude-code) and
#      `ccs` (@kaitranntt/ccs) CLIs, installed with npm into the cache dir when missing;
#   1. formatting and lints;
#   2. every test, the #[ignore]d ones too (`cargo test -- --include-ignored`): unit tests,
#      integration tests on real mounts, the suite against the real CCS (tests/ccs.rs) and the
#      end-to-end scenario with the real claude (tests/e2e_claude.rs), as the current user (as
#      root: with kernel passthrough);
#   3. as root, the integration tests again without passthrough (the data path normal users
#      get), then everything again as an ordinary user mounting through fusermount3;
#   4. as root, the pjdfstest POSIX suite on a private and a shared profile dir;
#   5. a smoke run of the benchmark, to keep scripts/bench.sh working (speed is never asserted).
# The last line adds every runner up: `all suites: N passed, N failed, N skipped`.
#
# Skipped, never passed: a test that needs what this run cannot give it (root, when run as an
# ordinary user; a /dev/fuse open to users, for the ordinary-user tests) is left out of the
# run and listed as ignored with its reason, and counted as skipped; so is pjdfstest when not
# root. With CI=true nothing is left out: such a test runs, and fails naming what is missing.
# Which tests need what is read from their `#[ignore = "needs …"]` reasons (tests/common/prereq.rs).
#
# Needs (Debian/Ubuntu packages): fuse3 (fusermount3, /dev/fuse), tmux, python3, nodejs and
# npm, util-linux (setpriv, unshare), systemd (systemd-analyze, to check the user unit); as
# root also libacl1-dev (pjdfstest is built with cargo when missing). Rust from rustup. An
# ordinary user needs /dev/fuse to be 0666, as distributions set it.
#
# Environment (all optional):
#   CCSFS_E2E_CACHE  where the npm clients are installed and cached (npm's own download cache
#                    is its npm-cache/, so later installs work offline); default
#                    ${XDG_CACHE_HOME:-$HOME/.cache}/ccsfs-e2e. CI uses /opt/ccsfs-e2e.
#   CLAUDE_BIN, CCS_BIN  use these clients instead of the cached ones
#   CI=true          fail instead of skipping
set -euo pipefail
cd "$(dirname "$0")/.."
export CCSFS_E2E_CACHE="${CCSFS_E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ccsfs-e2e}"

step() { printf '\n==> %s\n' "$*"; }
die() { echo "test.sh: $*" >&2; exit 2; }
# Every runner's output also goes to a log, so that the last line can total the results.
log=$(mktemp /tmp/ccsfs-test-log.XXXXXX)
run() { "$@" 2>&1 | tee -a "$log"; }
root=false
[ "$(id -u)" -eq 0 ] && root=true
ci=false
[ "${CI:-}" = true ] && ci=true

step "prerequisites"
missing=()
for tool in fusermount3:fuse3 tmux:tmux python3:python3 node:nodejs npm:npm setpriv:util-linux systemd-analyze:systemd; do
  command -v "${tool%%:*}" >/dev/null || missing+=("${tool#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  if $root && command -v apt-get >/dev/null; then
    echo "installing ${missing[*]} (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1 ||
      { apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null; } ||
      die "apt-get install ${missing[*]} failed"
  else
    die "missing ${missing[*]}; install them first: sudo apt-get install ${missing[*]}"
  fi
fi
[ -c /dev/fuse ] || die "no /dev/fuse; load the module first: sudo modprobe fuse"
if ! $root && ! { [ -r /dev/fuse ] && [ -w /dev/fuse ]; }; then
  die "/dev/fuse is $(stat -c %a /dev/fuse), so you cannot mount; sudo chmod 0666 /dev/fuse (distributions do)"
fi

# The real clients, from npm, into the cache dir (the tests and the e2e script look there).
cache=$CCSFS_E2E_CACHE
npm_pkgs=()
[ -n "${CLAUDE_BIN:-}" ] || [ -x "$cache/node_modules/.bin/claude" ] || npm_pkgs+=(@anthropic-ai/claude-code)
[ -n "${CCS_BIN:-}" ] || [ -x "$cache/node_modules/.bin/ccs" ] || npm_pkgs+=(@kaitranntt/ccs)
if [ ${#npm_pkgs[@]} -gt 0 ]; then
  echo "installing ${npm_pkgs[*]} into $cache (npm)"
  mkdir -p "$cache" || die "cannot create $cache; set CCSFS_E2E_CACHE to a writable dir"
  npm install --prefix "$cache" --cache "$cache/npm-cache" --prefer-offline --no-audit --no-fund \
    --update-notifier=false --loglevel=error "${npm_pkgs[@]}" >"$cache/npm-install.log" 2>&1 ||
    die "npm install ${npm_pkgs[*]} failed; see $cache/npm-install.log"
fi
export CLAUDE_BIN="${CLAUDE_BIN:-$cache/node_modules/.bin/claude}"
export CCS_BIN="${CCS_BIN:-$cache/node_modules/.bin/ccs}"
echo "claude: $CLAUDE_BIN ($("$CLAUDE_BIN" --version 2>/dev/null </dev/null | head -1))"
ccs_pkg=$(dirname "$(readlink -f "$CCS_BIN")")/../package.json
echo "ccs:    $CCS_BIN ($(node -p "require('$ccs_pkg').version" 2>/dev/null || echo '?'))"

# The #[ignore]d tests whose reason matches the regex $1 (see tests/common/prereq.rs).
ignored_tests() {
  python3 - "$1" tests/*.rs <<'PY'
import re, sys
want = re.compile(sys.argv[1])
for path in sys.argv[2:]:
    src = open(path).read()
    for m in re.finditer(r'#\[ignore\s*=\s*"([^"]*)"\]\s*(?:#\[[^\]]*\]\s*)*fn\s+(\w+)', src):
        if want.search(m.group(1)):
            print(m.group(2))
PY
}
# What this run cannot give: root as a user, a user-open /dev/fuse (only CI sets it for us).
cannot=()
if ! $ci; then
  $root || cannot+=('^needs root')
  [ "$(stat -c %a /dev/fuse)" = 666 ] || cannot+=('/dev/fuse')
fi
left_out=()
if [ ${#cannot[@]} -gt 0 ]; then
  mapfile -t left_out < <(ignored_tests "$(IFS='|'; echo "${cannot[*]}")")
fi
skip_args=()
for t in "${left_out[@]}"; do skip_args+=(--skip "$t"); done
# Lists the left-out tests as cargo reports ignored ones (with their reasons), for the log's count.
list_left_out() {
  [ ${#left_out[@]} -gt 0 ] || return 0
  step "left out of this run, as ignored (${#left_out[@]}): they need what it cannot give"
  cargo test --release --tests -- --exact "${left_out[@]}" 2>&1 |
    { grep -E '^test [^ ]+ \.\.\. ignored|^test result: .* [1-9][0-9]* ignored' || true; } | tee -a "$log"
}

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings

step "cargo test --include-ignored (unit tests, real mounts, the real ccs, end to end with claude)"
run cargo test --release --all-targets -- --include-ignored --exact "${skip_args[@]}"
list_left_out

if $root; then
  step "integration tests again without passthrough and with no fd kept per file"
  CCSFS_TEST_MOUNT_ARGS="--no-passthrough --fd-budget 0" run cargo test --release --tests -- \
    --include-ignored --exact --skip real_claude_through_the_mount --skip failover_with_real_claude "${skip_args[@]}"

  step "integration tests and end to end as an ordinary user (fusermount3)"
  run scripts/unprivileged-tests.sh
fi

step "pjdfstest on a mounted profile dir"
if ! $root; then
  if $ci; then
    echo "pjdfstest: 0 passed, 2 failed (it switches users and must run as root; CI=true)" | tee -a "$log"
    exit 1
  fi
  echo "pjdfstest (not run): 0 passed, 0 failed, 2 skipped (its two runs: it switches users, so it needs root)" | tee -a "$log"
else
  # Short paths: the socket cases bind() unix sockets, whose paths are limited to 108 bytes.
  tmp=$(mktemp -d /tmp/pjd.XXXX)
  chmod 755 "$tmp"
  ccs="$tmp/c" mnt="$tmp/m"
  mkdir -p "$mnt"
  bin=target/release/ccsfs
  "$bin" --ccs-dir "$ccs" profile add p --group conformance >/dev/null
  cleanup() { "$bin" --ccs-dir "$ccs" unmount "$mnt" >/dev/null 2>&1 || true; rm -rf "$tmp"; }
  trap cleanup EXIT
  "$bin" --ccs-dir "$ccs" mount "$mnt" -o allow_other
  # The suite's other users must reach the profile dir; its instance is 0700 by default.
  chmod 755 "$ccs" "$ccs/instances" "$ccs/instances/p"
  echo "-- in the instance (private route): $mnt/p"
  run scripts/pjdfstest.sh "$mnt/p"
  echo "-- in the group store (shared route): $mnt/p/projects"
  chmod 755 "$ccs/shared" "$ccs/shared/context-groups" "$ccs/shared/context-groups/conformance" "$ccs/shared/context-groups/conformance/projects"
  run scripts/pjdfstest.sh "$mnt/p/projects"
  cleanup
  trap - EXIT
fi

step "benchmark smoke run (scripts/bench.sh --smoke)"
scripts/bench.sh --smoke

# One closing line for everything above: cargo's "test result" lines (ignored = skipped),
# pjdfstest's, the e2e script's and this script's "N passed, N failed[, N skipped]" lines.
python3 - "$log" <<'PY'
import re, sys
p = f = s = 0
why = {}
for line in open(sys.argv[1], errors="replace"):
    m = re.search(r"(\d+) passed[;,] (\d+) failed(?:[;,] (\d+) (?:ignored|skipped))?", line)
    if m:
        p += int(m.group(1)); f += int(m.group(2))
        n = int(m.group(3) or 0)
        if n:
            s += n
            who = ("pjdfstest runs" if line.startswith("pjdfstest (not run)")
                   else "ordinary-user tests" if line.startswith("unprivileged-tests.sh (not run)")
                   else "pjdfstest cases" if line.startswith("pjdfstest")
                   else "tests left out (cargo: ignored)")
            why[who] = why.get(who, 0) + n
if why:
    print("skipped: " + ", ".join(f"{n} {who}" for who, n in why.items()))
print(f"all suites: {p} passed, {f} failed, {s} skipped")
PY
rm -f "$log"
