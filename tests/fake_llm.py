"""A real HTTP server on 127.0.0.1 speaking the OpenAI chat-completions protocol, with scripted replies.

This is the only fake in the suite: it stands in for a hosted LLM at its network boundary.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Reply:
    """One scripted reply: text, or an HTTP error status, or garbage, optionally after a delay."""

    content: str = ""
    status: int = 200
    delay: float = 0.0
    garbage: bool = False
    word_delay: float = 0.0  # a pause between streamed words (a slow model)
    trickle: float = 0.0  # send the whole HTTP response a byte at a time, this many seconds apart


class FakeLLM:
    """Serves /v1/chat/completions (streamed or not) from a queue of Replies; records every request."""

    def __init__(self) -> None:
        self.replies: deque[Reply] = deque()
        self.requests: list[dict] = []
        self.abandoned = 0  # streamed replies whose reader closed the connection before the end
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: object) -> None:
                pass

            def do_POST(self) -> None:  # http.server's naming
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
                fake.requests.append({"path": self.path, "body": body, "auth": self.headers.get("authorization")})
                reply = fake.replies.popleft() if fake.replies else Reply("The articles don't say.")
                if reply.delay:
                    time.sleep(reply.delay)
                try:
                    fake.respond(self, body, reply)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout, or stopped reading)
                    fake.abandoned += 1

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def respond(self, handler: BaseHTTPRequestHandler, body: dict, reply: Reply) -> None:
        if reply.status != 200:
            self._send(handler, reply.status, "application/json", json.dumps({"error": {"message": "boom"}}).encode())
            return
        if reply.garbage:
            self._send(handler, 200, "application/json", b"<html>not json</html>")
            return
        model = body.get("model", "fake")
        if reply.trickle:
            self._trickle(handler, body, reply)
            return
        if body.get("stream"):
            handler.send_response(200)
            handler.send_header("content-type", "text/event-stream")
            handler.end_headers()
            words = reply.content.split(" ")
            for i, word in enumerate(words):
                delta = {"content": word + (" " if i < len(words) - 1 else "")}
                chunk = {"id": "c1", "object": "chat.completion.chunk", "created": 0, "model": model,
                         "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
                handler.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                handler.wfile.flush()
                if reply.word_delay:
                    time.sleep(reply.word_delay)
            end = {"id": "c1", "object": "chat.completion.chunk", "created": 0, "model": model,
                   "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
            handler.wfile.write(f"data: {json.dumps(end)}\n\ndata: [DONE]\n\n".encode())
            return
        payload = {
            "id": "c1", "object": "chat.completion", "created": 0, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": reply.content},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
        self._send(handler, 200, "application/json", json.dumps(payload).encode())

    @staticmethod
    def _trickle(handler: BaseHTTPRequestHandler, body: dict, reply: Reply) -> None:
        """A model that never goes silent for long but never finishes: head and body a byte at a time."""
        payload = json.dumps({"id": "c1", "object": "chat.completion", "created": 0, "model": body.get("model"),
                              "choices": [{"index": 0, "message": {"role": "assistant", "content": reply.content},
                                           "finish_reason": "stop"}]}).encode()
        raw = (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
               + str(len(payload)).encode() + b"\r\n\r\n" + payload)
        for i in range(len(raw)):
            handler.wfile.write(raw[i:i + 1])
            handler.wfile.flush()
            time.sleep(reply.trickle)

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, status: int, ctype: str, data: bytes) -> None:
        handler.send_response(status)
        handler.send_header("content-type", ctype)
        handler.send_header("content-length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def __enter__(self) -> FakeLLM:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
