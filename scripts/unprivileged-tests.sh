#!/usr/bin/env bash
# Runs the integration tests (the #[ignore]d ones too, such as the suite against the real ccs)
# and the two end-to-end scenarios (e2e-claude.sh, e2e-failover.sh) again as an ordinary user,
# who mounts through fusermount3 (no kernel passthrough). Must be started as root: it creates
# the user (ccsfs-test) when missing and copies the binaries where that user can run them.
#
# - The root-only tests (`#[ignore = "needs root…"]`) are left out and listed as ignored: they
#   ran as root already, and cannot run as this user.
# - The npm clients are $CLAUDE_BIN and $CCS_BIN, else those in $CCSFS_E2E_CACHE (default
#   ${XDG_CACHE_HOME:-$HOME/.cache}/ccsfs-e2e, as scripts/test.sh installs them). When the
#   test user cannot read them there (a cache under /root), a hard-linked copy of the cache's
#   node_modules is staged for it.
# - A /dev/fuse that is not 0666 stops fusermount3: outside CI the whole run is skipped and
#   counted as skipped; with CI=true it fails.
#
# Usage: scripts/unprivileged-tests.sh    (after the tests were built: cargo test --no-run)
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "unprivileged-tests.sh: run as root (it switches to the test user)" >&2; exit 2; }

user=ccsfs-test
id "$user" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash "$user"
uid=$(id -u "$user")

stage=$(mktemp -d /tmp/ccsfs-unpriv.XXXXXX)
trap 'rm -rf "$stage"' EXIT
chmod 755 "$stage"
cargo build --release --quiet
install -m 755 target/release/ccsfs "$stage/ccsfs"
mkdir -p "$stage/scripts" && cp scripts/e2e-lib.sh scripts/e2e-claude.sh scripts/e2e-failover.sh scripts/mock-anthropic.py "$stage/scripts/"
# The integration test executables (not the unit tests: nothing in them depends on the user).
mapfile -t tests < <(cargo test --release --tests --no-run --message-format=json 2>/dev/null |
  python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and "test" in m["target"]["kind"] and m["target"]["name"] not in ("e2e_claude", "failover"):
        print(m["executable"])')
for t in "${tests[@]}"; do install -m 755 "$t" "$stage/"; done

mode=$(stat -c %a /dev/fuse)
if [ "$mode" != 666 ]; then
  # Distributions make it 0666; some VMs do not. CI (.ci/run) sets it, so there this fails.
  echo "unprivileged-tests.sh: /dev/fuse is $mode; fusermount3 needs 0666 (chmod 0666 /dev/fuse)" >&2
  [ "${CI:-}" = true ] && exit 2
  n=0
  for t in "${tests[@]}"; do n=$((n + $("$t" --list 2>/dev/null | grep -c ': test$'))); done
  echo "unprivileged-tests.sh (not run): 0 passed, 0 failed, $((n + 2)) skipped ($n tests, e2e-claude.sh and e2e-failover.sh as $user)"
  exit 0
fi

as_user() { setpriv --reuid="$uid" --regid="$uid" --init-groups env -i HOME="$(getent passwd "$user" | cut -d: -f6)" \
  PATH=/usr/local/bin:/usr/bin:/bin TMPDIR=/tmp USER="$user" CCSFS_BIN="$stage/ccsfs" CCSFS="$stage/ccsfs" \
  ${CI:+CI="$CI"} CCSFS_E2E_CACHE="$cache" CLAUDE_BIN="$claude" CCS_BIN="$ccs" "$@"; }

# The npm clients, where the test user can run them.
cache=${CCSFS_E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ccsfs-e2e}
claude=${CLAUDE_BIN:-$cache/node_modules/.bin/claude}
ccs=${CCS_BIN:-$cache/node_modules/.bin/ccs}
user_can_run() { as_user test -x "$1" && as_user test -r "$(readlink -f "$1")"; }
if ! user_can_run "$claude" || ! user_can_run "$ccs"; then
  [ -d "$cache/node_modules" ] || { echo "unprivileged-tests.sh: no $cache/node_modules to stage for $user (run scripts/test.sh)" >&2; exit 2; }
  echo "-- staging $cache/node_modules for $user (it cannot read it there)"
  mkdir -p "$stage/e2e-cache"
  cp -al "$cache/node_modules" "$stage/e2e-cache/" 2>/dev/null || cp -a "$cache/node_modules" "$stage/e2e-cache/"
  cache=$stage/e2e-cache
  claude=$cache/node_modules/.bin/claude ccs=$cache/node_modules/.bin/ccs
fi
chmod -R a+rX "$stage"

# The root-only tests, by their ignore reasons (see tests/common/prereq.rs).
mapfile -t root_only < <(python3 - tests/*.rs <<'PY'
import re, sys
for path in sys.argv[1:]:
    for m in re.finditer(r'#\[ignore\s*=\s*"(needs root[^"]*)"\]\s*(?:#\[[^\]]*\]\s*)*fn\s+(\w+)', open(path).read()):
        print(m.group(2))
PY
)
skip_args=()
for n in "${root_only[@]}"; do skip_args+=(--skip "$n"); done

failed=0
for t in "${tests[@]}"; do
  exe="$stage/$(basename "$t")"
  echo "-- $(basename "$t") as $user (uid $uid)"
  (cd "$stage" && as_user "$exe" --include-ignored --test-threads=2 --exact "${skip_args[@]}") || failed=1
  here=()
  listed=$("$exe" --list 2>/dev/null)
  for n in "${root_only[@]}"; do grep -qx "$n: test" <<<"$listed" && here+=("$n"); done
  if [ ${#here[@]} -gt 0 ]; then
    echo "-- left out as $user, as ignored: root-only tests of $(basename "$t")"
    (cd "$stage" && as_user "$exe" --exact "${here[@]}") | grep -E '^test [^ ]+ \.\.\. ignored|^test result: ' || true
  fi
done
echo "-- e2e-claude.sh as $user (uid $uid)"
(cd "$stage" && as_user bash "$stage/scripts/e2e-claude.sh") || failed=1
echo "-- e2e-failover.sh as $user (uid $uid)"
(cd "$stage" && as_user bash "$stage/scripts/e2e-failover.sh") || failed=1
exit "$failed"
