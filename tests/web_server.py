"""A real threaded HTTP server on 127.0.0.1 serving tests/web_fixtures/site, plus the misbehaviour web sources meet.

Routes besides the static pages (whose `{{BASE}}` becomes this server's address):
  /redirect/N/<path>         N hops of 302 ending at /<path>          /redirect-loop       endless 302s
  /redirect-to?url=U         one 302 to an absolute URL U (e.g. to another address or scheme)
  /status/CODE               that status with a short HTML body        /slow?seconds=S      headers after S s
  /trickle?seconds=S         headers at once, then a byte every 0.2 s  /huge?bytes=N        N bytes, no length
  /huge-declared?bytes=N     Content-Length N, the body never sent     /file.pdf, /image.png  non-HTML types
Text responses carry an ETag and a Last-Modified date and answer 304 to a matching conditional request; they
are gzipped when the client accepts it. `edit(path)` swaps a page for its `.v2` version (an edited article).
"""

from __future__ import annotations

import gzip
import hashlib
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

SITE = Path(__file__).parent / "web_fixtures" / "site"
LAST_MODIFIED = "Sat, 14 Mar 2026 09:05:00 GMT"
DECLARED_CHARSET = {
    "/misc/cp1252-declared-utf8.html": "utf-8",  # the bytes are windows-1252
    "/misc/utf8-declared-latin1.html": "iso-8859-1",  # the bytes are UTF-8
}


def _content_type(path: str) -> str:
    if path.endswith("atom.xml"):
        return "application/atom+xml; charset=utf-8"
    if path.endswith(("rss.xml", "feed.xml")):
        return "application/rss+xml; charset=utf-8"
    if path.endswith(".xml"):
        return "application/xml; charset=utf-8"
    return f"text/html; charset={DECLARED_CHARSET.get(path, 'utf-8')}"


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # quiet test output
        pass

    def _send(self, status: int, body: bytes = b"", content_type: str = "text/html; charset=utf-8",
              headers: dict[str, str] | None = None) -> None:
        gzipped = False
        if body and "gzip" in self.headers.get("Accept-Encoding", "") and status == 200:
            body, gzipped = gzip.compress(body), True
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if gzipped:
            self.send_header("Content-Encoding", "gzip")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        with self.server.lock:  # counted before the reply goes out: a client may assert as soon as it has read it
            self.server.gzipped[self.path] += gzipped
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _redirect(self, location: str, status: int = 302) -> None:
        self._send(status, b"", headers={"Location": location})

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        path, query = url.path, parse_qs(url.query)
        with self.server.lock:
            self.server.hits[path] += 1
            self.server.agents.append(self.headers.get("User-Agent", ""))
        if path.startswith("/redirect/"):
            _, _, hops, *rest = path.split("/", 3)
            target = "/" + (rest[0] if rest else "")
            n = int(hops)
            return self._redirect(f"/redirect/{n - 1}{target}" if n > 1 else target)
        if path == "/redirect-loop":
            return self._redirect("/redirect-loop")
        if path == "/redirect-to":
            return self._redirect(query["url"][0])
        if path.startswith("/status/"):
            code = int(path.rsplit("/", 1)[1])
            return self._send(code, f"<html><body><h1>Error {code}</h1></body></html>".encode())
        if path == "/slow":
            with self.server.lock:
                self.server.in_flight += 1
                self.server.max_in_flight = max(self.server.max_in_flight, self.server.in_flight)
            try:
                time.sleep(float(query.get("seconds", ["5"])[0]))
            finally:
                with self.server.lock:
                    self.server.in_flight -= 1
            return self._send(200, b"<html><body><p>late</p></body></html>")
        if path == "/trickle":
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", "100000")
            self.end_headers()
            # a byte every 0.2 s: well inside any read timeout a test sets, so only the total timeout can end it
            for _ in range(int(float(query.get("seconds", ["5"])[0]) / 0.2)):
                try:
                    self.wfile.write(b"x")
                    self.wfile.flush()
                except OSError:
                    return
                time.sleep(0.2)
            return
        if path in ("/huge", "/huge-declared"):
            size = int(query.get("bytes", ["5000000"])[0])
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            if path == "/huge-declared":
                self.send_header("Content-Length", str(size))
                self.end_headers()
                return
            self.send_header("Connection", "close")
            self.end_headers()
            chunk = b"<p>" + b"filler " * 1400 + b"</p>\n"
            sent = 0
            try:
                while sent < size:
                    self.wfile.write(chunk)
                    sent += len(chunk)
            except OSError:
                pass
            self.close_connection = True
            return
        if path == "/file.pdf":
            return self._send(200, b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\n", "application/pdf")
        if path == "/image.png":
            return self._send(200, b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "image/png")
        return self._static(path)

    def _static(self, path: str) -> None:
        rel = path.lstrip("/")
        with self.server.lock:
            if self.server.versions.get(path):
                rel += ".v2" if "." not in Path(rel).name else ""
                rel = rel.replace(".html", ".v2.html") if rel.endswith(".html") else rel
        file = (SITE / rel).resolve()
        if not file.is_relative_to(SITE.resolve()) or not file.is_file():
            return self._send(404, b"<html><body><h1>Not found</h1></body></html>")
        body = file.read_bytes().replace(b"{{BASE}}", self.server.base.encode())
        etag = '"' + hashlib.sha1(body).hexdigest()[:16] + '"'
        modified = LAST_MODIFIED if etag == self.server.first_etag.setdefault(path, etag) else \
            "Mon, 16 Mar 2026 10:00:00 GMT"
        validators = {"ETag": etag, "Last-Modified": modified}
        if self.headers.get("If-None-Match") == etag or (
            "If-None-Match" not in self.headers and self.headers.get("If-Modified-Since") == modified
        ):
            with self.server.lock:
                self.server.not_modified[path] += 1
            self.send_response(304)
            for key, value in validators.items():
                self.send_header(key, value)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self._send(200, body, _content_type(path), validators)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, host: str) -> None:
        super().__init__((host, 0), _Handler)
        self.lock = threading.Lock()
        self.hits: Counter[str] = Counter()
        self.not_modified: Counter[str] = Counter()
        self.gzipped: Counter[str] = Counter()
        self.agents: list[str] = []
        self.versions: dict[str, bool] = {}
        self.first_etag: dict[str, str] = {}
        self.in_flight = 0
        self.max_in_flight = 0  # most /slow requests served at once
        self.base = f"http://{host}:{self.server_address[1]}"

    def handle_error(self, request: object, client_address: object) -> None:  # a client hanging up is normal here
        pass


class WebServer:
    """Start with `with WebServer() as web:`; `web.url("/ledger/rss.xml")` is an absolute URL on it."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self._server = _Server(host)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        return self._server.base

    @property
    def hits(self) -> Counter[str]:
        return self._server.hits

    @property
    def not_modified(self) -> Counter[str]:
        return self._server.not_modified

    @property
    def gzipped(self) -> Counter[str]:
        return self._server.gzipped

    @property
    def agents(self) -> list[str]:
        return self._server.agents

    @property
    def max_in_flight(self) -> int:
        return self._server.max_in_flight

    def url(self, path: str) -> str:
        return self.base + path

    def edit(self, path: str, edited: bool = True) -> None:
        """Serve the `.v2` version of a page from now on (its ETag and Last-Modified change with it)."""
        with self._server.lock:
            self._server.versions[path] = edited

    def __enter__(self) -> WebServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


if __name__ == "__main__":  # serve the fixtures by hand: python -m tests.web_server
    with WebServer() as web:
        print(web.base, flush=True)
        threading.Event().wait()
