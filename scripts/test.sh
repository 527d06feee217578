#!/usr/bin/env bash
# The whole test suite, as CI runs it:
#   1. formatting and lints;
#   2. unit tests, integration tests on real mounts and the end-to-end scenario with the real
#      claude CLI, as the current user (as root: with kernel passthrough);
#   3. as root, the integration tests again without passthrough (the data path normal users
#      get), then everything again as an ordinary user mounting through fusermount3;
#   4. as root, the pjdfstest POSIX suite on a private and a shared profile dir;
#   5. a smoke run of the benchmark, to keep scripts/bench.sh working (speed is never asserted).
# Needs /dev/fuse and fuse3; the e2e scenario runs when claude is installed (.ci/run does it).
set -euo pipefail
cd "$(dirname "$0")/.."
export CCSFS_E2E_CACHE="${CCSFS_E2E_CACHE:-/opt/ccsfs-e2e}"

step() { printf '\n==> %s\n' "$*"; }
# Every runner's output also goes to a log, so that the last line can total the results.
log=$(mktemp /tmp/ccsfs-test-log.XXXXXX)
run() { "$@" 2>&1 | tee -a "$log"; }
root=false
[ "$(id -u)" -eq 0 ] && root=true

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings

step "cargo test (unit tests, integration tests on real mounts, end to end with claude)"
run cargo test --release --all-targets

if $root; then
  step "integration tests again without passthrough and with no fd kept per file"
  CCSFS_TEST_MOUNT_ARGS="--no-passthrough --fd-budget 0" run cargo test --release --tests -- --skip real_claude

  step "integration tests and end to end as an ordinary user (fusermount3)"
  run scripts/unprivileged-tests.sh
fi

step "pjdfstest on a mounted profile dir"
if ! $root; then
  echo "skipped: pjdfstest switches users and must run as root"
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

# One closing line for everything above: cargo's "test result" lines, pjdfstest's and the
# e2e script's "N passed, N failed" lines, added up.
python3 - "$log" <<'PY'
import re, sys
p = f = 0
for line in open(sys.argv[1], errors="replace"):
    m = re.search(r"(\d+) passed[;,] (\d+) failed", line)
    if m:
        p += int(m.group(1)); f += int(m.group(2))
print(f"all suites: {p} passed, {f} failed")
PY
rm -f "$log"
