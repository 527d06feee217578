#!/usr/bin/env python3
"""A loopback mock of the Anthropic Messages API, enough for the `claude` CLI to run offline.

POST /v1/messages answers (streamed as server-sent events when asked) with one text block that
says how much history it received: "mock reply: user turns=N", where N counts the user turns
with text in the request. A resumed session therefore proves that its history arrived.
A prompt containing "mock:todo" is answered first with a TodoWrite tool call (so that the
client writes its todos/ dir), then, once the tool result comes back, with the text reply.
count_tokens and every other endpoint answer with small JSON. A request whose API key (the
x-api-key header, or Authorization: Bearer) is one given with --quota-key is refused as an
account over its quota would be: HTTP 429, a `rate_limit_error` body, `retry-after` and the
`anthropic-ratelimit-unified-*` headers naming the reset time (--reset-in seconds from now). Each request is appended as one
JSON line to the log file given by --log (for the tests to inspect): its path, model, the number
of user turns and their texts (each cut at 200 characters).

Usage: mock-anthropic.py --port-file FILE [--log FILE] [--quota-key KEY]... [--reset-in SECONDS]
(binds 127.0.0.1 on a free port)
"""
import argparse
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()


def user_turns(body):
    n = 0
    for m in body.get("messages", []):
        if m.get("role") != "user":
            continue
        c = m.get("content")
        if isinstance(c, str):
            n += 1
        elif isinstance(c, list) and any(b.get("type") == "text" for b in c if isinstance(b, dict)):
            if not all(b.get("type") == "tool_result" for b in c if isinstance(b, dict)):
                n += 1
    return n


def user_texts(body):
    """The text of each user turn, in order (what the tests grep for a whole history)."""
    out = []
    for m in body.get("messages", []):
        if m.get("role") != "user":
            continue
        c = m.get("content")
        if isinstance(c, str):
            out.append(c[:200])
        elif isinstance(c, list):
            out += [b.get("text", "")[:200] for b in c if isinstance(b, dict) and b.get("type") == "text"]
    return out


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    log_path = None
    quota_keys = frozenset()
    reset_in = 3600

    def log_message(self, *args):
        pass

    def send_json(self, obj, status=200):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def send_quota_error(self):
        reset = int(time.time()) + self.reset_in
        data = json.dumps({"type": "error", "error": {
            "type": "rate_limit_error",
            "message": "This request would exceed your account's rate limit. Please try again later."}}).encode()
        self.send_response(429)
        self.send_header("content-type", "application/json")
        self.send_header("retry-after", str(self.reset_in))
        self.send_header("anthropic-ratelimit-unified-status", "rejected")
        self.send_header("anthropic-ratelimit-unified-reset", str(reset))
        self.send_header("anthropic-ratelimit-unified-representative-claim", "five_hour")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.send_json({})

    def do_HEAD(self):
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def do_POST(self):
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {}
        path = self.path.split("?")[0]
        key = self.headers.get("x-api-key") or ""
        auth = self.headers.get("authorization") or ""
        if not key and auth.lower().startswith("bearer "):
            key = auth[7:].strip()
        over = key in self.quota_keys and path.endswith("/v1/messages")
        if self.log_path:
            with LOCK, open(self.log_path, "a") as f:
                f.write(json.dumps({"path": path, "user_turns": user_turns(body),
                                    "model": body.get("model"), "stream": body.get("stream"),
                                    "key_tail": key[-6:], "status": 429 if over else 200,
                                    "user_texts": user_texts(body)}) + "\n")
        if over:
            return self.send_quota_error()
        if path.endswith("/count_tokens"):
            return self.send_json({"input_tokens": 1})
        if not path.endswith("/v1/messages"):
            return self.send_json({})
        text = "mock reply: user turns=%d" % user_turns(body)
        tool = None
        users = [m for m in body.get("messages", []) if m.get("role") == "user"] or [{}]
        last_content = users[-1].get("content")
        last_text = last_content if isinstance(last_content, str) else " ".join(
            b.get("text", "") for b in (last_content or []) if isinstance(b, dict) and b.get("type") == "text")
        if "mock:todo" in last_text:
            tool = {"type": "tool_use", "id": "toolu_" + uuid.uuid4().hex[:20], "name": "TodoWrite",
                    "input": {"todos": [{"content": "check the mount", "status": "in_progress",
                                         "activeForm": "Checking the mount"}]}}
        msg_id = "msg_" + uuid.uuid4().hex[:24]
        model = body.get("model") or "claude-mock"
        usage = {"input_tokens": 10, "output_tokens": 5,
                 "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
        stop = "tool_use" if tool else "end_turn"
        if not body.get("stream"):
            return self.send_json({"id": msg_id, "type": "message", "role": "assistant", "model": model,
                                   "content": [tool or {"type": "text", "text": text}],
                                   "stop_reason": stop, "stop_sequence": None, "usage": usage})
        if tool:
            block = [("content_block_start", {"type": "content_block_start", "index": 0,
                                              "content_block": dict(tool, input={})}),
                     ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                              "delta": {"type": "input_json_delta",
                                                        "partial_json": json.dumps(tool["input"])}})]
        else:
            block = [("content_block_start", {"type": "content_block_start", "index": 0,
                                              "content_block": {"type": "text", "text": ""}}),
                     ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                              "delta": {"type": "text_delta", "text": text}})]
        events = [
            ("message_start", {"type": "message_start", "message": {
                "id": msg_id, "type": "message", "role": "assistant", "model": model, "content": [],
                "stop_reason": None, "stop_sequence": None, "usage": usage}}),
            *block,
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            ("message_delta", {"type": "message_delta",
                               "delta": {"stop_reason": stop, "stop_sequence": None},
                               "usage": {"output_tokens": 5}}),
            ("message_stop", {"type": "message_stop"}),
        ]
        payload = "".join("event: %s\ndata: %s\n\n" % (name, json.dumps(data)) for name, data in events).encode()
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--log")
    ap.add_argument("--quota-key", action="append", default=[])
    ap.add_argument("--reset-in", type=int, default=3600)
    args = ap.parse_args()
    Handler.log_path = args.log
    Handler.quota_keys = frozenset(args.quota_key)
    Handler.reset_in = args.reset_in
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    with open(args.port_file, "w") as f:
        f.write(str(server.server_address[1]))
    server.serve_forever()


if __name__ == "__main__":
    main()
