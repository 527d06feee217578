#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, unit and integration tests (real
# FUSE mounts), then the pjdfstest POSIX conformance suite on a profile dir of a live mount.
# Needs /dev/fuse and fuse3; pjdfstest needs root (it switches users), so as a normal user
# that step is skipped with a note.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings

step "cargo test (unit tests, then integration tests on real mounts)"
cargo test --all-targets

step "pjdfstest on a mounted profile dir"
if [ "$(id -u)" -ne 0 ]; then
  echo "skipped: pjdfstest switches users and must run as root"
  exit 0
fi
cargo build --release --quiet
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
scripts/pjdfstest.sh "$mnt/p"
echo "-- in the group store (shared route): $mnt/p/projects"
chmod 755 "$ccs/shared" "$ccs/shared/context-groups" "$ccs/shared/context-groups/conformance" "$ccs/shared/context-groups/conformance/projects"
scripts/pjdfstest.sh "$mnt/p/projects"
