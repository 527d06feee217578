#!/usr/bin/env python3
"""`ccsfs sessions list` over many transcripts of realistic size, for scripts/bench.sh.

Makes a CCS dir with one shared profile whose group store holds N sessions spread over 40
projects, each a JSONL transcript of user prompts, assistant replies with tool calls and tool
results as Claude Code writes them, log-normal in length (median ~75 records, ~120 KiB; a few
run to MiBs). Then times
`ccsfs sessions list --json` (the median of 3 warm runs) and, as root, one cold run after
dropping the page cache, with the bytes it read from disk (the children's rusage inblock):
list reads the head of each transcript, not the whole file.

Usage: bench-sessions.py CCSFS_BIN WORK_DIR N
"""
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import time
import uuid

ccsfs, work, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
ccs = os.path.join(work, "ccs")
rng = random.Random(42)
words = ("the a session file store lock mount profile group claude read write test "
         "build route cache kernel fuse rename append record tool result").split()


def text(k):
    return " ".join(rng.choice(words) for _ in range(k))


def transcript(sid, cwd):
    lines, parent = [], None
    t0 = 1764600000 + rng.randrange(10_000_000)
    # Log-normal lengths: most sessions are short, some run to thousands of records.
    for i in range(min(3000, max(10, int(rng.lognormvariate(4.3, 0.9))))):
        u = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        base = {"parentUuid": parent, "isSidechain": False, "userType": "external",
                "cwd": cwd, "sessionId": sid, "version": "2.1.0", "uuid": u,
                "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(t0 + 30 * i))}
        if i % 3 == 0:
            base.update(type="user", message={"role": "user", "content": text(rng.randrange(10, 120))})
        elif i % 3 == 1:
            base.update(type="assistant", message={
                "model": "claude-sonnet-4-5", "role": "assistant", "type": "message",
                "content": [{"type": "text", "text": text(rng.randrange(50, 400))},
                            {"type": "tool_use", "id": "toolu_" + u[:8], "name": "Read",
                             "input": {"file_path": cwd + "/src/main.rs"}}],
                "usage": {"input_tokens": 1000, "output_tokens": 200}})
        else:
            base.update(type="user", message={"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_x", "content": text(rng.randrange(100, 900))}]})
        lines.append(json.dumps(base, separators=(",", ":")))
        parent = u
    return "\n".join(lines) + "\n"


if not os.path.exists(os.path.join(ccs, "config.yaml")):
    subprocess.run([ccsfs, "--ccs-dir", ccs, "profile", "add", "bench", "--group", "bench"],
                   check=True, stdout=subprocess.DEVNULL)
    store = os.path.join(ccs, "shared", "context-groups", "bench", "projects")
    for i in range(n):
        cwd = f"/home/me/src/app{i % 40}"
        d = os.path.join(store, cwd.replace("/", "-"))
        os.makedirs(d, exist_ok=True)
        sid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        with open(os.path.join(d, sid + ".jsonl"), "w") as f:
            f.write(transcript(sid, cwd))

total = 0
for root, _, files in os.walk(os.path.join(ccs, "shared")):
    total += sum(os.path.getsize(os.path.join(root, f)) for f in files)


def run_list():
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_inblock
    t = time.monotonic()
    out = subprocess.run([ccsfs, "--ccs-dir", ccs, "sessions", "list", "--json"],
                         check=True, capture_output=True).stdout
    secs = time.monotonic() - t
    listed = len(json.loads(out)) if out.strip().startswith(b"[") else len(json.loads(out).get("sessions", []))
    return secs, listed, (resource.getrusage(resource.RUSAGE_CHILDREN).ru_inblock - before) * 512


cold = None
if os.geteuid() == 0:
    subprocess.run(["sync"], check=True)
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")
    cold = run_list()
warm = [run_list() for _ in range(3)]
listed = warm[0][1]
if listed != n:
    sys.exit(f"bench-sessions: listed {listed} sessions, made {n}")
print(f"sessions list: {n} sessions, {total / 2**20:.0f} MiB of transcripts in 40 projects")
print(f"  warm (median of 3): {statistics.median(w[0] for w in warm):.3f}s")
if cold:
    print(f"  cold (page cache dropped): {cold[0]:.3f}s, {cold[2] / 2**20:.1f} MiB read from disk "
          f"({100 * cold[2] / total:.1f}% of the transcripts)")
else:
    print("  cold: needs root (to drop the page cache)")
