#!/usr/bin/env bash
# e2e-failover.sh - end-to-end check of `ccsfs run --failover` (issue #15) with the real Claude
# Code client, fully offline.
#
# Usage: scripts/e2e-failover.sh        (as root or as an ordinary user; no arguments)
#
# Sets up a temporary CCS dir with `work`, `personal` and `spare` (group fo, profile-local),
# each with its own subscription credentials (an OAuth token the client takes offline), the
# isolated `solo`, and `kwork`, `kpersonal` (group fk, profile-local) that authenticate with
# an API key from an `apiKeyHelper` in their own settings.json. The loopback mock of the
# Messages API (scripts/mock-anthropic.py) answers work's token and kwork's key as accounts over
# their quota: HTTP 429 with the reset time in its headers, which the client turns into
# "You've hit your session limit · resets 5:05am (UTC)" (subscription) or "API Error: Request
# rejected (429) …" (API key, no reset time). Then, through the mount:
#   1. headless: `ccsfs run work --failover personal,spare -- claude -p q1 --output-format json`
#      with bytes on stdin: exit 0, one JSON answer from personal with the session id of the
#      failed attempt (one transcript only), the same stdin bytes in the retried turn, the
#      takeover line on stderr, the transcript holds q1, the 429 record, q1 again, the reply;
#      `ccsfs status` (and --json: cooling_until = the reset time) shows work cooling down
#   2. `claude -c -p` under personal, then under work (still cooling, no failover), sees the
#      whole history (the mock logs the texts of a request even when it answers 429)
#   6. (with step 2's work run) a run without failover on a cooling profile says so on stderr
#      and runs the command
#   3. interactive under tmux: `ccsfs run work --failover personal -- claude`, a prompt: the
#      terminal shows the takeover line, then the reply from personal; one transcript with the
#      prompt, the 429 record and the reply; /exit ends ccsfs run with claude's status
#   5. a chain profile outside work's group (`--failover solo`, `--failover kpersonal`) is
#      refused with one line naming the group, and nothing runs (the mock sees no request)
#  10. any other failure is not failed over: claude refusing an unknown option, or a command
#      exiting 3, ends the run with that status and output, and cools nobody down
#   7. `failover: [work, personal]` in <ccs>/ccsfs/config.yaml: work fails over without the
#      flag; `--no-failover` gives claude's own 429 answer and exit status 1
#   8. the API-key variant: kwork fails over to kpersonal; no reset time in the message, so
#      kwork cools down for the default 60 min; with `failover: {order: …, cooldown_minutes: 5}`
#      the order applies without the flag and the cooldown is 5 min
#   4. the mock restarted refusing work and personal, TZ=Europe/Paris and a reset more than a
#      day away ("resets Dec 5, 4:08am (Europe/Paris)"): `--failover personal,spare` goes on
#      twice (two takeover lines) to spare; run again, it skips the cooling personal (the mock
#      sees no request from it); with the cool-downs forgotten, `--failover personal` is all
#      over quota: exit 1, one line with `cooling down` and `first resets at`, stdout = the
#      last run's JSON only; status shows both cooling down until their reset
#  11. a reset after midnight but within 24 h, which claude names without a date ("resets
#      12:20am (Asia/Tokyo)", TZ=Asia/Tokyo): the cool-down ends tomorrow, not today
#   9. the daemon log has no EBUSY or refused line: the lock never got in the way
# Every check prints `ok <step> <what>` or `FAIL <step> <what>: <why>`; the last line is
# `e2e-failover: N passed, N failed`. Exit status 1 if anything failed (setup problems count
# as a failure of step 0).
#
# Needs: python3, tmux (installed with apt-get when missing and running as root), FUSE 3
# (fusermount3 for an ordinary user), node and npm unless the claude binary is given.
#
# Environment (all optional):
#   CCSFS             ccsfs binary to test; default: `cargo build --release` in this repo. The
#                     script runs a copy of it (the file may be rebuilt during the run)
#   CLAUDE_BIN        claude binary; else `claude` on PATH; else the npm cache dir below,
#                     where `npm install --prefix DIR @anthropic-ai/claude-code` runs when
#                     DIR/node_modules/.bin/claude is missing
#   CCSFS_E2E_CACHE   that cache dir; default ${XDG_CACHE_HOME:-$HOME/.cache}/ccsfs-e2e
#   CCSFS_E2E_KEEP=1  keep the temp dir (CCS dir, logs, mock log, terminal log) for inspection
#
# Writes nothing outside a temp dir under ${TMPDIR:-/tmp} except the npm cache dir: the
# claude processes get HOME, TMPDIR and XDG dirs inside the temp dir, tmux its own socket.
# Everything (tmux, mock, mount, temp dir) is cleaned up on exit, also on failure.

# The checks are single-quoted strings that `eval` expands when they run:
# shellcheck disable=SC2016
set -uo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
E2E_NAME=e2e-failover
# shellcheck source=scripts/e2e-lib.sh
. "$repo/scripts/e2e-lib.sh"
oneline() { tr '\n' '~' | cut -c1-"${1:-600}"; }

# ---------------------------------------------------------------- prerequisites ---------

e2e_prerequisites
find_ccsfs
ccsfs_src=$ccsfs_bin
npm_client CLAUDE_BIN claude @anthropic-ai/claude-code
claude=$client
[ -x "$claude" ] || setup_fail "claude binary $claude is not executable"

# ---------------------------------------------------------------- temp world -------------

T=$(mktemp -d "${TMPDIR:-/tmp}/ccsfs-fo.XXXXXX") || setup_fail "mktemp failed"
T=$(cd "$T" && pwd -P)
ccs=$T/ccs mnt=$T/ccs/mnt proj=$T/proj home=$T/home sock=$T/tmux.sock
mkdir -p "$mnt" "$proj" "$home" "$T/tmp" "$T/bin" "$ccs/ccsfs"
# A copy: the binary under test may be rebuilt while this runs.
ccsfs=$T/bin/ccsfs
cp "$ccsfs_src" "$ccsfs" || setup_fail "cannot copy $ccsfs_src"
log=$ccs/logs/ccsfs.log
cooling=$ccs/ccsfs/cooling.json
settings=$ccs/ccsfs/config.yaml
mock_pid=

say "ccsfs:  $ccsfs_src (run as a copy: $ccsfs)"
say "claude: $claude ($("$claude" --version 2>/dev/null </dev/null | head -1))"
say "user:   $(id -un) (uid $(id -u))"

e2e_cleanup_on_exit

group=fo
store=$ccs/shared/context-groups/$group
enc=$(printf '%s' "$proj" | sed 's/[^a-zA-Z0-9]/-/g') # Claude's project dir name for the cwd
sdir=$store/projects/$enc                              # the group's transcripts of the cwd
kdir=$ccs/shared/context-groups/fk/projects/$enc
nonce=$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
reset_in=7200 # the mock's reset time for an account over quota, seconds from now

# Subscription tokens end with the profile name: the mock logs the last 6 characters.
token() { echo "sk-ant-oat01-ccsfs-fo-oauth-token-$1"; }
apikey() { echo "sk-ant-api03-ccsfs-fo-0123456789-key-$1"; }
tail6() { local k=$1; echo "${k: -6}"; }

if ! { "$ccsfs" --ccs-dir "$ccs" profile add work --group fo --profile-local &&
  "$ccsfs" --ccs-dir "$ccs" profile add personal --group fo --profile-local &&
  "$ccsfs" --ccs-dir "$ccs" profile add spare --group fo --profile-local &&
  "$ccsfs" --ccs-dir "$ccs" profile add solo &&
  "$ccsfs" --ccs-dir "$ccs" profile add kwork --group fk --profile-local &&
  "$ccsfs" --ccs-dir "$ccs" profile add kpersonal --group fk --profile-local; } >"$T/profiles.out" 2>&1; then
  setup_fail "ccsfs profile add failed: $(cat "$T/profiles.out")"
fi

for p in work personal spare solo kwork kpersonal; do
  inst=$ccs/instances/$p
  mkdir -p "$inst"
  approved=
  case $p in
  k*)
    # API key from the profile's own settings.json; the interactive client asks about a key
    # unless its last 20 characters are approved.
    k=$(apikey "$p")
    printf '{"apiKeyHelper": "echo %s"}\n' "$k" >"$inst/settings.json"
    approved="\"${k: -20}\""
    ;;
  *)
    # Subscription credentials: with these (and no ANTHROPIC_API_KEY) a 429 reads "You've hit
    # your session limit · resets <time>".
    printf '{"claudeAiOauth":{"accessToken":"%s","refreshToken":"sk-ant-ort01-ccsfs-fo-refresh-%s","expiresAt":4102444800000,"scopes":["user:inference","user:profile"],"subscriptionType":"max"}}\n' \
      "$(token "$p")" "$p" >"$inst/.credentials.json"
    chmod 600 "$inst/.credentials.json"
    ;;
  esac
  cat >"$inst/.claude.json" <<EOF
{"hasCompletedOnboarding": true, "theme": "dark",
 "customApiKeyResponses": {"approved": [$approved], "rejected": []},
 "projects": {"$proj": {"hasTrustDialogAccepted": true, "allowedTools": []}}}
EOF
done

# start_mock [ARGS...]: (re)starts the mock with these --quota-key/--reset-in arguments; one
# log for all its runs.
start_mock() {
  if [ -n "$mock_pid" ]; then
    kill "$mock_pid" 2>/dev/null
    wait "$mock_pid" 2>/dev/null
  fi
  rm -f "$T/mock.port"
  python3 "$repo/scripts/mock-anthropic.py" --port-file "$T/mock.port" --log "$T/mock.log" "$@" \
    >"$T/mock.out" 2>&1 &
  mock_pid=$!
  wait_for 10 test -s "$T/mock.port" || setup_fail "the mock did not start: $(cat "$T/mock.out")"
  port=$(cat "$T/mock.port")
}
start_mock --quota-key "$(token work)" --quota-key "$(apikey kwork)" --reset-in "$reset_in"
touch "$T/mock.log"

"$ccsfs" --ccs-dir "$ccs" mount "$mnt" >"$T/mount.out" 2>&1 ||
  setup_fail "ccsfs mount failed: $(cat "$T/mount.out")"
say "mounted $mnt (ccs dir $ccs, mock on 127.0.0.1:$port, cwd $proj)"

# The client's environment: offline against the mock, HOME and XDG dirs inside the temp dir,
# no API key (the subscription credentials or the apiKeyHelper authenticate), times in UTC.
client_env() {
  cenv=(env -u ANTHROPIC_API_KEY -u ANTHROPIC_AUTH_TOKEN -u ANTHROPIC_MODEL
    -u CLAUDE_CODE_USE_BEDROCK -u CLAUDE_CODE_USE_VERTEX -u CLAUDE_CODE_OAUTH_TOKEN -u TMUX
    -u CLAUDE_CONFIG_DIR -u CCS_DIR -u CCS_HOME
    HOME="$home" TMPDIR="$T/tmp" XDG_CONFIG_HOME="$home/.config" XDG_CACHE_HOME="$home/.cache"
    XDG_DATA_HOME="$home/.local/share" XDG_STATE_HOME="$home/.local/state"
    ANTHROPIC_BASE_URL="http://127.0.0.1:$port" TZ=UTC
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 DISABLE_AUTOUPDATER=1)
}
# fo_run ARGS...: `ccsfs run ARGS...` in the project dir, stdin from $stdin_file (default
# /dev/null), extra environment from the array extra_env; sets out, err, rc.
stdin_file=/dev/null
extra_env=()
fo_run() {
  client_env
  out=$(cd "$proj" && timeout 120 "${cenv[@]}" "${extra_env[@]}" "$ccsfs" --ccs-dir "$ccs" run "$@" \
    <"$stdin_file" 2>"$T/stderr")
  rc=$?
  err=$(cat "$T/stderr")
}
# one_json: $out is exactly one JSON object (one non-empty line).
one_json() { printf '%s' "$out" | python3 -c '
import json, sys
lines = [l for l in sys.stdin.read().splitlines() if l.strip()]
sys.exit(0 if len(lines) == 1 and isinstance(json.loads(lines[0]), dict) else 1)' 2>/dev/null; }
lines_of() { printf '%s' "$1" | grep -c .; }
# takeover FROM TO ID: stderr has the takeover line, with claude's message in parentheses.
takeover() { printf '%s\n' "$err" | grep -qE "^ccsfs: $1 hit its limit \(.+\); $2 takes over session $3\$"; }
# transcripts DIR: the transcript names (session ids) in DIR, sorted.
transcripts() { find "$1" -maxdepth 1 -name '*.jsonl' -printf '%f\n' 2>/dev/null | sed 's/\.jsonl$//' | sort; }
new_transcripts() { comm -13 <(printf '%s\n' "$1" | grep .) <(transcripts "$2"); }
# mock_req [N]: the Nth last /v1/messages request to the mock (default 1) as one JSON line.
mock_req() {
  python3 - "$T/mock.log" "${1:-1}" <<'EOF'
import json, sys
reqs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
reqs = [r for r in reqs if r.get("path", "").endswith("/v1/messages")]
n = int(sys.argv[2])
print(json.dumps(reqs[-n]) if len(reqs) >= n else "{}")
EOF
}
# req_is JSON TAIL STATUS TEXT...: the request was made with the key ending TAIL, answered
# STATUS, and carried every TEXT in its user texts, in this order.
req_is() {
  python3 - "$@" <<'EOF'
import json, sys
r = json.loads(sys.argv[1])
tail, status, want = sys.argv[2], int(sys.argv[3]), sys.argv[4:]
texts, pos = "\0".join(r.get("user_texts", [])), 0
for w in want:
    i = texts.find(w, pos)
    if i < 0:
        sys.exit(1)
    pos = i + len(w)
sys.exit(0 if r.get("key_tail") == tail and r.get("status") == status else 1)
EOF
}
# last_text_has JSON TEXT...: the last user text of the request has every TEXT (claude -p
# appends its stdin to the prompt).
last_text_has() {
  python3 - "$@" <<'EOF'
import json, sys
texts = json.loads(sys.argv[1]).get("user_texts") or [""]
sys.exit(0 if all(w in texts[-1] for w in sys.argv[2:]) else 1)
EOF
}
req_brief() { # what a request from mock_req was, for failure messages
  printf '%s' "$1" | python3 -c '
import json, sys
r = json.loads(sys.stdin.read() or "{}")
print("key ...%s, status %s, user texts %s" % (r.get("key_tail"), r.get("status"),
      [t[:60] for t in r.get("user_texts", []) if not t.startswith("<system-reminder>")]))'
}
mock_lines() { wc -l <"$T/mock.log"; }
# turns FILE PROMPT: checks that the transcript has the user PROMPT exactly twice (as a
# non-meta user record: the refused turn and the retried one), an assistant 429 error record
# before the second, and an assistant "mock reply" after it. (The interactive client may save
# the refused turn's prompt after its error record.) Prints the records it saw, in file order.
turns() {
  python3 - "$1" "$2" <<'EOF'
import json, sys
seen = []
try:
    lines = open(sys.argv[1], "rb").read().splitlines()
except OSError as e:
    print("cannot read it: %s" % e.strerror)
    sys.exit(1)
prompt = sys.argv[2]
def text(r):
    c = (r.get("message") or {}).get("content")
    if isinstance(c, str):
        return c
    return " ".join(b.get("text", "") for b in c or [] if isinstance(b, dict) and b.get("type") == "text")
for line in lines:
    try:
        r = json.loads(line)
    except ValueError:
        seen.append("<bad line>")
        continue
    t = text(r)
    if r.get("type") == "user" and not r.get("isMeta") and prompt in t:
        seen.append("prompt")
    elif r.get("type") == "assistant" and r.get("isApiErrorMessage") and r.get("apiErrorStatus") == 429:
        seen.append("429:" + t[:70])
    elif r.get("type") == "assistant" and t.startswith("mock reply"):
        seen.append("reply:" + t)
kinds = [s.split(":")[0] for s in seen]
ok = kinds.count("prompt") == 2
if ok:
    second = len(kinds) - 1 - kinds[::-1].index("prompt")
    ok = "429" in kinds[:second] and "reply" in kinds[second:]
print(" | ".join(seen) or "(no prompt, error or reply records)")
sys.exit(0 if ok else 1)
EOF
}
# status_json: `ccsfs status --json` into $T/status.json; cooling_until PROFILE prints that
# profile's cooling_until ("null" when null, "absent" without the key).
status_json() { "$ccsfs" --ccs-dir "$ccs" status --json >"$T/status.json" 2>"$T/status.err"; }
cooling_until() {
  python3 - "$T/status.json" "$1" <<'EOF'
import json, sys
try:
    d = json.load(open(sys.argv[1]))
except Exception:
    print("unreadable")
    sys.exit()
for p in d.get("profiles", []):
    if p.get("name") == sys.argv[2]:
        print(json.dumps(p["cooling_until"]) if "cooling_until" in p else "absent")
        break
else:
    print("no such profile")
EOF
}
# near VALUE TARGET: VALUE is a number within 120 s of TARGET.
near() { [[ $1 =~ ^[0-9]+(\.[0-9]+)?$ ]] && [ "$(printf '%.0f' "$1")" -ge $(($2 - 120)) ] && [ "$(printf '%.0f' "$1")" -le $(($2 + 120)) ]; }
at() { date -u -d "@$(printf '%.0f' "$1" 2>/dev/null || echo 0)" +%H:%M:%SZ 2>/dev/null; }
status_text() { "$ccsfs" --ccs-dir "$ccs" status 2>&1; }
# cooling_line PROFILE: the line of `ccsfs status` that says PROFILE is cooling down.
cooling_line() { status_text | grep -w -- "$1" | grep -F "cooling down until"; }
log_bad() { grep -iE 'EBUSY|refused|busy' "$log" 2>/dev/null; }

# ---------------------------------------------------------------- 1 ----------------------
say "step 1: headless, work is over its quota: ccsfs run work --failover personal,spare -- claude -p …"
q1="failover question one $nonce"
printf 'stdin payload %s\n' "$nonce" >"$T/stdin1"
before=$(transcripts "$sdir")
stdin_file=$T/stdin1
t1=$(date +%s)
fo_run work --failover personal,spare -- "$claude" -p "$q1" --output-format json
stdin_file=/dev/null
show_cli
id=$(jfield session_id)
res=$(jfield result)
check 1 "exit 0 and one JSON answer on stdout, not an error (\"$res\")" \
  "exit $rc, is_error $(jfield is_error), $(lines_of "$out") stdout line(s)" \
  eval '[ "$rc" = 0 ] && one_json && [ "$(jfield is_error)" = false ] && [[ $res == "mock reply: user turns="* ]]'
new=$(new_transcripts "$before" "$sdir")
check 1 "exactly one new transcript in the group store, named by the answer's session id ($id)" \
  "new transcripts: $(printf '%s' "$new" | tr '\n' ' '), session id '$id'" \
  eval '[ -n "$id" ] && [ "$new" = "$id" ]'
tr=$sdir/$id.jsonl
[ -n "$id" ] || tr=$sdir/$(printf '%s\n' "$new" | head -1).jsonl
first=$(python3 - "$T/mock.log" "$q1" <<'EOF'
import json, sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    if r.get("path", "").endswith("/v1/messages") and any(sys.argv[2] in t for t in r["user_texts"]):
        print(json.dumps(r))
        break
EOF
)
[ -n "$first" ] || first='{}'
check 1 "the first attempt went to the mock with work's token and got 429" \
  "first request with q1: $(req_brief "$first")" \
  req_is "$first" "$(tail6 "$(token work)")" 429 "$q1"
last=$(mock_req)
check 1 "the mock's last request carried personal's token and the history: q1, then q1 retried" \
  "last request: $(req_brief "$last")" \
  req_is "$last" "$(tail6 "$(token personal)")" 200 "$q1" "$q1"
check 1 "…and the retried turn had the same stdin bytes (claude -p appends them to the prompt)" \
  "last request: $(req_brief "$last")" last_text_has "$last" "$q1" "stdin payload $nonce"
check 1 "stderr has the takeover line (ccsfs: work hit its limit (…); personal takes over session $id)" \
  "stderr: $(printf '%s' "$err" | oneline)" takeover work personal "$id"
check 1 "…and it quotes claude's message (\"You've hit your session limit · resets …\")" \
  "stderr: $(printf '%s' "$err" | oneline)" \
  eval 'printf "%s\n" "$err" | grep -qF "work hit its limit (You'"'"'ve hit your session limit · resets "'
check 1 "stderr is that one line" "stderr: $(printf '%s' "$err" | oneline)" \
  eval '[ "$(lines_of "$err")" = 1 ]'
seen=$(turns "$tr" "$q1")
check 1 "the transcript holds q1, the 429 error record, q1 again, the mock's reply ($seen)" \
  "records: $seen" turns "$tr" "$q1"
check 1 "the transcript is valid JSONL" "$(jsonl_valid "$tr" 2>&1)" jsonl_valid "$tr"
# cwds FILE: the distinct working dirs its records were written in.
cwds() { python3 -c '
import json, sys
print(" ".join(sorted({json.loads(l).get("cwd") for l in open(sys.argv[1]) if l.strip()} - {None})))' "$1" 2>&1; }
check 1 "both attempts ran in the same working dir (every record's cwd is $proj)" \
  "cwds: $(cwds "$tr")" eval '[ "$(cwds "$tr")" = "$proj" ]'
status_json
cu=$(cooling_until work)
check 1 "ccsfs status --json: work's cooling_until is the reset time, now+${reset_in}s ±2 min ($cu, $(at "$cu"))" \
  "work's cooling_until $cu, want ≈ $((t1 + reset_in)) ($(at $((t1 + reset_in)))); status: $(oneline 400 <"$T/status.err")" \
  near "$cu" $((t1 + reset_in))
check 1 "…personal's and spare's cooling_until are null" \
  "personal $(cooling_until personal), spare $(cooling_until spare)" \
  eval '[ "$(cooling_until personal)" = null ] && [ "$(cooling_until spare)" = null ]'
check 1 "ccsfs status shows work cooling down ($(cooling_line work | sed 's/^ *//'))" \
  "status: $(status_text | oneline 800)" eval '[ -n "$(cooling_line work)" ]'
check 1 "…and neither personal nor spare" "$(cooling_line personal)$(cooling_line spare)" \
  eval '[ -z "$(cooling_line personal)$(cooling_line spare)" ]'
check 1 "the cooling state is in <ccs>/ccsfs/cooling.json" "in $ccs/ccsfs: $(find "$ccs/ccsfs" -mindepth 1 -printf '%f ' 2>&1)" \
  test -s "$cooling"

# ---------------------------------------------------------------- 2 + 6 ------------------
say "step 2: claude -c under personal, then under work, sees the whole history"
q2="failover question two $nonce"
fo_run personal -- "$claude" -c -p "$q2" --output-format json
last=$(mock_req)
check 2 "personal -c -p continues session $id and answers (\"$(jfield result)\")" \
  "exit $rc, session $(jfield session_id), result '$(jfield result)', stderr: $(printf '%s' "$err" | oneline)" \
  eval '[ "$rc" = 0 ] && [ "$(jfield session_id)" = "$id" ] && [ "$(jfield is_error)" = false ]'
check 2 "the mock got q1 and q2 from personal" "last request: $(req_brief "$last")" \
  req_is "$last" "$(tail6 "$(token personal)")" 200 "$q1" "$q2"
say "step 6: work is cooling down; ccsfs run work without failover says so and runs claude"
q3="failover question three $nonce"
n_before=$(mock_lines)
fo_run work -- "$claude" -c -p "$q3" --output-format json
show_cli
last=$(mock_req)
check 6 "stderr has one line saying work is cooling down" "stderr: $(printf '%s' "$err" | oneline)" \
  eval '[ "$(printf "%s\n" "$err" | grep -c "cooling down")" = 1 ] && printf "%s\n" "$err" | grep -F "cooling down" | grep -qw work'
check 6 "the command ran anyway: the mock got a request with work's token" \
  "$(($(mock_lines) - n_before)) new mock request(s); last: $(req_brief "$last")" \
  req_is "$last" "$(tail6 "$(token work)")" 429 "$q3"
check 6 "and its outcome is claude's own: exit 1, api_error_status 429, no takeover" \
  "exit $rc, api_error_status $(jfield api_error_status), stderr: $(printf '%s' "$err" | oneline)" \
  eval '[ "$rc" = 1 ] && [ "$(jfield api_error_status)" = 429 ] && ! printf "%s" "$err" | grep -q "takes over"'
check 2 "under work too the request carried the whole history (q1, q2, q3) in session $id" \
  "last request: $(req_brief "$last"); session $(jfield session_id)" \
  eval 'req_is "$last" "$(tail6 "$(token work)")" 429 "$q1" "$q2" "$q3" && [ "$(jfield session_id)" = "$id" ]'
check 2 "still one transcript in the store, valid JSONL with q1, q2, q3" \
  "transcripts: $(transcripts "$sdir" | tr '\n' ' '); $(jsonl_valid "$tr" 2>&1)" \
  eval '[ "$(transcripts "$sdir")" = "$id" ] && jsonl_valid "$tr" && grep -qF "$q2" "$tr" && grep -qF "$q3" "$tr"'

# ---------------------------------------------------------------- 3 ----------------------
say "step 3: interactive under tmux: ccsfs run work --failover personal -- claude"
rm -f "$cooling"
before=$(transcripts "$sdir")
client_env
{
  echo "cd '$proj' || exit 1"
  printf '%q ' "${cenv[@]}" "$ccsfs" --ccs-dir "$ccs" run work --failover personal -- "$claude"
  echo
  echo 'echo "EXITED rc=$?"'
  echo 'sleep 120'
} >"$T/tui.sh"
tm new-session -d -s tui -x 200 -y 50 "bash '$T/tui.sh'"
# Everything written to the terminal, in order (the screen alone may be redrawn).
tm pipe-pane -t tui -o "cat >>'$T/tui.out'"
screen() { tm capture-pane -p -J -S -300 -t tui 2>/dev/null; }
screen_has() { screen | grep -qF -- "$1"; }
tail_screen() { screen | grep -v '^\s*$' | tail -"${1:-8}" | oneline 1200; }
w=40
wait_for 30 screen_has "for shortcuts" || {
  bad 3 "the interactive claude starts" "no prompt after 30 s; screen: $(tail_screen)"
  w=1
}
qi="interactive failover prompt $nonce"
tm send-keys -t tui "$qi" Enter
wait_for "$w" screen_has "mock reply: user turns="
say "screen after the prompt:"
screen | grep -v '^\s*$' | tail -25 | quote
check 3 "the terminal shows the takeover line (ccsfs: work hit its limit (…); personal takes over session …)" \
  "screen: $(tail_screen 12)" eval 'grep -aqE "ccsfs: work hit its limit \(.+\); personal takes over session [0-9a-f-]{36}" "$T/tui.out"'
# The offsets in the terminal's output of the takeover line and of the mock's reply. The
# terminal log (pipe-pane) may lag the screen a little: asked again for up to 5 s.
reply_order() {
  order=$(python3 - "$T/tui.out" <<'EOF'
import re, sys
# The client moves the cursor instead of writing some spaces ("reply:\x1b[15Guser") and
# colours with ':' parameters: every CSI or OSC sequence counts as a space.
data = open(sys.argv[1], "rb").read()
data = re.sub(rb"\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)", b" ", data)
data = re.sub(rb"\x1b\[[0-9;:?<=>]*[ -/]*[@-~]", b" ", data)
m = re.search(rb"ccsfs: work hit its limit \(.+?\); personal takes over session", data)
r = re.compile(rb"mock\s*reply:\s*user\s*turns=").search(data, m.end()) if m else None
print("takeover at byte %s, reply after it at %s" % (m.start() if m else "none", r.start() if r else "none"))
sys.exit(0 if m and r else 1)
EOF
  )
}
# Claude draws by changing only the cells that differ, so its raw output need not hold the
# reply's text in one piece; then the screen (with its scrollback) shows the order.
screen_order() {
  order=$(screen | python3 -c '
import re, sys
data = sys.stdin.read()
m = re.search(r"ccsfs: work hit its limit \(.+?\); personal takes over session", data)
r = re.compile(r"mock reply: user turns=").search(data, m.end()) if m else None
print("on the screen: takeover at char %s, reply after it at %s" % (m.start() if m else "none", r.start() if r else "none"))
sys.exit(0 if m and r else 1)')
}
wait_for 5 reply_order || screen_order
check 3 "…and then the mock's reply ($order)" "$order; screen: $(tail_screen 12)" \
  eval 'printf "%s" "$order" | grep -q "reply after it at [0-9]"'
new=$(new_transcripts "$before" "$sdir")
iid=$(printf '%s\n' "$new" | head -1)
itr=$sdir/$iid.jsonl
[ -n "$iid" ] && wait_for 10 turns "$itr" "$qi" >/dev/null
check 3 "one new transcript in the group store ($(printf '%s' "$new" | tr '\n' ' '))" \
  "new transcripts: $(printf '%s' "$new" | tr '\n' ' ')" eval '[ -n "$new" ] && [ "$(lines_of "$new")" = 1 ]'
check 3 "the takeover line names that session" "screen: $(tail_screen 12)" \
  eval '[ -n "$iid" ] && grep -aqF "personal takes over session $iid" "$T/tui.out"'
seen=$(turns "$itr" "$qi")
check 3 "it holds the prompt, the 429 error record, the retried prompt and the reply ($seen)" \
  "records: $seen" turns "$itr" "$qi"
last=$(mock_req)
check 3 "the reply came from personal (the mock's last request)" "last request: $(req_brief "$last")" \
  req_is "$last" "$(tail6 "$(token personal)")" 200 "$qi"
tm send-keys -t tui "/exit" Enter
wait_for 20 screen_has "EXITED rc="
check 3 "/exit ends claude and ccsfs run with its status 0 (EXITED rc=0)" "screen: $(tail_screen 6)" \
  screen_has "EXITED rc=0"
check 3 "the transcript is valid JSONL" "$(jsonl_valid "$itr" 2>&1)" jsonl_valid "$itr"
tm kill-session -t tui 2>/dev/null
status_json
check 3 "work is cooling down afterwards (cooling_until $(cooling_until work))" \
  "work $(cooling_until work)" near "$(cooling_until work)" $(($(date +%s) + reset_in))

# ---------------------------------------------------------------- 5 ----------------------
say "step 5: a chain profile outside work's group is refused, nothing runs"
for other in solo kpersonal; do
  n_before=$(mock_lines)
  fo_run work --failover "$other" -- "$claude" -p "refused chain $other $nonce" --output-format json
  show_cli
  check 5 "--failover $other: exit 1, one stderr line 'ccsfs: …' with 'not in' and the group fo" \
    "exit $rc, stderr: $(printf '%s' "$err" | oneline)" \
    eval '[ "$rc" = 1 ] && [ "$(lines_of "$err")" = 1 ] && [[ $err == "ccsfs: "* ]] &&
      [[ $err == *"not in"* ]] && printf "%s" "$err" | grep -qw fo'
  sleep 0.5
  check 5 "--failover $other: nothing ran (no mock request, empty stdout)" \
    "$(($(mock_lines) - n_before)) mock request(s), stdout: $out" \
    eval '[ "$(mock_lines)" = "$n_before" ] && [ -z "$out" ]'
done

# ---------------------------------------------------------------- 10 ---------------------
say "step 10: any other failure ends the run as the command ended it"
n_before=$(mock_lines)
fo_run personal --failover spare -- "$claude" -p "other failure $nonce" --no-such-flag-ccsfs
show_cli
check 10 "claude refusing an unknown option: its own exit status 1 and message, no takeover, no request" \
  "exit $rc, $(($(mock_lines) - n_before)) mock request(s), stderr: $(printf '%s' "$err" | oneline)" \
  eval '[ "$rc" = 1 ] && [[ $err == *"no-such-flag-ccsfs"* ]] && [[ $err != *"takes over"* ]] &&
    [ "$(mock_lines)" = "$n_before" ]'
fo_run personal --failover spare -- sh -c 'echo "plain output"; echo "plain error" >&2; exit 3'
check 10 "a command exiting 3: exit 3, its stdout and stderr as they were" \
  "exit $rc, stdout: $out, stderr: $(printf '%s' "$err" | oneline)" \
  eval '[ "$rc" = 3 ] && [ "$out" = "plain output" ] && [ "$err" = "plain error" ]'
status_json
check 10 "neither made personal or spare cool down" \
  "personal $(cooling_until personal), spare $(cooling_until spare)" \
  eval '[ "$(cooling_until personal)" = null ] && [ "$(cooling_until spare)" = null ]'

# ---------------------------------------------------------------- 7 ----------------------
say "step 7: failover: [work, personal] in <ccs>/ccsfs/config.yaml"
rm -f "$cooling"
printf 'failover: [work, personal]\n' >"$settings"
q7="settings order question $nonce"
fo_run work -- "$claude" -p "$q7" --output-format json
show_cli
last=$(mock_req)
check 7 "ccsfs run work (no flag) fails over: exit 0, answer from personal" \
  "exit $rc, is_error $(jfield is_error); last request: $(req_brief "$last")" \
  eval '[ "$rc" = 0 ] && one_json && [ "$(jfield is_error)" = false ] &&
    req_is "$last" "$(tail6 "$(token personal)")" 200 "$q7"'
check 7 "stderr has the takeover line" "stderr: $(printf '%s' "$err" | oneline)" \
  takeover work personal "$(jfield session_id)"
rm -f "$cooling"
q7b="no failover question $nonce"
fo_run work --no-failover -- "$claude" -p "$q7b" --output-format json
show_cli
last=$(mock_req)
check 7 "--no-failover: exit 1 with claude's own 429 answer, no takeover" \
  "exit $rc, api_error_status $(jfield api_error_status), stderr: $(printf '%s' "$err" | oneline)" \
  eval '[ "$rc" = 1 ] && one_json && [ "$(jfield api_error_status)" = 429 ] &&
    [[ "$(jfield result)" == *"hit your session limit"* ]] && ! printf "%s" "$err" | grep -q "takes over"'
check 7 "--no-failover: the last request was work's" "last request: $(req_brief "$last")" \
  req_is "$last" "$(tail6 "$(token work)")" 429 "$q7b"
rm -f "$settings"

# ---------------------------------------------------------------- 8 ----------------------
say "step 8: API keys from an apiKeyHelper: kwork fails over to kpersonal"
rm -f "$cooling"
q8="api key question $nonce"
kbefore=$(transcripts "$kdir")
t8=$(date +%s)
fo_run kwork --failover kpersonal -- "$claude" -p "$q8" --output-format json
show_cli
kid=$(jfield session_id)
last=$(mock_req)
check 8 "exit 0, one JSON answer from kpersonal's key" \
  "exit $rc, is_error $(jfield is_error); last request: $(req_brief "$last")" \
  eval '[ "$rc" = 0 ] && one_json && [ "$(jfield is_error)" = false ] &&
    req_is "$last" "$(tail6 "$(apikey kpersonal)")" 200 "$q8"'
check 8 "stderr: ccsfs: kwork hit its limit (API Error: Request rejected (429) …); kpersonal takes over session $kid" \
  "stderr: $(printf '%s' "$err" | oneline)" \
  eval 'takeover kwork kpersonal "$kid" && printf "%s" "$err" | grep -qF "kwork hit its limit (API Error: Request rejected (429)"'
knew=$(new_transcripts "$kbefore" "$kdir")
check 8 "one new transcript in group fk's store, the answer's session, with every turn" \
  "new: $(printf '%s' "$knew" | tr '\n' ' '); records: $(turns "$kdir/$kid.jsonl" "$q8")" \
  eval '[ -n "$kid" ] && [ "$knew" = "$kid" ] && turns "$kdir/$kid.jsonl" "$q8" >/dev/null'
status_json
cu=$(cooling_until kwork)
check 8 "no reset time in the message: kwork cools down for the default 60 min ($cu, $(at "$cu"))" \
  "kwork's cooling_until $cu, want ≈ $((t8 + 3600)) ($(at $((t8 + 3600))))" near "$cu" $((t8 + 3600))
rm -f "$cooling"
printf 'failover:\n  order: [kwork, kpersonal]\n  cooldown_minutes: 5\n' >"$settings"
q8b="api key cooldown question $nonce"
t8=$(date +%s)
fo_run kwork -- "$claude" -p "$q8b" --output-format json
show_cli
last=$(mock_req)
check 8 "with failover: {order: [kwork, kpersonal], cooldown_minutes: 5}: no flag, kpersonal answers" \
  "exit $rc; last request: $(req_brief "$last"); stderr: $(printf '%s' "$err" | oneline)" \
  eval '[ "$rc" = 0 ] && req_is "$last" "$(tail6 "$(apikey kpersonal)")" 200 "$q8b" && takeover kwork kpersonal "$(jfield session_id)"'
status_json
cu=$(cooling_until kwork)
check 8 "…and kwork cools down for 5 min ($cu, $(at "$cu"))" \
  "kwork's cooling_until $cu, want ≈ $((t8 + 300)) ($(at $((t8 + 300))))" near "$cu" $((t8 + 300))
rm -f "$settings"

# ---------------------------------------------------------------- 4 ----------------------
say "step 4: work and personal both over quota, resets more than a day away (TZ=Europe/Paris)"
reset4=100000
start_mock --quota-key "$(token work)" --quota-key "$(token personal)" --reset-in "$reset4"
rm -f "$cooling"
extra_env=(TZ=Europe/Paris)
say "a chain of three: work, then personal, are refused; spare answers"
q4a="chain of three question $nonce"
fo_run work --failover personal,spare -- "$claude" -p "$q4a" --output-format json
show_cli
# shellcheck disable=SC2034 # used in the eval below
sid=$(jfield session_id)
check 4 "exit 0, one JSON answer from spare, after work and personal got 429" \
  "exit $rc, is_error $(jfield is_error); requests: $(req_brief "$(mock_req 3)"); $(req_brief "$(mock_req 2)"); $(req_brief "$(mock_req)")" \
  eval '[ "$rc" = 0 ] && one_json && [ "$(jfield is_error)" = false ] &&
    req_is "$(mock_req 3)" "$(tail6 "$(token work)")" 429 "$q4a" &&
    req_is "$(mock_req 2)" "$(tail6 "$(token personal)")" 429 "$q4a" &&
    req_is "$(mock_req)" "$(tail6 "$(token spare)")" 200 "$q4a"'
check 4 "stderr: work's takeover line (to personal), then personal's (to spare), same session" \
  "stderr: $(printf '%s' "$err" | oneline)" \
  eval 'takeover work personal "$sid" && takeover personal spare "$sid" && [ "$(lines_of "$err")" = 2 ]'
say "again, with work and personal cooling down: personal is skipped"
q4b="skip the cooling one $nonce"
n_before=$(mock_lines)
fo_run work --failover personal,spare -- "$claude" -p "$q4b" --output-format json
show_cli
skipped() { # no request with personal's token since line $n_before of the mock log
  ! tail -n +"$((n_before + 1))" "$T/mock.log" | grep -qF "\"key_tail\": \"$(tail6 "$(token personal)")\""
}
check 4 "exit 0, the answer from spare, and no request at all with personal's token" \
  "exit $rc, is_error $(jfield is_error); last request: $(req_brief "$(mock_req)"); $(tail -n +"$((n_before + 1))" "$T/mock.log" | grep -c .) new mock request(s)" \
  eval '[ "$rc" = 0 ] && [ "$(jfield is_error)" = false ] &&
    req_is "$(mock_req)" "$(tail6 "$(token spare)")" 200 "$q4b" && skipped'
say "all over quota: work and personal, the cool-downs forgotten"
rm -f "$cooling"
q4="all over quota question $nonce"
t4=$(date +%s)
fo_run work --failover personal -- "$claude" -p "$q4" --output-format json
extra_env=()
show_cli
last=$(mock_req)
prev=$(mock_req 2)
check 4 "exit 1 and one stderr line with 'cooling down' and 'first resets at'" \
  "exit $rc, stderr: $(printf '%s' "$err" | oneline)" \
  eval '[ "$rc" = 1 ] && [ "$(printf "%s\n" "$err" | grep -F "cooling down" | grep -cF "first resets at")" = 1 ]'
check 4 "both were tried: work (429), then personal (429)" \
  "requests: $(req_brief "$prev"); then $(req_brief "$last")" \
  eval 'req_is "$prev" "$(tail6 "$(token work)")" 429 "$q4" && req_is "$last" "$(tail6 "$(token personal)")" 429 "$q4"'
check 4 "stdout is the last run's output only: one JSON, api_error_status 429, \"resets Dec …, …(Europe/Paris)\"" \
  "$(lines_of "$out") line(s), result '$(jfield result)'" \
  eval 'one_json && [ "$(jfield api_error_status)" = 429 ] && [[ "$(jfield result)" == *"resets "*"(Europe/Paris)"* ]]'
status_json
cw=$(cooling_until work) cp=$(cooling_until personal)
check 4 "ccsfs status --json: both cool down until their reset, now+${reset4}s ±2 min (work $cw, personal $cp)" \
  "work $cw ($(at "$cw")), personal $cp ($(at "$cp")), want ≈ $((t4 + reset4)) ($(date -u -d "@$((t4 + reset4))"))" \
  eval 'near "$cw" $((t4 + reset4)) && near "$cp" $((t4 + reset4))'
check 4 "ccsfs status shows both cooling down" "status: $(status_text | oneline 800)" \
  eval '[ -n "$(cooling_line work)" ] && [ -n "$(cooling_line personal)" ]'
say "ccsfs status:"
status_text | quote

# ---------------------------------------------------------------- 11 ---------------------
say "step 11: a reset tomorrow but within 24 h: claude names the time only (TZ=Asia/Tokyo)"
# Just after the next midnight in Tokyo (by half the time since the last one, at most 30 min):
# claude then writes "resets 12:20am (Asia/Tokyo)", no date, and it means tomorrow.
reset11=$(python3 -c '
import datetime, time, zoneinfo
tz = zoneinfo.ZoneInfo("Asia/Tokyo")
now = datetime.datetime.now(tz)
midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
since = (now - midnight).total_seconds()
nxt = (midnight + datetime.timedelta(days=1)).timestamp()
print(int(nxt + min(1800, since / 2) - time.time()))')
start_mock --quota-key "$(token work)" --reset-in "$reset11"
rm -f "$cooling"
q11="tomorrow question $nonce"
extra_env=(TZ=Asia/Tokyo)
t11=$(date +%s)
fo_run work --failover spare -- "$claude" -p "$q11" --output-format json
extra_env=()
show_cli
check 11 "spare takes over: exit 0, and the takeover line quotes a reset time without a date" \
  "exit $rc, stderr: $(printf '%s' "$err" | oneline)" \
  eval '[ "$rc" = 0 ] && takeover work spare "$(jfield session_id)" &&
    printf "%s" "$err" | grep -qE "resets [0-9]{1,2}(:[0-9]{2})?[ap]m \(Asia/Tokyo\)"'
status_json
cu=$(cooling_until work)
check 11 "work's cooling_until is tomorrow's reset, now+${reset11}s ±2 min ($cu, $(at "$cu"))" \
  "work's cooling_until $cu ($(at "$cu")), want ≈ $((t11 + reset11)) ($(at $((t11 + reset11))))" \
  near "$cu" $((t11 + reset11))

# ---------------------------------------------------------------- 9 ----------------------
say "step 9: the lock never got in the way"
check 9 "the daemon log has no EBUSY, busy or refused line" "$(log_bad | head -5 | oneline)" \
  eval '[ -f "$log" ] && [ -z "$(log_bad)" ]'

summary
[ "$failed" = 0 ]
