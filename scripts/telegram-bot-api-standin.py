#!/usr/bin/env python3
"""A stand-in for Telegram's Bot API server, for the tests: Telegram's servers cannot be reached
from here. It follows the published Bot API (https://core.telegram.org/bots/api) for what the
Clawgate adapter uses: every method at /bot<token>/<method>, JSON or form parameters, answers
{"ok": true, "result": ...} or {"ok": false, "error_code": N, "description": "..."}; getMe;
getUpdates with offset (confirming the updates below it), limit and a long-poll timeout;
sendMessage (1 to 4096 characters of text); editMessageText. It serves HTTPS with the certificate
it is given, as the real API is only reached over HTTPS.

What a test does on the other side (not part of the Bot API):
  POST /_test/message   {"chat": {...}, "from": {...}, "text": "..."}: a person writes; queued
                        as an update.
  GET  /_test/sent      what the bot sent and edited, in order.
  GET  /_test/offsets   the offsets getUpdates was called with, in order.
  POST /_test/fail      {"method": "sendMessage", "count": N, "code": 429}: the next N calls of the
                        method fail with that code (429 with retry_after 1).

    telegram-bot-api-standin.py --port P --token T --cert CERT --key KEY
"""
import argparse
import json
import ssl
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_TEXT = 4096


class Bot:
    def __init__(self, token):
        self.token = token
        self.lock = threading.Condition()
        self.updates = []  # unconfirmed updates, oldest first
        self.next_update_id = 1000
        self.next_message_id = 1
        self.sent = []
        self.offsets = []
        self.failures = {}

    def me(self):
        return {"id": 7000001, "is_bot": True, "first_name": "Clawgate", "username": "clawgate_test_bot"}

    def enqueue(self, message):
        with self.lock:
            message = dict(message)
            message.setdefault("message_id", self.next_message_id)
            message.setdefault("date", int(time.time()))
            self.next_message_id += 1
            self.updates.append({"update_id": self.next_update_id, "message": message})
            self.next_update_id += 1
            self.lock.notify_all()
            return self.next_update_id - 1

    def get_updates(self, params):
        offset = params.get("offset")
        timeout = min(int(params.get("timeout", 0) or 0), 50)
        limit = max(1, min(int(params.get("limit", 100) or 100), 100))
        with self.lock:
            self.offsets.append(offset)
            if offset is not None:
                offset = int(offset)
                # Confirmed: everything below the offset is forgotten, as Telegram does.
                self.updates = [u for u in self.updates if u["update_id"] >= offset]
            deadline = time.time() + timeout
            while not self.updates and time.time() < deadline:
                self.lock.wait(deadline - time.time())
            return self.updates[:limit]

    def send_message(self, params):
        text = params.get("text")
        if not isinstance(text, str) or not text.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        if len(text) > MAX_TEXT:
            raise ApiError(400, "Bad Request: message is too long")
        chat_id = params.get("chat_id")
        if chat_id is None:
            raise ApiError(400, "Bad Request: chat_id is empty")
        with self.lock:
            message = {"message_id": self.next_message_id, "date": int(time.time()),
                       "chat": {"id": chat_id, "type": "private"}, "text": text,
                       "from": self.me()}
            self.next_message_id += 1
            self.sent.append({"method": "sendMessage", "chat_id": chat_id, "text": text,
                              "message_id": message["message_id"]})
            return message

    def edit_message_text(self, params):
        text = params.get("text")
        if not isinstance(text, str) or not text.strip() or len(text) > MAX_TEXT:
            raise ApiError(400, "Bad Request: text must be 1-4096 characters")
        with self.lock:
            target = next((s for s in self.sent if s.get("message_id") == params.get("message_id")
                           and s.get("chat_id") == params.get("chat_id")), None)
            if target is None:
                raise ApiError(400, "Bad Request: message to edit not found")
            if target["text"] == text:
                raise ApiError(400, "Bad Request: message is not modified")
            target["text"] = text
            self.sent.append({"method": "editMessageText", "chat_id": params.get("chat_id"),
                              "message_id": params.get("message_id"), "text": text})
            return {"message_id": params.get("message_id"), "chat": {"id": params.get("chat_id")},
                    "text": text}


class ApiError(Exception):
    def __init__(self, code, description, retry_after=None):
        super().__init__(description)
        self.code = code
        self.description = description
        self.retry_after = retry_after


def handler_for(bot):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def reply(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def params(self):
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))
            kind = self.headers.get("Content-Type", "")
            if raw and kind.startswith("application/json"):
                query.update(json.loads(raw))
            elif raw:
                query.update(dict(urllib.parse.parse_qsl(raw.decode())))
            return query

        def do_GET(self):
            self.route()

        def do_POST(self):
            self.route()

        def route(self):
            path = urllib.parse.urlsplit(self.path).path
            try:
                params = self.params()
            except (ValueError, json.JSONDecodeError):
                return self.reply(400, {"ok": False, "error_code": 400, "description": "Bad Request: can't parse JSON"})
            if path.startswith("/_test/"):
                return self.test_route(path, params)
            prefix = "/bot" + bot.token + "/"
            if not path.startswith(prefix):
                return self.reply(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
            method = path[len(prefix):]
            try:
                failing = bot.failures.get(method)
                if failing and failing["count"] > 0:
                    failing["count"] -= 1
                    code = failing["code"]
                    if code == 429:
                        raise ApiError(429, "Too Many Requests: retry after 1", retry_after=1)
                    raise ApiError(code, "Internal Server Error")
                if method == "getMe":
                    result = bot.me()
                elif method == "getUpdates":
                    result = bot.get_updates(params)
                elif method == "sendMessage":
                    result = bot.send_message(params)
                elif method == "editMessageText":
                    result = bot.edit_message_text(params)
                else:
                    raise ApiError(404, "Not Found")
                self.reply(200, {"ok": True, "result": result})
            except ApiError as e:
                body = {"ok": False, "error_code": e.code, "description": e.description}
                if e.retry_after is not None:
                    body["parameters"] = {"retry_after": e.retry_after}
                self.reply(e.code, body)

        def test_route(self, path, params):
            if path == "/_test/message":
                update_id = bot.enqueue(params)
                return self.reply(200, {"update_id": update_id})
            if path == "/_test/sent":
                with bot.lock:
                    return self.reply(200, list(bot.sent))
            if path == "/_test/offsets":
                with bot.lock:
                    return self.reply(200, list(bot.offsets))
            if path == "/_test/fail":
                bot.failures[params["method"]] = {"count": int(params.get("count", 1)),
                                                  "code": int(params.get("code", 500))}
                return self.reply(200, {"ok": True})
            self.reply(404, {"error": "unknown test route"})

    return Handler


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), handler_for(Bot(args.token)))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.cert, args.key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
