#!/usr/bin/env bash
# pjdfstest.sh - run the pjdfstest POSIX conformance suite (the Rust rewrite,
# crate `pjdfstest` on crates.io) against a directory, e.g. a ccsfs mount.
#
# Usage: scripts/pjdfstest.sh DIR [TEST_PATTERN...]
#
#   DIR           directory on the file system under test; the suite runs in a
#                 fresh subdirectory DIR/pjdfstest.XXXXXX which is removed after.
#   TEST_PATTERN  optional substring filters on test names (e.g. `chmod`,
#                 `rename::`), passed straight to pjdfstest. Default: all tests.
#
# What it does:
#   1. Puts ~/.cargo/bin on PATH and, only if no `pjdfstest` binary is on PATH,
#      runs `cargo install pjdfstest --locked` (needs libacl1-dev; installed
#      with apt-get when missing). Takes ~2 min on 2 cores.
#   2. Creates the dummy users the suite switches to (`nobody`, `tests`, each
#      with its primary group) if they are missing. Must run as root: the
#      suite's user-switching, chown and mknod(block/char) tests need it.
#   3. Writes the pjdfstest TOML config into a temp dir (features enabled,
#      naptime, dummy users, expected failures = the exclusion list).
#   4. Runs the whole suite (or the given patterns) and prints every line that
#      is not a plain "ok" (failures with their assertion message, skips with
#      their reason) followed by the suite's summary and our own summary line.
#   5. Exits 0 if no non-excluded case failed, 1 if some did, 2 on setup errors.
#
# Exclusions: scripts/pjdfstest-excluded.txt (override: PJDFSTEST_EXCLUDED),
# one exact test name per line, e.g. `utimensat::y2038  # reason: ...`; `#`
# starts a comment and every entry must carry a reason comment on its line.
# pjdfstest has no "skip this test" flag (test patterns only select), so the
# excluded cases still run. They are (a) written to the config's
# `settings.expected_failures`, so the suite itself reports them as "failed as
# expected", and (b) filtered by post-processing the suite's per-test output
# (`<name> <status>` lines): a FAILED line whose name is excluded is not
# counted as a failure, and an excluded case that passes ("PASSED
# UNEXPECTEDLY") is only reported as a hint to drop the exclusion. (b) is what
# decides the exit code.
#
# Environment knobs (all optional):
#   PJDFSTEST_FEATURES     opt-in features to enable (space separated);
#                          default "posix_fallocate rename_ctime utime_now utimensat"
#                          (`pjdfstest -l` lists them; chflags/birthtime/nfsv4 ACL
#                          ones are BSD/macOS only)
#   PJDFSTEST_NAPTIME      seconds slept between operations in timestamp tests,
#                          must exceed the fs timestamp granularity; default 0.01
#   PJDFSTEST_SECONDARY_FS directory on ANOTHER file system, for the EXDEV tests;
#                          default: a temp dir in /dev/shm if that is on a different
#                          device than DIR ("none" disables, tests are then skipped)
#   PJDFSTEST_TIMEOUT      seconds before the run is killed; default 900
#   PJDFSTEST_VERBOSE=1    also print the "ok" lines
#   PJDFSTEST_KEEP=1       keep the work dir and the raw log
#   PJDFSTEST_BACKTRACE=1  print a backtrace with each failure
set -euo pipefail

PJDFSTEST_VERSION=0.2.2 # version installed when missing (what the exclusions were made with)
script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
excluded_file="${PJDFSTEST_EXCLUDED:-$script_dir/pjdfstest-excluded.txt}"
features="${PJDFSTEST_FEATURES:-posix_fallocate rename_ctime utime_now utimensat}"
naptime="${PJDFSTEST_NAPTIME:-0.01}"
run_timeout="${PJDFSTEST_TIMEOUT:-900}"

trim() { local s="$1"; s="${s#"${s%%[![:space:]]*}"}"; echo "${s%"${s##*[![:space:]]}"}"; }
die() { echo "pjdfstest.sh: error: $*" >&2; exit 2; }
log() { echo "pjdfstest.sh: $*" >&2; }

[[ $# -ge 1 ]] || { sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }
dir="$1"; shift
patterns=("$@")
[[ -d "$dir" ]] || die "$dir is not a directory"
[[ "$(id -u)" -eq 0 ]] || die "must run as root (the suite switches uid, chowns and mknods devices)"

# --- 1. install pjdfstest if needed ------------------------------------------
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
if ! command -v pjdfstest >/dev/null 2>&1; then
    if [[ ! -e /usr/include/acl/libacl.h ]] && command -v apt-get >/dev/null 2>&1; then
        log "installing libacl1-dev (build dependency of pjdfstest)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y libacl1-dev >/dev/null ||
            { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y libacl1-dev >/dev/null; }
    fi
    log "installing pjdfstest $PJDFSTEST_VERSION with cargo (takes ~2 min)"
    cargo install pjdfstest --version "$PJDFSTEST_VERSION" --locked
fi
log "using $(command -v pjdfstest) ($(pjdfstest --version))"

# --- 2. dummy users -----------------------------------------------------------
nologin="$(command -v nologin || echo /usr/sbin/nologin)"
ensure_user() { # ensure_user NAME: user NAME exists (with a primary group)
    local name="$1"
    getent passwd "$name" >/dev/null && return 0
    log "creating user $name for the suite"
    if getent group "$name" >/dev/null; then
        useradd --system --gid "$name" --no-create-home --home-dir / --shell "$nologin" "$name"
    else
        useradd --system --user-group --no-create-home --home-dir / --shell "$nologin" "$name"
    fi
}
ensure_user nobody
ensure_user tests
nobody_group="$(id -gn nobody)" # "nogroup" on Debian, "nobody" elsewhere
tests_group="$(id -gn tests)"
[[ "$(id -g nobody)" != "$(id -g tests)" ]] || die "users nobody and tests must have different primary groups"

# --- 3. exclusion list --------------------------------------------------------
declare -A excluded=()
if [[ -f "$excluded_file" ]]; then
    lineno=0
    while IFS= read -r line || [[ -n "$line" ]]; do
        lineno=$((lineno + 1))
        entry="$(trim "${line%%#*}")"
        [[ -z "$entry" ]] && continue
        [[ "$entry" =~ ^[A-Za-z0-9_:]+$ ]] || die "$excluded_file:$lineno: bad test name '$entry'"
        reason="${line#*#}"
        [[ "$line" == *"#"* && -n "$(trim "$reason")" ]] ||
            die "$excluded_file:$lineno: '$entry' needs a '# reason: ...' comment on its line"
        excluded["$entry"]=1
    done <"$excluded_file"
else
    log "no exclusion file at $excluded_file, excluding nothing"
fi

# --- 4. config, work dirs -------------------------------------------------------
tmp="$(mktemp -d /tmp/pjdfstest-run.XXXXXX)"
work="$(mktemp -d "${dir%/}/pjdfstest.XXXXXX")"
secondary=""
cleanup() {
    if [[ "${PJDFSTEST_KEEP:-0}" == 1 ]]; then
        log "kept work dir $work and log $tmp/output.log"
    else
        rm -rf --one-file-system "$work" "$tmp" || log "warning: could not fully remove $work"
    fi
    [[ -n "$secondary" ]] && rm -rf --one-file-system "$secondary"
    return 0
}
trap cleanup EXIT
chmod 0755 "$work" # the suite works as nobody/tests inside it

# The suite switches euid to nobody/tests: they must be able to reach the work dir.
# On FUSE this fails unless the fs is mounted with -o allow_other.
if command -v runuser >/dev/null 2>&1 && ! runuser -u nobody -- test -x "$work" 2>/dev/null; then
    die "user nobody cannot access $work (every parent dir needs o+x; a FUSE mount needs -o allow_other)"
fi

secondary_fs="${PJDFSTEST_SECONDARY_FS:-}"
if [[ -z "$secondary_fs" && -d /dev/shm && "$(stat -c %d /dev/shm)" != "$(stat -c %d "$work")" ]]; then
    secondary_fs=/dev/shm
fi
secondary_args=()
if [[ -n "$secondary_fs" && "$secondary_fs" != none ]]; then
    secondary="$(mktemp -d "${secondary_fs%/}/pjdfstest-secondary.XXXXXX")"
    secondary_args=(-s "$secondary")
fi

config="$tmp/pjdfstest.toml"
{
    echo "# generated by scripts/pjdfstest.sh"
    echo "[features]"
    for f in $features; do echo "$f = {}"; done
    echo
    echo "[settings]"
    echo "naptime = $naptime"
    echo "allow_remount = false # EROFS tests would remount the fs read-only: skipped"
    echo "expected_failures = ["
    for name in "${!excluded[@]}"; do echo "  \"$name\","; done
    echo "]"
    echo
    echo "[dummy_auth]"
    echo "entries = [[\"nobody\", \"$nobody_group\"], [\"tests\", \"$tests_group\"]]"
} >"$config"

# --- 5. run -----------------------------------------------------------------------
cmd=(pjdfstest -c "$config" -p "$work" "${secondary_args[@]}" "${patterns[@]}")
log "running: ${cmd[*]}"
log "config:"; sed 's/^/    /' "$config" >&2
start=$SECONDS
set +e
# Backtraces of the release binary say nothing beyond the assertion message: off unless asked for.
NO_COLOR=1 RUST_BACKTRACE="${PJDFSTEST_BACKTRACE:-0}" RUST_LIB_BACKTRACE="${PJDFSTEST_BACKTRACE:-0}" \
    timeout --kill-after=10 "$run_timeout" "${cmd[@]}" >"$tmp/output.log" 2>&1
suite_rc=$?
set -e
elapsed=$((SECONDS - start))
sed -i 's/\x1b\[[0-9;]*m//g' "$tmp/output.log" # strip colours in case NO_COLOR is ignored

# --- 6. post-process the per-test lines ---------------------------------------
passed=0 failed=0 skipped=0 excl_failed=0 raw_bad=0
failed_names=() excl_passed_names=()
declare -A seen=()
while IFS= read -r line; do
    if [[ "$line" =~ ^([A-Za-z0-9_:]+)\ +(ok|FAILED|skipped|PASSED\ UNEXPECTEDLY|failed\ as\ expected)$ ]]; then
        name="${BASH_REMATCH[1]}" status="${BASH_REMATCH[2]}"
        seen["$name"]=1
        [[ "$status" == FAILED || "$status" == "PASSED UNEXPECTEDLY" ]] && raw_bad=$((raw_bad + 1))
        case "$status" in
            ok) passed=$((passed + 1)) ;;
            skipped) skipped=$((skipped + 1)) ;;
            "PASSED UNEXPECTEDLY") passed=$((passed + 1)); excl_passed_names+=("$name") ;;
            *) # FAILED or failed as expected
                if [[ -n "${excluded[$name]:-}" ]]; then
                    excl_failed=$((excl_failed + 1))
                else
                    failed=$((failed + 1)); failed_names+=("$name")
                fi ;;
        esac
    fi
done <"$tmp/output.log"

if [[ "${PJDFSTEST_VERBOSE:-0}" == 1 ]]; then
    cat "$tmp/output.log"
else
    grep -v -E ' ok$' "$tmp/output.log" || true
fi

echo
for name in "${failed_names[@]}"; do echo "FAILED: $name"; done
for name in "${excl_passed_names[@]}"; do
    echo "note: excluded case $name passed; consider removing it from $(basename "$excluded_file")"
done
if [[ ${#patterns[@]} -eq 0 ]]; then
    for name in "${!excluded[@]}"; do
        [[ -n "${seen[$name]:-}" ]] || echo "warning: excluded case $name does not exist in this pjdfstest"
    done
fi
summary_seen=0
grep -q '^Summary: ' "$tmp/output.log" && summary_seen=1
echo "pjdfstest: ran in ${elapsed}s; $excl_failed excluded case(s) failed as expected (see $(basename "$excluded_file"))"
echo "pjdfstest: $passed passed, $failed failed, $skipped skipped"

if [[ $failed -gt 0 ]]; then
    exit 1
fi
if [[ $summary_seen -eq 0 ]]; then
    echo "pjdfstest: the suite did not finish (exit code $suite_rc; 124 = timed out after ${run_timeout}s)" >&2
    exit 1
fi
if [[ $suite_rc -ne 0 && $raw_bad -eq 0 ]]; then
    echo "pjdfstest: the suite exited with $suite_rc without a failing case" >&2
    exit 1
fi
exit 0
