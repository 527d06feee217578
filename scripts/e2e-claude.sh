#!/usr/bin/env bash
# e2e-claude.sh - end-to-end check of ccsfs with the real Claude Code client, fully offline.
#
# Usage: scripts/e2e-claude.sh        (as root or as an ordinary user; no arguments)
#
# Sets up a temporary CCS dir with `work` (group e2e, deeper) and `personal` (group e2e) and
# an isolated `solo`, a temp project dir as the cwd, the loopback mock of the Messages API
# (scripts/mock-anthropic.py), and mounts ccsfs. Then drives `claude` through the mount:
#   1. `claude -p` in work: its transcript lands in the group store, not in the instance
#   2. personal `--resume <id> -p` continues the session (the mock sees 2 user turns)
#   3. work `-c -p` continues again, with personal's turn in the history (3 turns)
#   4. the isolated solo cannot resume it, and gets no copy
#   5. while an interactive `claude --resume <id>` in work (tmux) holds the transcript, a
#      `--resume <id> -p` from personal and one from work cannot append (ccsfs refuses with
#      EBUSY and logs it); the file stays valid JSONL with every record of the holder, and
#      what the CLI showed the user is printed
#   7. a fresh interactive session (tmux) writes its transcript into the group store
#   8. unmount + mount: the session is still there and resumes
#   9. with CCS (the real `ccs`): with the mount down, `ccs work -p` through `ccsfs shim`
#      (CCS_CLAUDE_PATH=$(ccsfs shim), CCSFS_CLAUDE=<real claude>) mounts it and starts a
#      session in the group store; `ccs personal --resume <id> -p` continues it and the mock
#      sees the whole history; while an interactive work session holds it, `ccs personal
#      --resume` cannot append (the lock applies to `ccs` launches too, refusal logged)
#  10. `/model haiku` in an interactive claude in work saves settings.json (Claude's temp file
#      + rename) into CCS's shared copy: personal reads it, and a personal `-p` run then asks
#      the mock for that model; each instance keeps CCS's settings.json link
#   6. (checked last, after every client run and the remount) .claude.json, sessions/ and
#      .credentials.json stay in their own instance; the fake credentials put into each
#      instance before the start are byte-for-byte unchanged and still 0600
# Every check prints `ok <step> <what>` or `FAIL <step> <what>: <why>`; the last line is
# `e2e: N passed, N failed`. Exit status 1 if anything failed (setup problems count as a
# failure of step 0).
#
# Needs: python3, tmux (installed with apt-get when missing and running as root), FUSE 3
# (fusermount3 for an ordinary user), node, npm unless the claude and ccs binaries are given.
#
# Environment (all optional):
#   CCSFS             ccsfs binary to test; default: `cargo build --release` in this repo
#   CLAUDE_BIN        claude binary; else `claude` on PATH; else the npm cache dir below,
#                     where `npm install --prefix DIR @anthropic-ai/claude-code` runs when
#                     DIR/node_modules/.bin/claude is missing (~8 s)
#   CCS_BIN           ccs binary (CCS, npm @kaitranntt/ccs); found and installed the same way
#   CCSFS_E2E_CACHE   that cache dir; default ${XDG_CACHE_HOME:-$HOME/.cache}/ccsfs-e2e
#                     (npm's own download cache goes to DIR/npm-cache)
#   CCSFS_E2E_KEEP=1  keep the temp dir (CCS dir, logs, mock log) for inspection
#
# Writes nothing outside a temp dir under ${TMPDIR:-/tmp} except the npm cache dir: the
# claude and ccs processes get HOME, TMPDIR and XDG dirs inside the temp dir (so CCS's
# ~/.claude is the temp one), tmux its own socket. The mount point is <ccs dir>/mnt, where
# the shim mounts it.
# Everything (tmux sessions, mock, mount, temp dir) is cleaned up on exit, also on failure.

# The checks are single-quoted strings that `eval` expands when they run:
# shellcheck disable=SC2016
set -uo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
E2E_NAME=e2e
# shellcheck source=scripts/e2e-lib.sh
. "$repo/scripts/e2e-lib.sh"

# ---------------------------------------------------------------- prerequisites ---------

e2e_prerequisites
find_ccsfs
ccsfs=$ccsfs_bin
npm_client CLAUDE_BIN claude @anthropic-ai/claude-code
claude=$client
npm_client CCS_BIN ccs @kaitranntt/ccs
ccs_bin=$client
command -v node >/dev/null || setup_fail "node is required by ccs (apt-get install nodejs)"
[ -x "$ccs_bin" ] || setup_fail "ccs binary $ccs_bin is not executable"
[ -x "$claude" ] || setup_fail "claude binary $claude is not executable"
say "ccsfs:  $ccsfs"
say "claude: $claude ($("$claude" --version 2>/dev/null </dev/null | head -1))"
say "ccs:    $ccs_bin ($(node -p "require('$(dirname "$(readlink -f "$ccs_bin")")/../package.json').version" 2>/dev/null))"
say "user:   $(id -un) (uid $(id -u))"

# ---------------------------------------------------------------- temp world -------------

T=$(mktemp -d "${TMPDIR:-/tmp}/ccsfs-e2e.XXXXXX") || setup_fail "mktemp failed"
T=$(cd "$T" && pwd -P)
ccs=$T/ccs mnt=$T/ccs/mnt proj=$T/proj home=$T/home sock=$T/tmux.sock
mkdir -p "$mnt" "$proj" "$home" "$T/orig" "$T/tmp"
log=$ccs/logs/ccsfs.log
mock_pid=

# in_backing ARGS...: find(1) in the CCS dir's backing files, not through the mount inside it.
in_backing() { find "$ccs" -path "$mnt" -prune -o "$@" -print 2>/dev/null; }
e2e_cleanup_on_exit

# Fake API key: the interactive client asks about a custom key unless its last 20 characters
# are pre-approved in .claude.json.
key=sk-ant-api03-ccsfs-e2e-0123456789abcdefghijklmnop
key_tail=${key: -20}
group=e2e
store=$ccs/shared/context-groups/$group
enc=$(printf '%s' "$proj" | sed 's/[^a-zA-Z0-9]/-/g') # Claude's project dir name for the cwd
nonce=$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')

if ! { "$ccsfs" --ccs-dir "$ccs" profile add work --group "$group" --deeper &&
  "$ccsfs" --ccs-dir "$ccs" profile add personal --group "$group" &&
  "$ccsfs" --ccs-dir "$ccs" profile add solo; } >"$T/profiles.out" 2>&1; then
  setup_fail "ccsfs profile add failed: $(cat "$T/profiles.out")"
fi

profiles="work personal solo"
for p in $profiles; do
  inst=$ccs/instances/$p
  mkdir -p "$inst"
  # Fake credentials with known bytes (not a real OAuth shape, so the client keeps using the key).
  printf '{"ccsfsE2eFakeCredentials":{"profile":"%s","secret":"cred-%s-%s"}}\n' "$p" "$p" "$nonce" \
    >"$T/orig/$p.credentials.json"
  cp "$T/orig/$p.credentials.json" "$inst/.credentials.json"
  chmod 600 "$inst/.credentials.json"
  cat >"$inst/.claude.json" <<EOF
{"ccsfsE2eProfile": "$p", "hasCompletedOnboarding": true, "theme": "dark",
 "customApiKeyResponses": {"approved": ["$key_tail"], "rejected": []},
 "projects": {"$proj": {"hasTrustDialogAccepted": true, "allowedTools": []}}}
EOF
done

python3 "$repo/scripts/mock-anthropic.py" --port-file "$T/mock.port" --log "$T/mock.log" \
  >"$T/mock.out" 2>&1 &
mock_pid=$!
wait_for 10 test -s "$T/mock.port" || setup_fail "the mock did not start: $(cat "$T/mock.out")"
port=$(cat "$T/mock.port")

"$ccsfs" --ccs-dir "$ccs" mount "$mnt" >"$T/mount.out" 2>&1 ||
  setup_fail "ccsfs mount failed: $(cat "$T/mount.out")"
say "mounted $mnt (ccs dir $ccs, mock on 127.0.0.1:$port, cwd $proj)"

# The client's environment: offline against the mock, HOME and XDG dirs inside the temp dir.
client_env=(env -u ANTHROPIC_AUTH_TOKEN -u ANTHROPIC_MODEL -u CLAUDE_CODE_USE_BEDROCK
  -u CLAUDE_CODE_USE_VERTEX -u CLAUDE_CODE_OAUTH_TOKEN -u TMUX
  HOME="$home" TMPDIR="$T/tmp" XDG_CONFIG_HOME="$home/.config" XDG_CACHE_HOME="$home/.cache"
  XDG_DATA_HOME="$home/.local/share" XDG_STATE_HOME="$home/.local/state"
  ANTHROPIC_BASE_URL="http://127.0.0.1:$port" ANTHROPIC_API_KEY="$key"
  CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 DISABLE_AUTOUPDATER=1)

# run_p PROFILE ARGS...: runs claude non-interactively in the project dir; sets out, err, rc.
run_p() {
  local p=$1
  shift
  out=$(cd "$proj" && timeout 90 "${client_env[@]}" CLAUDE_CONFIG_DIR="$mnt/$p" \
    "$claude" "$@" </dev/null 2>"$T/stderr")
  rc=$?
  err=$(cat "$T/stderr")
}
turns_of() { sed -n 's/.*mock reply: user turns=\([0-9][0-9]*\).*/\1/p' | head -1; }
# user_texts FILE: the user text records of a transcript, in order, for failure messages.
user_texts() {
  python3 - "$1" <<'EOF' 2>&1
import json, sys
out = []
for line in open(sys.argv[1], "rb"):
    try:
        r = json.loads(line)
    except ValueError:
        out.append("<bad line>")
        continue
    if r.get("type") != "user":
        continue
    c = (r.get("message") or {}).get("content")
    texts = [c] if isinstance(c, str) else [b.get("text", "") for b in c or []
                                            if isinstance(b, dict) and b.get("type") == "text"]
    out += ["%s%s" % ("(meta) " if r.get("isMeta") else "", t[:50].replace("\n", " ")) for t in texts]
print(" | ".join(out))
EOF
}
size_of() { if [ -f "$1" ]; then echo "$(wc -l <"$1") lines, $(wc -c <"$1") bytes"; else echo "missing"; fi; }
# session_pid PROFILE SESSION_ID: pid of the live client of that session, from sessions/*.json.
session_pid() {
  python3 - "$ccs/instances/$1/sessions" "$2" <<'EOF'
import glob, json, os, sys
for f in glob.glob(os.path.join(sys.argv[1], "*.json")):
    try:
        d = json.load(open(f))
    except Exception:
        continue
    if d.get("sessionId") == sys.argv[2] or sys.argv[2] == "*":
        print(d["pid"], d["sessionId"])
        break
EOF
}
screen() { tm capture-pane -p -J -S -200 -t "$1" 2>/dev/null; }
screen_has() { screen "$1" | grep -qF -- "$2"; }
# start_tui NAME PROFILE ARGS...: an interactive claude in a detached 200x50 tmux session.
start_tui() {
  local name=$1 p=$2
  shift 2
  {
    echo "cd '$proj' || exit 1"
    printf '%q ' "${client_env[@]}" CLAUDE_CONFIG_DIR="$mnt/$p" "$claude" "$@"
    echo
    echo 'echo "EXITED rc=$?"'
    echo 'sleep 120'
  } >"$T/tui-$name.sh"
  tm new-session -d -s "$name" -x 200 -y 50 "bash '$T/tui-$name.sh'"
}
# stop_tui NAME: /exit, then wait for the client to end.
stop_tui() {
  tm send-keys -t "$1" "/exit" Enter
  if wait_for "$w" screen_has "$1" "EXITED rc="; then
    say "$1: $(screen "$1" | grep -F "EXITED rc=" | tail -1)"
  else
    say "$1: no exit after /exit; screen:"
    screen "$1" | grep -v '^\s*$' | tail -15 | quote
  fi
  tm kill-session -t "$1" 2>/dev/null
}
in_store() { [ -f "$store/projects/$enc/$1.jsonl" ]; }
not_in_instance() { # not_in_instance PROFILE FILENAME: no file of that name anywhere in it
  [ -z "$(find "$ccs/instances/$1" -name "$2" -print -quit 2>/dev/null)" ]
}

# ---------------------------------------------------------------- 1 ----------------------
say "step 1: claude -p in work"
run_p work -p "hello from work $nonce" --output-format json
id=$(jfield session_id)
res=$(jfield result)
check 1 "claude -p in work exits 0 and answers (\"$res\")" \
  "exit $rc, result '$res', stderr: $err" \
  eval '[ "$rc" = 0 ] && [ -n "$id" ] && [ "$res" = "mock reply: user turns=1" ]'
tr=$store/projects/$enc/$id.jsonl
check 1 "its transcript is in the group store: shared/context-groups/$group/projects/$enc/$id.jsonl" \
  "not there; found: $(in_backing -name "$id.jsonl" | tr '\n' ' ')" in_store "$id"
check 1 "and not in the work instance" "found $(find "$ccs/instances/work" -name "$id.jsonl")" \
  not_in_instance work "$id.jsonl"
check 1 "the transcript is valid JSONL with the prompt" "$(jsonl_valid "$tr" 2>&1)" \
  eval 'jsonl_valid "$tr" && grep -qF "hello from work $nonce" "$tr"'
if [ -z "$id" ] || [ ! -f "$tr" ]; then
  say "no shared session to continue with; the other steps cannot run"
  summary
  exit 1
fi

# ---------------------------------------------------------------- 2 ----------------------
say "step 2: personal resumes work's session"
lines_before=$(wc -l <"$tr")
run_p personal --resume "$id" -p "hello from personal $nonce" --output-format json
res=$(jfield result)
check 2 "personal --resume $id -p continues the session (\"$res\", same session id)" \
  "exit $rc, session $(jfield session_id), result '$res', stderr: $err" \
  eval '[ "$rc" = 0 ] && [ "$(jfield session_id)" = "$id" ] && [ "$res" = "mock reply: user turns=2" ]'
check 2 "its turn is appended to the same transcript in the store" \
  "transcript went from $lines_before lines to $(wc -l <"$tr" 2>/dev/null)" \
  eval 'grep -qF "hello from personal $nonce" "$tr" && [ "$(wc -l <"$tr")" -gt "$lines_before" ] && not_in_instance personal "$id.jsonl"'

# ---------------------------------------------------------------- 3 ----------------------
say "step 3: work continues (-c) with personal's turn in the history"
run_p work -c -p "hello again from work $nonce" --output-format json
res=$(jfield result)
check 3 "work -c -p continues the same session with 3 user turns (\"$res\")" \
  "exit $rc, session $(jfield session_id) (want $id), result '$res', stderr: $err" \
  eval '[ "$rc" = 0 ] && [ "$(jfield session_id)" = "$id" ] && [ "$res" = "mock reply: user turns=3" ]'
check 3 "the transcript is valid JSONL with all three prompts" "$(jsonl_valid "$tr" 2>&1)" \
  eval 'jsonl_valid "$tr" && grep -qF "hello again from work $nonce" "$tr"'

# ---------------------------------------------------------------- 4 ----------------------
say "step 4: the isolated solo tries to resume it"
before=$(size_of "$tr")
run_p solo --resume "$id" -p "hello from solo $nonce" --output-format json
show_cli
check 4 "solo does not continue the group's session (no 'user turns=4')" \
  "the CLI answered: $out" eval '! printf "%s" "$out" | grep -q "user turns=4"'
check 4 "solo's instance has no copy of the transcript, and solo's view has no such file" \
  "found $(find "$ccs/instances/solo" -name "$id.jsonl")" \
  eval 'not_in_instance solo "$id.jsonl" && [ ! -e "$mnt/solo/projects/$enc/$id.jsonl" ]'
check 4 "the group transcript is untouched ($before)" "now $(size_of "$tr")" \
  eval '[ "$(size_of "$tr")" = "$before" ] && ! grep -qF "hello from solo $nonce" "$tr"'

# ---------------------------------------------------------------- 5 ----------------------
say "step 5: an interactive work session holds $id; two more clients try to append"
# Evidence for step 6, taken while each interactive client lives: where its sessions/<pid>.json is.
sessions_seen=()
note_session_file() { # note_session_file PROFILE PID
  local found
  found=$(in_backing -path "*/sessions/$2.json" | sed "s|^$ccs/||" | tr '\n' ' ')
  sessions_seen+=("$1 pid $2: ${found:-no sessions/$2.json anywhere}")
  [ "$found" = "instances/$1/sessions/$2.json " ]
}
start_tui holder work --resume "$id"
w=20 # seconds to wait for the client; 1 once it is known not to run, to fail fast
wait_for 30 screen_has holder "for shortcuts" || {
  bad 5 "the interactive claude --resume starts" "no prompt after 30 s; screen: $(screen holder | grep -v '^\s*$' | tail -5 | tr '\n' '~')"
  w=1
}
tm send-keys -t holder "holder prompt one $nonce" Enter
wait_for "$w" screen_has holder "mock reply: user turns=4"
check 5 "the interactive holder gets its reply on screen (user turns=4)" \
  "screen: $(screen holder | grep -v '^\s*$' | tail -5 | tr '\n' '~')" \
  screen_has holder "mock reply: user turns=4"
saved_one() { grep -qF "holder prompt one $nonce" "$tr" && grep -qF "mock reply: user turns=4" "$tr"; }
wait_for "$w" saved_one
check 5 "the holder's turn is saved (prompt and reply in the transcript)" \
  "transcript: $(size_of "$tr")" saved_one
read -r holder_pid _ <<<"$(session_pid work "$id")"
sessions_ok=1
note_session_file work "${holder_pid:-none}" || sessions_ok=0
sleep 1 # let the holder finish its batch
held=$(size_of "$tr")
say "transcript while held by the interactive client (pid ${holder_pid:-?}): $held"
lock_held_by_holder() {
  "$ccsfs" --ccs-dir "$ccs" status "$mnt" --json | python3 -c '
import json, sys
locks = json.load(sys.stdin).get("locks", [])
sys.exit(not any(l.get("file", "").endswith(sys.argv[1] + ".jsonl") and l.get("profile") == "work"
                 and str(l.get("pid")) == sys.argv[2] for l in locks))' "$id" "$holder_pid"
}
check 5 "ccsfs status --json lists the lock as held by that client" \
  "status: $("$ccsfs" --ccs-dir "$ccs" status "$mnt" --json 2>&1 | tr -d '\n' | head -c 600)" \
  lock_held_by_holder
log_lines_before=$(wc -l <"$log")
for p in personal work; do
  say "claude --resume $id -p \"intruder from $p …\" (no --output-format) while the holder lives:"
  run_p "$p" --resume "$id" -p "intruder from $p $nonce"
  show_cli
  check 5 "the $p -p run did not append (transcript still $held, its prompt absent)" \
    "transcript now $(size_of "$tr")" \
    eval '[ "$(size_of "$tr")" = "$held" ] && ! grep -qF "intruder from $p $nonce" "$tr"'
  refusals=$(tail -n +"$((log_lines_before + 1))" "$log" |
    grep -F "refused write to projects/$enc/$id.jsonl by pid" | grep -F "($p): held by pid $holder_pid (work)")
  check 5 "ccsfs logged the refusal of $p ($(printf '%s' "$refusals" | grep -c .) line(s))" \
    "no 'refused write … ($p): held by pid $holder_pid (work)' line in $log" test -n "$refusals"
  printf '%s\n' "$refusals" | head -1 | quote
done
check 5 "the transcript is still valid JSONL and keeps the holder's prompt" \
  "$(jsonl_valid "$tr" 2>&1)" eval 'jsonl_valid "$tr" && grep -qF "holder prompt one $nonce" "$tr"'
tm send-keys -t holder "holder prompt two $nonce" Enter
saved_two() { screen_has holder "mock reply: user turns=5" && grep -qF "holder prompt two $nonce" "$tr"; }
wait_for "$w" saved_two
check 5 "the holder still saves its next turn (user turns=5 on screen, prompt in the file)" \
  "screen: $(screen holder | grep -v '^\s*$' | tail -4 | tr '\n' '~'); transcript $(size_of "$tr")" \
  saved_two
stop_tui holder
check 5 "after the holder exits the transcript is valid JSONL with both holder prompts and no intruder" \
  "$(jsonl_valid "$tr" 2>&1)" \
  eval 'jsonl_valid "$tr" && grep -qF "holder prompt two $nonce" "$tr" && ! grep -qF "intruder from" "$tr"'

# ---------------------------------------------------------------- 7 ----------------------
say "step 7: a fresh interactive session in personal"
start_tui fresh personal
w=20
wait_for 30 screen_has fresh "for shortcuts" || {
  bad 7 "the interactive claude starts" "no prompt after 30 s; screen: $(screen fresh | grep -v '^\s*$' | tail -5 | tr '\n' '~')"
  w=1
}
tm send-keys -t fresh "interactive prompt $nonce" Enter
wait_for "$w" screen_has fresh "mock reply: user turns=1"
check 7 "the reply shows on screen (user turns=1)" \
  "screen: $(screen fresh | grep -v '^\s*$' | tail -5 | tr '\n' '~')" \
  screen_has fresh "mock reply: user turns=1"
wait_for "$w" eval '[ -n "$(session_pid personal "*")" ]'
read -r fresh_pid fresh_id <<<"$(session_pid personal "*")"
note_session_file personal "${fresh_pid:-none}" || sessions_ok=0
ftr=$store/projects/$enc/${fresh_id:-none}.jsonl
wait_for "$w" grep -qF "interactive prompt $nonce" "$ftr"
check 7 "its transcript ${fresh_id:-?}.jsonl is in the group store with the prompt" \
  "found in: $(in_backing -type f | xargs -r grep -lF "interactive prompt $nonce" | tr '\n' ' ')" \
  grep -qF "interactive prompt $nonce" "$ftr"
# The prompt also goes to the private prompt history (history.jsonl), which is fine.
prompt_in_instances() { grep -rlF "interactive prompt $nonce" "$ccs/instances" | grep -v "^$ccs/instances/personal/history.jsonl\$"; }
check 7 "and no copy of it in an instance (only personal's private history.jsonl has the prompt)" \
  "found in: $(prompt_in_instances | tr '\n' ' ')" \
  eval '[ -z "$(prompt_in_instances)" ] && not_in_instance personal "${fresh_id:-none}.jsonl"'
stop_tui fresh
check 7 "after /exit it is valid JSONL with the prompt and the reply" "$(jsonl_valid "$ftr" 2>&1)" \
  eval 'jsonl_valid "$ftr" && grep -qF "mock reply: user turns=1" "$ftr"'

# ---------------------------------------------------------------- 8 ----------------------
say "step 8: unmount, mount again, resume"
tm kill-server >/dev/null 2>&1
umount_out=$("$ccsfs" --ccs-dir "$ccs" unmount "$mnt" 2>&1)
umount_rc=$?
check 8 "ccsfs unmount succeeds and the mount is gone" "exit $umount_rc: $umount_out" \
  eval '[ "$umount_rc" = 0 ] && ! is_mounted'
mount_out=$("$ccsfs" --ccs-dir "$ccs" mount "$mnt" 2>&1)
mount_rc=$?
check 8 "ccsfs mount succeeds again" "exit $mount_rc: $mount_out" eval '[ "$mount_rc" = 0 ] && is_mounted'
check 8 "the session is there again, identical through work and personal" \
  "missing or different: $(find "$mnt/personal/projects/$enc/" 2>&1 | tr '\n' ' ')" \
  eval 'cmp -s "$tr" "$mnt/work/projects/$enc/$id.jsonl" && cmp -s "$tr" "$mnt/personal/projects/$enc/$id.jsonl"'
before=$(size_of "$tr")
run_p personal --resume "$id" -p "after remount $nonce" --output-format json
res=$(jfield result)
# More than the 5 turns before the remount. Not always exactly 6: when /exit reaches the client
# while it is still saving a turn, it also saves the /exit command as user records (seen on a
# plain config dir too), and the mock counts those.
# shellcheck disable=SC2034 # used in the eval below
turns=$(printf '%s' "$res" | turns_of)
check 8 "personal --resume $id -p continues it, more than 5 user turns now (\"$res\")" \
  "exit $rc, session $(jfield session_id), result '$res', stderr: $err; user records: $(user_texts "$tr")" \
  eval '[ "$rc" = 0 ] && [ "$(jfield session_id)" = "$id" ] && [ "${turns:-0}" -ge 6 ]'
check 8 "the turn is saved (transcript was $before, now $(size_of "$tr")), valid JSONL" \
  "$(jsonl_valid "$tr" 2>&1)" \
  eval 'jsonl_valid "$tr" && grep -qF "after remount $nonce" "$tr"'

# ---------------------------------------------------------------- 9 ----------------------
say "step 9: with CCS: ccs work through the shim (mounting), ccs personal resumes, the lock holds"
# CCS runs claude with ANTHROPIC_* removed from the environment, so the route to the mock is
# in CCS's shared settings (~/.claude/settings.json, linked into each instance by ccs).
mkdir -p "$home/.claude"
printf '{"env": {"ANTHROPIC_BASE_URL": "http://127.0.0.1:%s", "ANTHROPIC_API_KEY": "%s"}}\n' \
  "$port" "$key" >"$home/.claude/settings.json"
shim=$("$ccsfs" --ccs-dir "$ccs" shim 2>"$T/shim.err")
check 9 "ccsfs shim prints an executable ($shim)" "exit $?, stderr: $(cat "$T/shim.err")" \
  eval '[ -n "$shim" ] && [ -x "$shim" ]'
# run_ccs PROFILE ARGS...: `ccs PROFILE ARGS...` in the project dir, claude through the shim.
run_ccs() {
  local p=$1
  shift
  out=$(cd "$proj" && timeout 120 "${client_env[@]}" CCS_DIR="$ccs" CCS_CLAUDE_PATH="$shim" \
    CCSFS_CLAUDE="$claude" "$ccs_bin" "$p" "$@" </dev/null 2>"$T/stderr")
  rc=$?
  err=$(cat "$T/stderr")
}
# mock_saw LAST TEXT...: the last request to the mock with LAST among its user turns had
# every TEXT among them, in order.
mock_saw() {
  python3 - "$T/mock.log" "$@" <<'EOF'
import json, sys
sel, want = sys.argv[2], sys.argv[3:]
last = None
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r.get("path", "").endswith("/v1/messages") and any(sel in t for t in r.get("user_texts", [])):
        last = r["user_texts"]
if last is None:
    sys.exit("no request with %r" % sel)
i = 0
for t in last:
    if i < len(want) and want[i] in t:
        i += 1
sys.exit(0 if i == len(want) else "the request had only %r" % last)
EOF
}
"$ccsfs" --ccs-dir "$ccs" unmount "$mnt" >/dev/null 2>&1
check 9 "the mount is down before ccs runs" "still mounted" eval '! is_mounted'
run_ccs work -p "ccs prompt one $nonce" --output-format json
cid=$(jfield session_id)
res=$(jfield result)
check 9 "ccs work -p through the shim exits 0 and answers (\"$res\")" \
  "exit $rc, result '$res', stdout: $out, stderr: $err" \
  eval '[ "$rc" = 0 ] && [ -n "$cid" ] && [ "$res" = "mock reply: user turns=1" ]'
check 9 "the shim mounted $mnt" "not mounted; stderr: $err" is_mounted
ctr=$store/projects/$enc/${cid:-none}.jsonl
check 9 "the session is in the group store: projects/$enc/${cid:-?}.jsonl" \
  "found: $(in_backing -name "${cid:-none}.jsonl" | tr '\n' ' ')" \
  eval 'in_store "${cid:-none}" && grep -qF "ccs prompt one $nonce" "$ctr"'
run_ccs personal --resume "${cid:-none}" -p "ccs prompt two $nonce" --output-format json
res=$(jfield result)
check 9 "ccs personal --resume <id> -p continues it (\"$res\", same session id)" \
  "exit $rc, session $(jfield session_id), result '$res', stderr: $err" \
  eval '[ "$rc" = 0 ] && [ "$(jfield session_id)" = "$cid" ] && [ "$res" = "mock reply: user turns=2" ]'
check 9 "the mock got the whole history from personal (work's prompt, then personal's)" \
  "$(mock_saw "ccs prompt two $nonce" "ccs prompt one $nonce" "ccs prompt two $nonce" 2>&1)" \
  mock_saw "ccs prompt two $nonce" "ccs prompt one $nonce" "ccs prompt two $nonce"
# The lock applies to `ccs` launches: an interactive work client holds the session.
start_tui cholder work --resume "${cid:-none}"
w=20
wait_for 30 screen_has cholder "for shortcuts" || {
  bad 9 "the interactive claude --resume starts" "no prompt after 30 s; screen: $(screen cholder | grep -v '^\s*$' | tail -5 | tr '\n' '~')"
  w=1
}
tm send-keys -t cholder "ccs holder prompt $nonce" Enter
saved_c() { grep -qF "ccs holder prompt $nonce" "$ctr" && grep -qF "mock reply: user turns=3" "$ctr"; }
wait_for "$w" saved_c
check 9 "the interactive work client saved its turn (user turns=3)" "transcript: $(size_of "$ctr")" saved_c
read -r cholder_pid _ <<<"$(session_pid work "${cid:-none}")"
sleep 1
cheld=$(size_of "$ctr")
log_lines_before=$(wc -l <"$log" 2>/dev/null || echo 0)
run_ccs personal --resume "${cid:-none}" -p "ccs intruder $nonce"
show_cli
check 9 "ccs personal --resume could not append while work holds it (still $cheld)" \
  "transcript now $(size_of "$ctr")" \
  eval '[ "$(size_of "$ctr")" = "$cheld" ] && ! grep -qF "ccs intruder $nonce" "$ctr"'
crefused=$(tail -n +"$((log_lines_before + 1))" "$log" 2>/dev/null |
  grep -F "refused write to projects/$enc/$cid.jsonl by pid" | grep -F "(personal): held by pid ${cholder_pid:-?} (work)")
check 9 "ccsfs logged the refusal of the ccs-launched claude" \
  "no 'refused write … (personal): held by pid ${cholder_pid:-?} (work)' line in $log" test -n "$crefused"
stop_tui cholder
check 9 "the transcript is valid JSONL without the intruder" "$(jsonl_valid "$ctr" 2>&1)" \
  eval 'jsonl_valid "$ctr" && ! grep -qF "ccs intruder" "$ctr"'

# ---------------------------------------------------------------- 10 ---------------------
say "step 10: claude saves settings.json through work (/model haiku); personal reads it"
settings_model() { python3 -c 'import json, sys; print(json.load(open(sys.argv[1])).get("model"))' "$1" 2>&1; }
start_tui setter work
w=20
wait_for 30 screen_has setter "for shortcuts" || {
  bad 10 "the interactive claude starts" "no prompt after 30 s; screen: $(screen setter | grep -v '^\s*$' | tail -5 | tr '\n' '~')"
  w=1
}
tm send-keys -t setter "/model haiku"
sleep 1 # let the command menu settle before Enter
tm send-keys -t setter Enter
wait_for "$w" eval '[ "$(settings_model "$mnt/work/settings.json")" = haiku ]'
check 10 "/model haiku saved settings.json through work" \
  "settings.json: $(cat "$mnt/work/settings.json" 2>&1 | tr '\n' ' '); screen: $(screen setter | grep -v '^\s*$' | tail -4 | tr '\n' '~')" \
  eval '[ "$(settings_model "$mnt/work/settings.json")" = haiku ]'
stop_tui setter
check 10 "personal reads the new settings.json (model haiku, the mock route kept)" \
  "personal's settings.json: $(cat "$mnt/personal/settings.json" 2>&1 | tr '\n' ' ')" \
  eval '[ "$(settings_model "$mnt/personal/settings.json")" = haiku ] && grep -qF "127.0.0.1:$port" "$mnt/personal/settings.json"'
check 10 "it is CCS's shared copy (~/.claude/settings.json), and each instance keeps CCS's link" \
  "shared: $(settings_model "$home/.claude/settings.json"); $(ls -l "$ccs/instances/work/settings.json" "$ccs/instances/personal/settings.json" 2>&1 | tr '\n' ' ')" \
  eval '[ "$(settings_model "$home/.claude/settings.json")" = haiku ] &&
    [ -L "$ccs/instances/work/settings.json" ] && [ -L "$ccs/instances/personal/settings.json" ]'
run_p personal -p "which model $nonce" --output-format json
model_of() { # the model of the last request to the mock that carried $1
  python3 - "$T/mock.log" "$1" <<'EOF'
import json, sys
m = None
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r.get("path", "").endswith("/v1/messages") and any(sys.argv[2] in t for t in r.get("user_texts", [])):
        m = r.get("model")
print(m)
EOF
}
pmodel=$(model_of "which model $nonce")
check 10 "a personal -p run asks the mock for the haiku model ($pmodel)" \
  "exit $rc, model $pmodel, stderr: $err" eval '[ "$rc" = 0 ] && printf "%s" "$pmodel" | grep -qi haiku'

# ---------------------------------------------------------------- 6 ----------------------
say "step 6: private files stayed private (checked last, after every client run and the remount)"
marker_of() { python3 -c 'import json, sys; print(json.load(open(sys.argv[1])).get("ccsfsE2eProfile"))' "$1" 2>&1; }
for p in $profiles; do
  inst=$ccs/instances/$p
  check 6 "$p: .credentials.json is byte-for-byte unchanged and still 0600 (also read through the mount)" \
    "mode $(stat -c %a "$inst/.credentials.json" 2>&1), cmp: $(cmp "$T/orig/$p.credentials.json" "$inst/.credentials.json" 2>&1)" \
    eval 'cmp -s "$T/orig/$p.credentials.json" "$inst/.credentials.json" &&
      [ "$(stat -c %a "$inst/.credentials.json")" = 600 ] &&
      cmp -s "$T/orig/$p.credentials.json" "$mnt/$p/.credentials.json"'
  check 6 "$p: .claude.json (rewritten by the client) is still its own and sessions/ is in the instance" \
    "marker: $(marker_of "$inst/.claude.json"), sessions: $(ls -ld "$inst/sessions" 2>&1)" \
    eval '[ "$(marker_of "$inst/.claude.json")" = "$p" ] && [ -d "$inst/sessions" ]'
  elsewhere=("$ccs/shared")
  for q in $profiles; do [ "$q" = "$p" ] || elsewhere+=("$ccs/instances/$q"); done
  leaks=$(grep -rlE "cred-$p-$nonce|\"ccsfsE2eProfile\": *\"$p\"" "${elsewhere[@]}" 2>/dev/null | tr '\n' ' ')
  check 6 "$p: its credentials and .claude.json appear in no other instance and not in the store" \
    "found in: $leaks" test -z "$leaks"
done
in_shared=$(find "$ccs/shared" \( -name .claude.json -o -name '.claude.json.*' -o -name sessions \
  -o -name .credentials.json \) -print 2>/dev/null | tr '\n' ' ')
check 6 "the group store holds no .claude.json, sessions/ or .credentials.json" "found: $in_shared" \
  test -z "$in_shared"
check 6 "each live interactive client's sessions/<pid>.json was in its own instance only" \
  "$(printf '%s; ' "${sessions_seen[@]}")" test "$sessions_ok" = 1
printf '%s\n' "${sessions_seen[@]}" | quote

summary
[ "$failed" = 0 ]
