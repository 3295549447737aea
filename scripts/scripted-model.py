#!/usr/bin/env python3
"""A stand-in for an OpenAI-compatible model provider, for the interop checks.

It speaks POST /v1/chat/completions with streamed (server-sent events) answers, as OpenAI's API
publishes it. What it answers is scripted by the last user message:
  - "read <file> and run <command>": one turn calling `read {path}` and `exec {command, shell}`;
  - "read <file>": one turn calling `read {path}`;
  - "run <command>": one turn calling `exec {command, shell}`;
  - once tool results are the last messages: "Tool results: <results joined by ' | '> Done.";
  - anything else: "Hello from the scripted model."
Tool calls stream the way the API does it: the call's id and name first, then its arguments in
pieces. Every request body is appended to the log file, one JSON document per line.

  scripts/scripted-model.py PORT LOG_FILE
"""
import json
import re
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = int(sys.argv[1])
LOG = sys.argv[2]


def plan(messages):
    trailing_results = []
    for m in reversed(messages):
        if m.get("role") != "tool":
            break
        trailing_results.insert(0, m.get("content") or "")
    if trailing_results:
        return "Tool results: " + " | ".join(trailing_results) + " Done.", []
    last_user = next((m for m in reversed(messages) if m.get("role") == "user"), {})
    text = last_user.get("content") or ""
    if isinstance(text, list):
        text = " ".join(p.get("text", "") for p in text if isinstance(p, dict))
    both = re.search(r"read (\S+) and run (.+)$", text)
    if both:
        return "Checking both.", [("read", {"path": both.group(1)}),
                                  ("exec", {"command": both.group(2).strip(), "shell": True})]
    one = re.search(r"read (\S+)", text)
    if one:
        return "", [("read", {"path": one.group(1)})]
    run = re.search(r"run (.+)$", text)
    if run:
        return "", [("exec", {"command": run.group(1).strip(), "shell": True})]
    return "Hello from the scripted model.", []


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
        with open(LOG, "a", encoding="utf-8") as log:
            log.write(json.dumps(body) + "\n")
        text, calls = plan(body.get("messages", []))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def send(data):
            event = f"data: {data}\n\n".encode()
            self.wfile.write(f"{len(event):x}\r\n".encode() + event + b"\r\n")
            self.wfile.flush()

        def chunk(delta, finish=None):
            return json.dumps({"id": "chatcmpl-scripted", "object": "chat.completion.chunk",
                               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})

        send(chunk({"role": "assistant", "content": ""}))
        for word in re.findall(r"\S+\s*", text):
            send(chunk({"content": word}))
        for i, (name, args) in enumerate(calls):
            send(chunk({"tool_calls": [{"index": i, "id": f"call_scripted_{i}", "type": "function",
                                        "function": {"name": name, "arguments": ""}}]}))
            arguments = json.dumps(args)
            for start in range(0, len(arguments), 7):
                send(chunk({"tool_calls": [{"index": i, "function": {"arguments": arguments[start:start + 7]}}]}))
        send(chunk({}, "tool_calls" if calls else "stop"))
        send(json.dumps({"choices": [], "usage": {"prompt_tokens": 40, "completion_tokens": 8, "total_tokens": 48}}))
        send("[DONE]")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


class Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        # A client that closes its kept-alive connection is not an error of the script.
        if not isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            super().handle_error(request, client_address)


Server(("127.0.0.1", PORT), Handler).serve_forever()
