#!/usr/bin/env bash
# Runs the integration tests and the end-to-end scenario again as an ordinary user, who
# mounts through fusermount3 (no kernel passthrough). Must be started as root: it creates the
# user (ccsfs-test) when missing and copies the binaries where that user can run them.
#
# Usage: scripts/unprivileged-tests.sh    (after the tests were built: cargo test --no-run)
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "unprivileged-tests.sh: run as root (it switches to the test user)" >&2; exit 2; }

user=ccsfs-test
id "$user" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash "$user"
uid=$(id -u "$user")
mode=$(stat -c %a /dev/fuse)
if [ "$mode" != 666 ]; then
  # Distributions make it 0666; some VMs do not. CI (.ci/run) sets it, so there this fails.
  echo "unprivileged-tests.sh: /dev/fuse is $mode; fusermount3 needs 0666 (chmod 0666 /dev/fuse)" >&2
  [ "${CI:-}" = true ] && exit 2
  echo "unprivileged-tests.sh: skipped the ordinary-user run" >&2
  exit 0
fi

stage=$(mktemp -d /tmp/ccsfs-unpriv.XXXXXX)
trap 'rm -rf "$stage"' EXIT
chmod 755 "$stage"
cargo build --release --quiet
install -m 755 target/release/ccsfs "$stage/ccsfs"
mkdir -p "$stage/scripts" && cp scripts/e2e-claude.sh scripts/mock-anthropic.py "$stage/scripts/"
# The integration test executables (not the unit tests: nothing in them depends on the user).
mapfile -t tests < <(cargo test --release --tests --no-run --message-format=json 2>/dev/null |
  python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and "test" in m["target"]["kind"] and m["target"]["name"] != "e2e_claude":
        print(m["executable"])')
for t in "${tests[@]}"; do install -m 755 "$t" "$stage/"; done
chmod -R a+rX "$stage"

as_user() { setpriv --reuid="$uid" --regid="$uid" --init-groups env -i HOME="$(getent passwd "$user" | cut -d: -f6)" \
  PATH=/usr/local/bin:/usr/bin:/bin TMPDIR=/tmp USER="$user" CCSFS_BIN="$stage/ccsfs" CCSFS="$stage/ccsfs" \
  ${CCSFS_E2E_CACHE:+CCSFS_E2E_CACHE="$CCSFS_E2E_CACHE"} ${CLAUDE_BIN:+CLAUDE_BIN="$CLAUDE_BIN"} "$@"; }

failed=0
for t in "${tests[@]}"; do
  exe="$stage/$(basename "$t")"
  echo "-- $(basename "$t") as $user (uid $uid)"
  (cd "$stage" && as_user "$exe" --test-threads=2) || failed=1
done
echo "-- e2e-claude.sh as $user (uid $uid)"
(cd "$stage" && as_user bash "$stage/scripts/e2e-claude.sh") || failed=1
exit "$failed"
