#!/bin/bash
# FUSE over io_uring study (issue #14, "And the transport"): what the transport alone gains.
#
# Builds libfuse's own example passthrough_hp (libfuse >= 3.18 speaks FUSE-over-io_uring) and
# mounts it classic (/dev/fuse reads, thread pool or --single) and with `-o io_uring`, each on
# its own backing dir on the same filesystem.
# Runs examples/bench.rs's workloads (unpinned, and appends/sessions with the client on cpu0)
# on the plain dir, these mounts and (if built) a ccsfs
# root mount, interleaved, plus a round-trip probe (getxattr of a missing name, client pinned
# to each CPU, and which daemon thread served it). Prints medians, µs per op and the ratio to
# the plain dir. Manual tool: root only, never run by the test suite.
#
#   scripts/uring-study.sh [--rounds N]      (default 3)
#   LIBFUSE_SRC=/path/to/libfuse  use that checkout instead of `git clone` (needs >= 3.18)
#   STUDY_DIR=/var/tmp/uring-study  where mounts, sources and results go
#
# Needs: meson, ninja-build, liburing-dev (SQE128, liburing >= 2.2), pkg-config, a C/C++
# compiler, Linux >= 6.14 with /sys/module/fuse/parameters/enable_uring. The parameter is a
# global root-only switch: this script sets it to 1 for the io_uring mount and puts the old
# value back on exit, whatever happens. Timed runs hold the shared bench lock.
set -euo pipefail
ROUNDS=3
while [ $# -gt 0 ]; do
  case $1 in
    --rounds) ROUNDS=$2; shift 2 ;;
    *) echo "usage: $0 [--rounds N]" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "uring-study.sh: run as root (enable_uring and passthrough need it)" >&2; exit 1; }
PARAM=/sys/module/fuse/parameters/enable_uring
[ -w $PARAM ] || { echo "uring-study.sh: $PARAM missing: needs Linux >= 6.14 with CONFIG_FUSE_IO_URING" >&2; exit 1; }
REPO=$(cd "$(dirname "$0")/.." && pwd)
W=${STUDY_DIR:-/var/tmp/uring-study}
BENCH=$REPO/target/release/examples/bench
CCSFS=$REPO/target/release/ccsfs
LOCK=/tmp/ccsfs-bench.lock
mkdir -p "$W"
[ -x "$BENCH" ] || (cd "$REPO" && cargo build --release --examples)

# --- build libfuse + passthrough_hp + the probe -------------------------------------------
SRC=${LIBFUSE_SRC:-$W/libfuse}
[ -d "$SRC" ] || git clone --depth 1 https://github.com/libfuse/libfuse "$SRC"
HP=$SRC/build/example/passthrough_hp
if [ ! -x "$HP" ]; then
  (cd "$SRC" && meson setup build -Dexamples=true -Denable-io-uring=true -Dutils=false -Dtests=false >/dev/null \
    && ninja -C build example/passthrough_hp >/dev/null)
fi
cat > "$W/rtt.c" <<'EOF'
/* N getxattr()s of a missing name: one FUSE request each, nothing cached. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <sys/xattr.h>
int main(int argc, char **argv) {
  long n = atol(argv[2]); char buf[64]; struct timespec a, b;
  for (int i = 0; i < 500; i++) getxattr(argv[1], "user.study.missing", buf, sizeof buf);
  clock_gettime(CLOCK_MONOTONIC, &a);
  for (long i = 0; i < n; i++) getxattr(argv[1], "user.study.missing", buf, sizeof buf);
  clock_gettime(CLOCK_MONOTONIC, &b);
  printf("%.2f\n", ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / 1e3 / n);
  return 0;
}
EOF
cc -O2 -o "$W/rtt" "$W/rtt.c"

# --- mounts ---------------------------------------------------------------------------------
OLD_PARAM=$(cat $PARAM)
MNTS=()
cleanup() {
  set +e
  for m in "${MNTS[@]}"; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; done
  [ -n "${CCS_DIR:-}" ] && "$CCSFS" --ccs-dir "$CCS_DIR" unmount "$W/ccsfs-mnt" 2>/dev/null
  [ "$OLD_PARAM" = Y ] && echo 1 > $PARAM || echo 0 > $PARAM
  echo "enable_uring restored to $(cat $PARAM)" >&2
}
trap cleanup EXIT INT TERM
for t in plain classic single uring; do rm -rf "${W:?}/$t"; mkdir -p "$W/$t"; done
mkdir -p "$W/classic-mnt" "$W/single-mnt" "$W/uring-mnt"
echo 1 > $PARAM
"$HP" "$W/classic" "$W/classic-mnt" --nosplice >"$W/classic.log" 2>&1; MNTS+=("$W/classic-mnt")
"$HP" "$W/single" "$W/single-mnt" --single --nosplice >"$W/single.log" 2>&1; MNTS+=("$W/single-mnt")
"$HP" "$W/uring" "$W/uring-mnt" -o io_uring >"$W/uring.log" 2>&1; MNTS+=("$W/uring-mnt")
sleep 0.5
UPID=$(pgrep -f "passthrough_hp $W/uring " | head -1)
SPID=$(pgrep -f "passthrough_hp $W/single " | head -1)
ALLCPUS=$(taskset -p -c $$ | sed 's/.*: //')
if ! ls /proc/"$UPID"/task/*/comm >/dev/null 2>&1 || ! grep -q fuse-ring /proc/"$UPID"/task/*/comm; then
  echo "uring-study.sh: the io_uring mount has no fuse-ring threads: io_uring was not negotiated" >&2; exit 1
fi
declare -A DIR=([plain]=$W/plain [classic]=$W/classic-mnt [single]=$W/single-mnt [uring]=$W/uring-mnt)
TARGETS="plain classic single uring"
if [ -x "$CCSFS" ]; then
  CCS_DIR=$W/ccs; rm -rf "$CCS_DIR"; mkdir -p "$W/ccsfs-mnt"
  "$CCSFS" --ccs-dir "$CCS_DIR" profile add bench --group g >/dev/null
  "$CCSFS" --ccs-dir "$CCS_DIR" mount "$W/ccsfs-mnt"
  DIR[ccsfs]=$W/ccsfs-mnt/bench/projects; TARGETS="$TARGETS ccsfs"
fi

threads() { for t in /proc/"$1"/task/*; do printf '%s:%s ' "$(cat "$t"/comm)" "$(awk '{print $14+$15}' "$t"/stat)"; done; echo; }

# --- timed part, under the bench lock --------------------------------------------------------
RES=$W/results.txt; : > "$RES"
run() {
  for r in $(seq "$ROUNDS"); do
    for w in appends sessions picker atomic; do
      for t in $TARGETS; do
        d=${DIR[$t]}/r$r-$w
        [ $w = picker ] && d=${DIR[$t]}/r$r-sessions
        [ $w = atomic ] && [ $t != ccsfs ] && d=${DIR[$t]}/r$r-atomic
        [ $w = atomic ] && [ $t = ccsfs ] && d=$W/ccsfs-mnt/bench
        mkdir -p "$d"
        echo "$t $w $("$BENCH" $w "$d" | head -1)" >> "$RES"
      done
    done
    # The same with the client held on one CPU (its io_uring queue then never changes).
    for w in appends sessions; do
      for t in $TARGETS; do
        d=${DIR[$t]}/r$r-$w-cpu0; mkdir -p "$d"
        echo "$t $w-cpu0 $(taskset -c 0 "$BENCH" $w "$d" | head -1)" >> "$RES"
      done
    done
    for t in $TARGETS; do
      f=${DIR[$t]}/rtt-probe; touch "$f"
      echo "$t rtt workload=rtt seconds=$("$W/rtt" "$f" 20000) ops=1" >> "$RES"
      for c in 0 1; do
        echo "$t rtt-cpu$c workload=rtt seconds=$(taskset -c $c "$W/rtt" "$f" 20000) ops=1" >> "$RES"
      done
    done
    # The classic single-threaded daemon and the client on one CPU: what io_uring should match.
    taskset -a -p -c 0 "$SPID" >/dev/null
    echo "single rtt-samecpu workload=rtt seconds=$(taskset -c 0 "$W/rtt" "${DIR[single]}/rtt-probe" 20000) ops=1" >> "$RES"
    taskset -a -p -c "$ALLCPUS" "$SPID" >/dev/null
  done
  echo "# load $(cut -d' ' -f1-3 /proc/loadavg); uring daemon threads (comm:cpu ticks) after the run: $(threads "$UPID")" >> "$RES"
}
export -f run threads
export ROUNDS TARGETS BENCH W RES UPID SPID ALLCPUS CCSFS
export DIR_plain=${DIR[plain]} DIR_classic=${DIR[classic]} DIR_single=${DIR[single]} DIR_uring=${DIR[uring]} DIR_ccsfs=${DIR[ccsfs]:-}
flock "$LOCK" bash -c 'declare -A DIR=([plain]=$DIR_plain [classic]=$DIR_classic [single]=$DIR_single [uring]=$DIR_uring [ccsfs]=$DIR_ccsfs); run'

# Which ring thread serves a pinned client (placement), untimed.
f=$W/uring-mnt/rtt-probe
for c in 0 1; do
  before=$(threads "$UPID"); taskset -c $c "$W/rtt" "$f" 5000 >/dev/null
  echo "# client pinned to cpu$c (uring daemon, comm:cpu ticks): before [$before] after [$(threads "$UPID")]" >> "$RES"
done

python3 - "$RES" "$TARGETS" <<'PY'
import sys, re, statistics as st, collections
res, targets = sys.argv[1], sys.argv[2].split()
d = collections.defaultdict(list)
for l in open(res):
    m = re.match(r'(\S+) (\S+) workload=\S+ seconds=([0-9.]+) ops=(\d+)', l)
    if m:
        t, w, s, ops = m.group(1), m.group(2), float(m.group(3)), int(m.group(4))
        # rtt lines carry µs per round trip already; workloads carry seconds for ops
        d[(w, t)].append(s if w.startswith('rtt') else s * 1e6 / ops)
    elif l.startswith('#'):
        print(l.rstrip())
print('| workload | ' + ' | '.join(f'{t} µs/op (×plain)' for t in targets) + ' | uring / best classic |')
print('|---' * (len(targets) + 2) + '|')
for w in ['appends', 'appends-cpu0', 'sessions', 'sessions-cpu0', 'picker', 'atomic', 'rtt', 'rtt-cpu0', 'rtt-cpu1', 'rtt-samecpu']:
    if (w, 'plain') not in d and w != 'rtt-samecpu': continue
    p = st.median(d[(w, 'plain')] if (w, 'plain') in d else d[('rtt-cpu0', 'plain')])
    if w == 'rtt-samecpu':
        v = st.median(d[(w, 'single')])
        cells = [f'{v:.1f} ({v / p:.2f}×)' if t == 'single' else '' for t in targets]
        print('| rtt, client and single daemon both on cpu0 | ' + ' | '.join(cells) + ' | |')
        continue
    cells = [f'{st.median(d[(w, t)]):.1f} ({st.median(d[(w, t)]) / p:.2f}×)' for t in targets]
    uc = st.median(d[(w, 'uring')]) / min(st.median(d[(w, 'classic')]), st.median(d[(w, 'single')]))
    print(f'| {w} | ' + ' | '.join(cells) + f' | {uc:.2f} |')
PY
