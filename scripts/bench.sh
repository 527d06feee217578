#!/usr/bin/env bash
# Side-by-side benchmark: the same workloads, in the same run, on
#   plain           a directory on the disk under $BENCH_DIR
#   ccsfs           <mnt>/bench/projects of a ccsfs mount (group-shared projects/; the atomic
#                   config workload uses the profile root, <mnt>/bench/.claude.json)
#   bindfs          bindfs mirroring the plain directory
#   mergerfs        mergerfs with the plain directory as its one branch   (when installed)
#   fuse-overlayfs  fuse-overlayfs over an empty lower dir                (when installed)
# and, apart from them, `ccsfs sessions list` over 10,000 sessions (scripts/bench-sessions.py).
# Workloads: transcript appends, create sessions, the session picker warm (listed right after
# the sessions were made) and cold (the picker of `claude --resume`, which lists sessions made
# long ago: each pass follows a wait past the kernel's attribute TTL and, as root, `echo 2 >
# /proc/sys/vm/drop_caches`, which drops dentries and inodes), atomic config rewrites,
# sequential write + read, 4 KiB reads, daemon memory and mount time.
# Rounds are interleaved across targets (for each round, for each workload: every target in
# turn) and the median per target is reported, with its ratio to the plain directory.
# examples/bench.rs does the work; this script mounts, orchestrates and reports.
#
#   scripts/bench.sh [--rounds N] [--smoke] [--raw] [--nofile N] [--both]
#
#   --both      (root) run twice: as root (passthrough), then as the test user ccsfs-test
#               through fusermount3 (made as scripts/unprivileged-tests.sh makes it, when
#               missing), and print both tables and one table of ratios for both modes
#   --rounds N  rounds per workload (default 5)
#   --smoke     small sizes and 1 round: a check that the script works (well under a minute)
#   --raw       also print every sample
#   --nofile N  set the open-file limit (soft and hard) for everything started here, the
#               FUSE daemons included; raising the hard limit needs CAP_SYS_RESOURCE. ccsfs
#               keeps an fd per inode the kernel holds, so this bounds the RSS workload.
#
# Environment: BENCH_DIR (default /var/tmp; must be a real disk, not tmpfs), CCSFS (the ccsfs
# binary) and BENCH_BIN (the bench example). Without CCSFS/BENCH_BIN both are built with
# cargo. Runs as root (mounts directly; a missing bindfs, mergerfs or
# fuse-overlayfs is installed with apt-get) or as a normal user (mounts through fusermount3; a missing target is skipped with a note). Speed is
# never asserted: the exit status is 0 when every target ran, non-zero on a setup failure or a
# workload error.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
rounds=5 smoke=0 raw=0 rounds_given= nofile= both=0
args=("$@")
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=${2:?--rounds needs a number}; rounds_given=1; shift 2 ;;
    --rounds=*) rounds=${1#*=}; rounds_given=1; shift ;;
    --smoke) smoke=1; shift ;;
    --raw) raw=1; shift ;;
    --both) both=1; shift ;;
    --nofile) nofile=${2:?--nofile needs a number}; shift 2 ;;
    --nofile=*) nofile=${1#*=}; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$rounds" in ''|*[!0-9]*|0) echo "bench.sh: --rounds needs a positive number" >&2; exit 2 ;; esac
if [ -n "$nofile" ]; then
  ulimit -n "$nofile" 2>/dev/null || { echo "bench.sh: cannot set the open-file limit to $nofile (raising it above the hard limit $(ulimit -Hn) needs CAP_SYS_RESOURCE)" >&2; exit 2; }
fi

# Sizes: the full run, or about 1/20 of it for --smoke.
if [ "$smoke" = 1 ]; then
  [ -n "$rounds_given" ] || rounds=1
  n_appends=200 n_sessions=100 n_dirs=40 picker_reps=5 cold_reps=1 n_atomic=50
  seq_mib=16 read_mib=16 rss_files=2000 rss_dirs=100 mount_cycles=3
else
  n_appends=4000 n_sessions=2000 n_dirs=40 picker_reps=5 cold_reps=3 n_atomic=1000
  seq_mib=512 read_mib=64 rss_files=100000 rss_dirs=100 mount_cycles=10
fi

die() { echo "bench.sh: $*" >&2; exit 1; }
note() { notes+=("$*"); echo "note: $*" >&2; }
progress() { printf '%s\n' "-- $*" >&2; }
notes=()
start_time=$EPOCHREALTIME
uid=$(id -u)

# --- binaries ---------------------------------------------------------------------------
if [ -z "${CCSFS:-}" ] || [ -z "${BENCH_BIN:-}" ]; then
  command -v cargo >/dev/null || die "cargo not found; set CCSFS and BENCH_BIN to prebuilt binaries"
  if [ -z "${CCSFS:-}" ]; then
    (cd "$repo" && cargo build --release --quiet) || die "cargo build --release failed"
    CCSFS=$repo/target/release/ccsfs
  fi
  if [ -z "${BENCH_BIN:-}" ]; then
    (cd "$repo" && cargo build --release --quiet --example bench) || die "cargo build --release --example bench failed"
    BENCH_BIN=$repo/target/release/examples/bench
  fi
fi
build_secs=$(awk -v a="$start_time" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }')
start_time=$EPOCHREALTIME
[ -x "$CCSFS" ] || die "ccsfs binary $CCSFS is not executable"
[ -x "$BENCH_BIN" ] || die "bench binary $BENCH_BIN is not executable"

# --- both modes -------------------------------------------------------------------------
# Root half, then the user half as ccsfs-test (binaries and scripts staged where it can read
# them), then one table of both. Each half leaves its work dir for the end (BENCH_DEFER_RM):
# the 150,000 deletes of the first half would otherwise slow the creates of the second.
if [ "$both" = 1 ]; then
  [ "$uid" = 0 ] || die "--both needs root (it runs the second half as the test user ccsfs-test)"
  user=ccsfs-test
  id "$user" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash "$user" || die "cannot create the user $user"
  user_uid=$(id -u "$user") user_gid=$(id -g "$user")
  stage=$(mktemp -d /tmp/ccsfs-bench-stage.XXXXXX)
  both_cleanup() {
    local d
    if [ -s "$stage/workdirs" ]; then
      while read -r d; do
        if grep -qF " $d/" /proc/self/mountinfo; then echo "bench.sh: something is still mounted under $d; left in place" >&2
        else rm -rf "$d"; fi
      done <"$stage/workdirs"
    fi
    rm -rf "$stage"
  }
  trap both_cleanup EXIT
  chmod 755 "$stage"
  mkdir -p "$stage/scripts"
  install -m 755 "$CCSFS" "$stage/ccsfs"
  install -m 755 "$BENCH_BIN" "$stage/bench"
  install -m 755 "$0" "$stage/scripts/bench.sh"
  install -m 644 "$repo/scripts/bench-sessions.py" "$stage/scripts/"
  for f in root.tsv user.tsv workdirs; do : >"$stage/$f"; done
  chown "$user_uid:$user_gid" "$stage/user.tsv"
  chmod 666 "$stage/workdirs"
  half_args=()
  for a in "${args[@]}"; do [ "$a" = --both ] || half_args+=("$a"); done
  rc=0
  echo "=== as root (kernel passthrough)"
  BENCH_SUMMARY=$stage/root.tsv BENCH_DEFER_RM=$stage/workdirs CCSFS=$stage/ccsfs BENCH_BIN=$stage/bench \
    "$stage/scripts/bench.sh" "${half_args[@]}" || rc=1
  echo
  echo "=== as $user (uid $user_uid, through fusermount3)"
  setpriv --reuid="$user_uid" --regid="$user_gid" --init-groups env -i HOME="$(getent passwd "$user" | cut -d: -f6)" \
    PATH=/usr/local/bin:/usr/bin:/usr/sbin:/bin:/sbin TMPDIR=/tmp USER="$user" ${BENCH_DIR:+BENCH_DIR="$BENCH_DIR"} \
    BENCH_SUMMARY="$stage/user.tsv" BENCH_DEFER_RM="$stage/workdirs" CCSFS="$stage/ccsfs" BENCH_BIN="$stage/bench" \
    bash "$stage/scripts/bench.sh" "${half_args[@]}" || rc=1
  echo
  echo "=== both modes: time relative to the plain dir (median of $rounds round(s) each)"
  python3 - "$stage/root.tsv" "$stage/user.tsv" <<'PY'
import sys
modes = []
for path, name in zip(sys.argv[1:], ("root", "user")):
    rows, order, cold = {}, [], ""
    for line in open(path):
        f = line.rstrip("\n").split("\t")
        if f[0] == "cold":
            cold = f[1]
            continue
        key, label, target, ratio = f
        if key not in rows:
            rows[key] = (label, {})
            order.append(key)
        rows[key][1][target] = ratio
    modes.append((name, rows, order, cold))
order = []
for _, _, o, _ in modes:
    order += [k for k in o if k not in order]
def fl(r):
    try: return float(r.rstrip("×"))
    except ValueError: return None
hdr = ["workload"]
for name, rows, _, _ in modes:
    hdr += [f"ccsfs {name}", f"best peer, {name}", f"every peer, {name}"]
print("| " + " | ".join(hdr) + " |")
print("|" + "---|" * len(hdr))
for key in order:
    label = next((m[1][key][0] for m in modes if key in m[1]), key)
    cells = [label]
    for name, rows, _, _ in modes:
        t = rows.get(key, ("", {}))[1]
        peers = {k: v for k, v in t.items() if k != "ccsfs"}
        best = min((p for p in peers if fl(peers[p]) is not None), key=lambda p: fl(peers[p]), default=None)
        cells += [t.get("ccsfs", "–"), f"{peers[best]} ({best})" if best else "–",
                  ", ".join(f"{p} {v}" for p, v in peers.items()) or "–"]
    print("| " + " | ".join(cells) + " |")
print()
for name, _, _, cold in modes:
    if cold:
        print(f"cold picker, {name}: {cold}")
PY
  exit "$rc"
fi

# --- the work dir -----------------------------------------------------------------------
base=${BENCH_DIR:-/var/tmp}
[ -d "$base" ] || die "BENCH_DIR $base does not exist"
base_fs=$(stat -f -c %T "$base")
case "$base_fs" in
  tmpfs|ramfs) die "$base is on $base_fs; set BENCH_DIR to a dir on a real disk" ;;
esac
W=$(mktemp -d "$base/ccsfs-bench.XXXXXX")
chmod 700 "$W"
mkdir -p "$W/results" "$W/logs" "$W/plain"

# Mounts made by this run: "kind mount_point [pid]", unmounted by the trap.
mounts=()
fg_pids=()

is_mounted() { awk -v m="$1" '$5 == m { found = 1 } END { exit !found }' /proc/self/mountinfo; }

unmount_plain_fuse() { # mount_point
  if [ "$uid" = 0 ]; then umount "$1" 2>/dev/null || umount -l "$1" 2>/dev/null || true
  else fusermount3 -u "$1" 2>/dev/null || fusermount3 -uz "$1" 2>/dev/null || true
  fi
}

wait_gone() { # pid: wait up to 5 s for a daemon we started to exit
  local i
  for i in $(seq 100); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.05; done
  return 1
}

cleanup() {
  local m kind mp dir pid
  set +e
  for m in "${mounts[@]}"; do
    read -r kind mp dir <<<"$m"
    is_mounted "$mp" || continue
    case "$kind" in
      ccsfs) "$CCSFS" --ccs-dir "$dir" unmount "$mp" >/dev/null 2>&1 || "$CCSFS" --ccs-dir "$dir" unmount --lazy "$mp" >/dev/null 2>&1 ;;
      *) unmount_plain_fuse "$mp" ;;
    esac
  done
  for pid in "${fg_pids[@]}"; do
    wait_gone "$pid" || kill "$pid" 2>/dev/null
  done
  if grep -qF " $W/" /proc/self/mountinfo; then
    echo "bench.sh: something is still mounted under $W; left in place" >&2
  elif [ -n "${BENCH_DEFER_RM:-}" ]; then
    echo "$W" >>"$BENCH_DEFER_RM" # removed by the --both run when both halves are done
  else
    rm -rf "$W"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- header -----------------------------------------------------------------------------
if [ "$uid" = 0 ]; then mode="root"; else mode="unprivileged (uid $uid)"; fi
echo "mode: $mode"
echo "kernel: $(uname -sr), cpus: $(nproc), memory: $(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
echo "bench dir: $W ($base_fs, $(findmnt -n -o SOURCE --target "$base" 2>/dev/null || echo '?'))"
if [ "$smoke" = 1 ]; then echo "size: smoke (1/20 of the counts, ${seq_mib} MiB files, $rss_files files for RSS)"; else echo "size: full"; fi
echo "rounds: $rounds (median reported)"
echo "open-file limit: soft $(ulimit -Sn), hard $(ulimit -Hn)"

# --- targets ----------------------------------------------------------------------------
targets=(plain)
declare -A wdir cfgdir pid_of backing_rss via_rss desc

wdir[plain]=$W/plain
cfgdir[plain]=
desc[plain]="plain dir on $base_fs"
backing_rss[plain]=$W/plain/rss-plain
via_rss[plain]=$W/plain/rss-plain

# Waits until a FUSE mount of ours answers (statfs), its daemon still running.
wait_mounted() { # mount_point pid logfile
  local i
  for i in $(seq 200); do
    if is_mounted "$1" && stat -f "$1" >/dev/null 2>&1; then return 0; fi
    kill -0 "$2" 2>/dev/null || { echo "daemon exited: $(tail -3 "$3" | tr '\n' ' ')"; return 1; }
    sleep 0.05
  done
  echo "not mounted after 10 s"
  return 1
}

# Starts a foreground FUSE daemon in the background (so its pid is ours) and waits for it.
start_fuse() { # name mount_point command...
  local name=$1 mp=$2 err; shift 2
  mkdir -p "$mp"
  "$@" >"$W/logs/$name.log" 2>&1 &
  local pid=$!
  if err=$(wait_mounted "$mp" "$pid" "$W/logs/$name.log"); then
    mounts+=("fuse $mp")
    fg_pids+=("$pid")
    pid_of[$name]=$pid
    return 0
  fi
  kill "$pid" 2>/dev/null || true
  is_mounted "$mp" && unmount_plain_fuse "$mp"
  note "$name skipped: mount failed: $err"
  return 1
}

# ccsfs: a temp CCS dir with one profile whose projects/ is shared with group benchgroup.
ccs=$W/ccs
ccs_mnt=$W/mnt-ccsfs
mkdir -p "$ccs_mnt"
"$CCSFS" --ccs-dir "$ccs" profile add bench --group benchgroup >"$W/logs/profile-add.log" 2>&1 \
  || die "ccsfs profile add failed: $(cat "$W/logs/profile-add.log")"
"$CCSFS" --ccs-dir "$ccs" mount "$ccs_mnt" >"$W/logs/ccsfs-mount.log" 2>&1 \
  || die "ccsfs mount failed: $(cat "$W/logs/ccsfs-mount.log")"
mounts+=("ccsfs $ccs_mnt $ccs")
status=$("$CCSFS" --ccs-dir "$ccs" status "$ccs_mnt") || die "ccsfs status failed"
pid_of[ccsfs]=$(sed -n 's/.*daemon pid \([0-9][0-9]*\).*/\1/p' <<<"$status" | head -1)
[ -n "${pid_of[ccsfs]}" ] || die "ccsfs status names no daemon pid: $status"
ccs_projects=$(awk '$1 == "projects" && $2 == "->" { print $3; exit }' <<<"$status")
[ -n "$ccs_projects" ] || die "ccsfs status shows no projects route for profile bench: $status"
case "$ccs_projects" in */context-groups/*) ;; *) die "projects/ of profile bench is not group-shared: $ccs_projects" ;; esac
targets+=(ccsfs)
wdir[ccsfs]=$ccs_mnt/bench/projects
cfgdir[ccsfs]=$ccs_mnt/bench
desc[ccsfs]="$CCSFS, daemon pid ${pid_of[ccsfs]}, $(grep -m1 '^passthrough:' <<<"$status" || echo 'passthrough: (not reported)'), daemon fd limit $(awk '/^Max open files/ { print $4 }' "/proc/${pid_of[ccsfs]}/limits" 2>/dev/null)"
backing_rss[ccsfs]=$ccs_projects/rss
via_rss[ccsfs]=$ccs_mnt/bench/projects/rss
mkdir -p "$ccs_mnt/bench/projects" || die "cannot create $ccs_mnt/bench/projects"

# The peers (installed when missing and root).
missing=()
for p in bindfs mergerfs fuse-overlayfs; do command -v "$p" >/dev/null || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ] && [ "$uid" = 0 ] && command -v apt-get >/dev/null; then
  progress "installing ${missing[*]}"
  { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" \
      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"; }; } \
    >"$W/logs/apt.log" 2>&1 || true
fi
if command -v bindfs >/dev/null; then
  # --no-allow-other: private to the user, like the ccsfs mount (root would add allow_other).
  if start_fuse bindfs "$W/mnt-bindfs" bindfs -f --no-allow-other "$W/plain" "$W/mnt-bindfs"; then
    targets+=(bindfs)
    wdir[bindfs]=$W/mnt-bindfs
    desc[bindfs]="$(bindfs --version 2>/dev/null | head -1), defaults + --no-allow-other, mirrors the plain dir"
    backing_rss[bindfs]=$W/plain/rss-bindfs
    via_rss[bindfs]=$W/mnt-bindfs/rss-bindfs
  fi
elif [ "$uid" = 0 ]; then note "bindfs skipped: apt-get install bindfs failed: $(tail -1 "$W/logs/apt.log" 2>/dev/null)"
else note "bindfs skipped: not installed (run as root to install it, or apt-get install bindfs)"
fi

mergerfs_helper=$(command -v mergerfs-fusermount || true)
if command -v mergerfs >/dev/null && [ "$uid" != 0 ] && [ -n "$mergerfs_helper" ] && [ ! -u "$mergerfs_helper" ]; then
  note "mergerfs skipped: a normal user's mergerfs mounts through $mergerfs_helper, which is not setuid root here"
elif command -v mergerfs >/dev/null; then
  if start_fuse mergerfs "$W/mnt-mergerfs" mergerfs -f "$W/plain" "$W/mnt-mergerfs"; then
    targets+=(mergerfs)
    wdir[mergerfs]=$W/mnt-mergerfs
    desc[mergerfs]="$(mergerfs --version 2>/dev/null | head -1), default options, one branch: the plain dir"
    backing_rss[mergerfs]=$W/plain/rss-mergerfs
    via_rss[mergerfs]=$W/mnt-mergerfs/rss-mergerfs
  fi
else note "mergerfs skipped: not installed"
fi

if command -v fuse-overlayfs >/dev/null; then
  mkdir -p "$W/ovl-lower" "$W/ovl-upper" "$W/ovl-work"
  if start_fuse fuse-overlayfs "$W/mnt-fuse-overlayfs" fuse-overlayfs -f \
      -o "lowerdir=$W/ovl-lower,upperdir=$W/ovl-upper,workdir=$W/ovl-work" "$W/mnt-fuse-overlayfs"; then
    targets+=(fuse-overlayfs)
    wdir[fuse-overlayfs]=$W/mnt-fuse-overlayfs
    desc[fuse-overlayfs]="$(fuse-overlayfs --version 2>/dev/null | grep -m1 "^fuse-overlayfs"), empty lower dir, upper dir on $base_fs"
    backing_rss[fuse-overlayfs]=$W/ovl-lower/rss
    via_rss[fuse-overlayfs]=$W/mnt-fuse-overlayfs/rss
  fi
else note "fuse-overlayfs skipped: not installed"
fi

fuse_targets=("${targets[@]:1}")
# The cold picker: past every target's attribute TTL (ccsfs: 1 s, src/tunables.rs; bindfs and
# mergerfs: 1 s by default; fuse-overlayfs: its own default), and as root with the kernel's
# dentries and inodes dropped.
cold_wait_ms=1500
if [ "$uid" = 0 ]; then
  cold_drop=1 cold_meant="each pass ${cold_wait_ms} ms after the last, then echo 2 > /proc/sys/vm/drop_caches (dentries and inodes dropped)"
else
  cold_drop=0 cold_meant="each pass ${cold_wait_ms} ms after the last, past the FUSE targets' attribute TTL (dropping caches needs root; the plain dir stays warm)"
fi
# fuse-overlayfs keeps entries and attributes far longer than the wait (no request reached it
# for a stat 5 s after the last here): only drop_caches makes it cold.
if [ "$cold_drop" = 0 ] && [[ " ${targets[*]} " == *" fuse-overlayfs "* ]]; then
  cold_meant+="; fuse-overlayfs caches for longer than that, so its cold picker is warm"
fi
echo "cold picker: $cold_meant"
for t in "${targets[@]}"; do printf '%-15s %s\n' "$t:" "${desc[$t]}"; done
echo "order in each round: ${targets[*]}"

# --- running workloads ------------------------------------------------------------------
failed=0
record() { echo "$3" >>"$W/results/$1.$2"; } # target key value

# Runs one bench workload; records every `workload=K seconds=S` line it prints.
run() { # target workload dir [key=value ...]
  local t=$1 w=$2 d=$3 out line k s; shift 3
  # Flush what earlier runs left dirty (untimed), so that an fsync here does not pay for
  # another target's writes: otherwise whichever target comes first after a write-heavy
  # workload commits everyone's journal. Nothing is dropped from the page cache.
  sync
  if ! out=$("$BENCH_BIN" "$w" "$d" "$@" 2>"$W/logs/last.err"); then
    failed=1
    touch "$W/results/$t.$w.error"
    note "$t: $w failed: $(tr '\n' ' ' <"$W/logs/last.err")"
    return 0
  fi
  [ -s "$W/logs/last.err" ] && note "$t: $w: $(tr '\n' ' ' <"$W/logs/last.err")"
  while read -r line; do
    k=$(sed -n 's/^workload=\([^ ]*\).*/\1/p' <<<"$line")
    s=$(sed -n 's/.* seconds=\([^ ]*\).*/\1/p' <<<"$line")
    [ -n "$k" ] && [ -n "$s" ] && record "$t" "$k" "$s"
    # A partial run (statall counts failed lstat calls): its time means little.
    case "$line" in *" errors="[1-9]*) echo "${line##* errors=}" >"$W/results/$t.$k.partial" ;; esac
  done <<<"$out"
}

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || true; }
for t in "${fuse_targets[@]}"; do record "$t" rss_mount "$(rss_kib "${pid_of[$t]}")"; done

for r in $(seq "$rounds"); do
  progress "round $r/$rounds"
  for t in "${targets[@]}"; do
    d=${wdir[$t]}/$t-r$r
    mkdir -p "$d/appends" "$d/sessions" "$d/atomic" "$d/seq" "$d/reads" || die "cannot create $d"
  done
  for w in appends sessions picker picker_cold atomic seqrw reads; do
    for t in "${targets[@]}"; do
      d=${wdir[$t]}/$t-r$r
      case "$w" in
        appends) run "$t" appends "$d/appends" "n=$n_appends" size=500 ;;
        sessions) run "$t" sessions "$d/sessions" "n=$n_sessions" "dirs=$n_dirs" size=2048 ;;
        picker) run "$t" picker "$d/sessions" "reps=$picker_reps" ;;
        picker_cold) run "$t" picker_cold "$d/sessions" "reps=$cold_reps" "wait_ms=$cold_wait_ms" "drop=$cold_drop" ;;
        atomic) run "$t" atomic "${cfgdir[$t]:-$d/atomic}" "n=$n_atomic" size=4096 ;;
        seqrw) run "$t" seqrw "$d/seq" "mib=$seq_mib" ;;
        reads) run "$t" reads "$d/reads" "mib=$read_mib" ;;
      esac
    done
  done
  # Only the big files go between rounds; the small ones stay until the end. A mass delete
  # makes the next creates in that part of the disk far dearer on ext2/3/4 without a journal
  # (the allocator skips inodes deleted in the last minute or more, reading each one's
  # dtime): the 2,000 creates of the plain dir then took anywhere from 0.03 s to 1.1 s,
  # depending on which round's deletes they happened to follow. Keeping them measures the
  # targets, not the allocator's memory of the previous round.
  for t in "${targets[@]}"; do
    rm -f "${wdir[$t]}/$t-r$r/seq/seq.bin" "${wdir[$t]}/$t-r$r/reads/read.bin" \
      || { failed=1; note "$t: cannot remove round $r's big files"; }
  done
done

# Daemon memory after $rss_files distinct lookups: files made directly in the backing dir
# (untimed), each lstat'ed once through the mount (timed: statall).
progress "daemon RSS after $rss_files lookups"
for t in "${targets[@]}"; do
  [ "$t" = plain ] || record "$t" rss_before "$(rss_kib "${pid_of[$t]}")"
  "$BENCH_BIN" populate "${backing_rss[$t]}" "dirs=$rss_dirs" "files=$rss_files" >/dev/null \
    || die "cannot populate ${backing_rss[$t]}"
  run "$t" statall "${via_rss[$t]}" "dirs=$rss_dirs" "files=$rss_files"
  if [ "$t" != plain ]; then
    record "$t" rss_after "$(rss_kib "${pid_of[$t]}")"
    record "$t" fds_after "$(ls "/proc/${pid_of[$t]}/fd" 2>/dev/null | wc -l)"
  fi
done

# Time until a new mount is ready: wall time of the mount command, which for each of these
# returns once the mount exists (ccsfs: once it answers statfs). Mount/unmount cycles are
# interleaved across the FUSE targets, on fresh mount points.
progress "mount time, $mount_cycles cycles"
declare -A cyc_cmd
cyc_ccs=$W/ccs-cycle
"$CCSFS" --ccs-dir "$cyc_ccs" profile add bench --group benchgroup >/dev/null 2>&1 || die "ccsfs profile add (cycle dir) failed"
for t in "${fuse_targets[@]}"; do mkdir -p "$W/cyc-$t"; done
mkdir -p "$W/cyc-ovl-upper" "$W/cyc-ovl-work"
timed_mount() { # target mount_point
  local t0 t1 rc=0
  t0=$EPOCHREALTIME
  case "$1" in
    ccsfs) "$CCSFS" --ccs-dir "$cyc_ccs" mount "$2" >"$W/logs/cyc.log" 2>&1 || rc=$? ;;
    bindfs) bindfs --no-allow-other "$W/plain" "$2" >"$W/logs/cyc.log" 2>&1 || rc=$? ;;
    mergerfs) mergerfs "$W/plain" "$2" >"$W/logs/cyc.log" 2>&1 || rc=$? ;;
    fuse-overlayfs) fuse-overlayfs -o "lowerdir=$W/ovl-lower,upperdir=$W/cyc-ovl-upper,workdir=$W/cyc-ovl-work" "$2" >"$W/logs/cyc.log" 2>&1 || rc=$? ;;
  esac
  t1=$EPOCHREALTIME
  if [ "$rc" != 0 ]; then
    failed=1
    touch "$W/results/$1.mount.error"
    note "$1: mount failed: $(tr '\n' ' ' <"$W/logs/cyc.log")"
    return 1
  fi
  case "$1" in ccsfs) mounts+=("ccsfs $2 $cyc_ccs") ;; *) mounts+=("fuse $2") ;; esac
  record "$1" mount "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f", b - a }')"
}
for i in $(seq "$mount_cycles"); do
  for t in "${fuse_targets[@]}"; do
    mp=$W/cyc-$t
    timed_mount "$t" "$mp" || continue
    stat "$mp/." >/dev/null 2>&1 || note "$t: fresh mount does not answer stat"
    if [ "$t" = ccsfs ]; then
      "$CCSFS" --ccs-dir "$cyc_ccs" unmount "$mp" >/dev/null 2>&1 || { failed=1; note "ccsfs unmount failed"; }
    else
      unmount_plain_fuse "$mp"
    fi
    for _ in $(seq 100); do is_mounted "$mp" || break; sleep 0.05; done
  done
done

# --- report -----------------------------------------------------------------------------
median() { # file
  sort -g "$1" | awk '{ v[NR] = $1 } END { if (NR == 0) exit 1; if (NR % 2) print v[(NR + 1) / 2]; else printf "%.6f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
fmt_secs() { awk -v v="$1" 'BEGIN { if (v < 0.01) printf "%.4fs", v; else if (v < 10) printf "%.3fs", v; else if (v < 100) printf "%.2fs", v; else printf "%.1fs", v }'; }
fmt_ratio() { awk -v v="$1" -v p="$2" 'BEGIN { if (p <= 0) exit; r = v / p; if (r < 0.1) printf " (%.2f×)", r; else if (r < 10) printf " (%.1f×)", r; else printf " (%.0f×)", r }'; }
fmt_mib() { awk -v v="$1" 'BEGIN { printf "%.1f MiB", v / 1024 }'; }
pad() { # text width: pad by characters (× is one character, also in the C locale)
  local s=$1 plain=${1//×/x} n
  n=$(($2 - ${#plain}))
  [ "$n" -ge 1 ] || n=1
  printf '%s%*s' "$s" "$n" ''
}

# row key workload label kind(secs|mib|count)
rows=(
  "appends appends|transcript appends ($n_appends)|secs"
  "sessions sessions|create sessions ($n_sessions)|secs"
  "picker picker|session picker (${picker_reps}×)|secs"
  "picker_cold picker_cold|session picker, cold (${cold_reps}×)|secs"
  "atomic atomic|atomic config ($n_atomic)|secs"
  "seqwrite seqrw|seq write ${seq_mib}M+fsync|secs"
  "seqread seqrw|seq read ${seq_mib}M|secs"
  "seqrw seqrw|seq write+read|secs"
  "reads4k_seq reads|4K reads seq ${read_mib}M|secs"
  "reads4k_rand reads|4K reads rand ${read_mib}M|secs"
  "statall statall|stat ${rss_files} new files|secs"
  "rss_mount -|daemon RSS at mount|mib"
  "rss_before -|RSS after workloads|mib"
  "rss_after -|RSS after ${rss_files} lookups|mib"
  "fds_after -|daemon open fds then|count"
  "mount mount|mount ready ($mount_cycles×)|secs"
)
labelw=28 cellw=17
echo
pad "workload" "$labelw"
for t in "${targets[@]}"; do pad "$t" "$cellw"; done
echo
for row in "${rows[@]}"; do
  IFS='|' read -r keys label kind <<<"$row"
  read -r key wl <<<"$keys"
  line=$(pad "$label" "$labelw")
  plain_med=
  [ -s "$W/results/plain.$key" ] && plain_med=$(median "$W/results/plain.$key")
  for t in "${targets[@]}"; do
    f=$W/results/$t.$key
    if [ -e "$W/results/$t.$wl.error" ] && [ ! -s "$f" ]; then cell="error"
    elif [ ! -s "$f" ]; then cell="-"
    else
      m=$(median "$f")
      case "$kind" in
        secs) cell="$(fmt_secs "$m")"
              [ "$t" != plain ] && [ -n "$plain_med" ] && cell+="$(fmt_ratio "$m" "$plain_med")" ;;
        mib) cell="$(fmt_mib "$m")" ;;
        count) cell="$m" ;;
      esac
      [ -e "$W/results/$t.$wl.error" ] && cell+="!"
      # statall with failed lookups: show the failures, and star the RSS measured after it.
      [ -e "$W/results/$t.$key.partial" ] && cell="$(cat "$W/results/$t.$key.partial") failed"
      case "$key" in rss_after|fds_after) [ -e "$W/results/$t.statall.partial" ] && cell+=" *" ;; esac
    fi
    line+=$(pad "$cell" "$cellw")
  done
  echo "$line"
done
echo
echo "Medians of $rounds round(s) (RSS and stat rows: one measurement; mount: median of $mount_cycles);"
echo "(N×) is the ratio to the plain dir. Sequential 4 KiB read() calls, and as many 4 KiB pread()s"
echo "at random offsets, of a file just written (nothing dropped from the page cache; a sync,"
echo "untimed, before each run)."
for t in "${targets[@]}"; do
  [ -e "$W/results/$t.statall.partial" ] &&
    echo "* $t: only $((rss_files - $(cat "$W/results/$t.statall.partial"))) of $rss_files lookups succeeded (see notes)"
done

# The issue's shape: per workload, ccsfs's and each peer's time relative to the plain dir.
# BENCH_SUMMARY (set by --both) receives the same as tab-separated lines.
ratio_keys=(appends sessions picker picker_cold atomic seqrw reads4k_seq reads4k_rand)
summary=${BENCH_SUMMARY:-/dev/null}
[ "$uid" = 0 ] && mode_short="root, passthrough" || mode_short="user, fusermount3"
echo
echo "time relative to the plain dir ($mode_short):"
hdr="| workload |"
for t in "${fuse_targets[@]}"; do hdr+=" $t |"; done
echo "$hdr"
echo "|---|$(printf -- '---|%.0s' "${fuse_targets[@]}")"
printf 'cold\t%s\n' "$cold_meant" >>"$summary"
for key in "${ratio_keys[@]}"; do
  label=
  for row in "${rows[@]}"; do [ "${row%% *}" = "$key" ] && { IFS='|' read -r _ label _ <<<"$row"; }; done
  line="| $label |"
  plain_med=
  [ -s "$W/results/plain.$key" ] && plain_med=$(median "$W/results/plain.$key")
  for t in "${fuse_targets[@]}"; do
    r="–"
    if [ -s "$W/results/$t.$key" ] && [ -n "$plain_med" ]; then
      r=$(fmt_ratio "$(median "$W/results/$t.$key")" "$plain_med" | tr -d ' ()')
    fi
    line+=" $r |"
    printf '%s\t%s\t%s\t%s\n' "$key" "$label" "$t" "$r" >>"$summary"
  done
  echo "$line"
done
echo "cold picker: $cold_meant"

if [ "$raw" = 1 ]; then
  echo
  echo "raw samples:"
  for t in "${targets[@]}"; do
    for row in "${rows[@]}"; do
      key=${row%% *}
      [ -s "$W/results/$t.$key" ] && printf '  %-15s %-13s %s\n' "$t" "$key" "$(tr '\n' ' ' <"$W/results/$t.$key")"
    done
  done
fi

# --- sessions list ----------------------------------------------------------------------
# Not a FUSE workload: `ccsfs sessions list` reads the CCS dir directly. 10,000 sessions of
# realistic (log-normal) length; it must read only the head of each (see bench-sessions.py).
echo
python3 "$repo/scripts/bench-sessions.py" "$CCSFS" "$W/sessions" "$([ "$smoke" = 1 ] && echo 300 || echo 10000)" \
  || { note "sessions list failed"; failed=1; }

if [ ${#notes[@]} -gt 0 ]; then
  echo
  echo "notes:"
  printf '  %s\n' "${notes[@]}"
fi
echo
echo "runtime: $(awk -v a="$start_time" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0fs", b - a }') (plus ${build_secs}s building)"
exit "$failed"
