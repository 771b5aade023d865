"""Fetch web pages for ingestion safely: timeouts, a size cap, checked redirects and no requests to private hosts.

SSRF safety is hand-written because httpx has no hook that validates the address it connects to: every hop's
host is resolved once here, every address it resolves to must be public (unless private hosts are allowed), and
the request is sent to that checked IP (Host header and TLS SNI / certificate check still use the name), so a
DNS answer that changes between the check and the connect (rebinding) cannot redirect the request.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import Message

import httpx

from qa.errors import QAError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[IPAddress]]
AddressCheck = Callable[[IPAddress], bool]

USER_AGENT = "news-qa/0.1 (article fetcher for a question-answering service)"
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_:.-]+)""", re.I)
_XML_ENCODING = re.compile(rb"""^\s*<\?xml[^>]+encoding\s*=\s*["']([A-Za-z0-9_.-]+)""")


class FetchRefused(QAError):
    """A URL the service will not fetch: not http(s), or its host is a private/loopback/reserved address."""

    status_code = 403


class FetchFailed(QAError):
    """A URL that could not be fetched or gave nothing usable (network error, HTTP error, too large, wrong type)."""

    status_code = 422


class InvalidUrl(FetchFailed):
    """Text that is not a URL at all (no scheme or host, or unparseable): malformed input, refused with 400 before
    anything is fetched, since no retry or network can make it work."""

    status_code = 400


@dataclass(frozen=True)
class FetchPolicy:
    """Limits every fetch obeys (filled from QA_* settings by the service)."""

    max_bytes: int = 2_000_000
    allow_private: bool = False
    connect_timeout: float = 5.0
    read_timeout: float = 15.0
    total_timeout: float = 30.0
    max_redirects: int = 5
    per_host: int = 2
    user_agent: str = USER_AGENT


@dataclass(frozen=True)
class Fetched:
    """One fetched resource: the body (None when the server answered 304 Not Modified) and its validators."""

    url: str
    final_url: str
    status: int
    content_type: str
    charset: str | None
    body: bytes | None
    etag: str | None = None
    last_modified: str | None = None
    redirects: tuple[str, ...] = field(default=())

    @property
    def not_modified(self) -> bool:
        return self.status == 304

    def text(self) -> str:
        """The body decoded (declared charset checked against the bytes, see decode_body)."""
        return decode_body(self.body or b"", self.charset)[0]


def public_address(ip: IPAddress) -> bool:
    """True for a globally routable unicast address; loopback, private, link-local, multicast, reserved,
    unspecified and shared (CGNAT) addresses are not, nor are IPv6 forms that embed one of them."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is not None and not public_address(embedded):
            return False
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_unspecified or ip.is_loopback)


def system_resolver(host: str, port: int) -> list[IPAddress]:
    """Every address the system resolver gives for host (A and AAAA)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen: list[IPAddress] = []
    for *_, sockaddr in infos:
        ip = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if ip not in seen:
            seen.append(ip)
    return seen


def _charset_of(content_type: str) -> tuple[str, str | None]:
    message = Message()
    message["content-type"] = content_type or "application/octet-stream"
    charset = message.get_param("charset")
    return message.get_content_type(), (str(charset).strip().lower() if isinstance(charset, str) else None)


def decode_body(body: bytes, declared: str | None) -> tuple[str, str]:
    """Bytes to text: strict UTF-8 when the bytes are valid UTF-8 (a wrongly declared latin-1 page is the common
    mistake, and non-UTF-8 text almost never validates as UTF-8), else the declared charset, else the page's own
    <meta charset> / XML encoding, else windows-1252 (what browsers assume for legacy Western pages)."""
    if body.startswith(b"\xef\xbb\xbf"):
        body = body[3:]
    try:
        return body.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    head = body[:4096]
    found = _META_CHARSET.search(head) or _XML_ENCODING.search(head)
    candidates = [declared, found.group(1).decode("ascii").lower() if found else None]
    for charset in candidates:
        if not charset or charset.replace("-", "").replace("_", "") == "utf8":
            continue
        try:
            return body.decode(charset), charset
        except (LookupError, UnicodeDecodeError):
            continue
    return body.decode("cp1252", errors="replace"), "cp1252"


class Fetcher:
    """Fetches URLs under a FetchPolicy; thread-safe, at most `per_host` requests in flight per host."""

    def __init__(self, policy: FetchPolicy, resolver: Resolver = system_resolver,
                 address_allowed: AddressCheck | None = None) -> None:
        self.policy = policy
        self._resolve = resolver
        self._allowed: AddressCheck = address_allowed or ((lambda _ip: True) if policy.allow_private
                                                          else public_address)
        self._lock = threading.Lock()
        self._slots: dict[str, threading.BoundedSemaphore] = {}
        self._clients: dict[str, httpx.Client] = {}
        self._timeout = httpx.Timeout(policy.read_timeout, connect=policy.connect_timeout)

    def close(self) -> None:
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _host_slot(self, host: str) -> Iterator[httpx.Client]:
        with self._lock:
            slot = self._slots.setdefault(host, threading.BoundedSemaphore(self.policy.per_host))
            # one client per host name: a pooled TLS connection is never reused for another name on the same IP
            client = self._clients.get(host)
            if client is None:
                client = self._clients[host] = httpx.Client(
                    timeout=self._timeout, follow_redirects=False, trust_env=False,
                    headers={"User-Agent": self.policy.user_agent},
                )
        with slot:
            yield client

    def check_url(self, url: str) -> tuple[httpx.URL, IPAddress]:
        """Parse and vet one URL: http(s) only, and every address its host resolves to must be allowed.
        Returns the URL and the checked address to connect to."""
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, TypeError, ValueError):
            raise InvalidUrl(f"not a valid URL: {url[:200]!r}") from None
        shown = str(parsed)[:200]
        if parsed.scheme not in ("http", "https"):
            raise FetchRefused(f"{shown}: only http and https URLs are fetched")
        host = parsed.host
        if not host:
            raise InvalidUrl(f"{shown}: the URL has no host")
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        try:
            addresses = [ipaddress.ip_address(host)]
        except ValueError:
            try:
                addresses = self._resolve(host, port)
            except (OSError, UnicodeError):
                raise FetchFailed(f"{shown}: cannot resolve host {host}") from None
        if not addresses:
            raise FetchFailed(f"{shown}: cannot resolve host {host}")
        for ip in addresses:
            if not self._allowed(ip):
                named = host if host == str(ip) else f"{host} ({ip})"
                raise FetchRefused(
                    f"{shown}: refused, {named} is a private or reserved address; "
                    "set QA_FETCH_ALLOW_PRIVATE=true to fetch from private hosts"
                )
        return parsed, addresses[0]

    def fetch(self, url: str, etag: str | None = None, last_modified: str | None = None) -> Fetched:
        """GET url following at most max_redirects redirects, each hop vetted; conditional when validators
        are given (a 304 comes back as a Fetched with no body). Raises FetchRefused or FetchFailed."""
        deadline = time.monotonic() + self.policy.total_timeout
        current, hops = url, []
        while True:
            parsed, ip = self.check_url(current)
            response_info = self._get(parsed, ip, etag, last_modified, deadline, url)
            if response_info[0] in (301, 302, 303, 307, 308):
                location = response_info[1]
                if not location:
                    raise FetchFailed(f"{url[:200]}: redirect without a Location")
                if len(hops) >= self.policy.max_redirects:
                    raise FetchFailed(f"{url[:200]}: more than {self.policy.max_redirects} redirects")
                current = str(parsed.join(location))
                hops.append(current)
                continue
            status, _, content_type, body, validators = response_info
            media_type, charset = _charset_of(content_type)
            return Fetched(url, current, status, media_type, charset, body, validators.get("etag"),
                           validators.get("last-modified"), tuple(hops))

    def _get(self, parsed: httpx.URL, ip: IPAddress, etag: str | None, last_modified: str | None,
             deadline: float, original: str) -> tuple[int, str | None, str, bytes | None, dict[str, str]]:
        host = parsed.host
        default_port = 443 if parsed.scheme == "https" else 80
        host_header = (f"[{host}]" if ":" in host else host) + (
            f":{parsed.port}" if parsed.port and parsed.port != default_port else "")
        headers = {"Host": host_header, "Accept": "text/html,application/xhtml+xml,application/rss+xml,"
                   "application/atom+xml,application/xml;q=0.9,text/xml;q=0.9,*/*;q=0.5"}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        target = parsed.copy_with(host=str(ip))  # connect to the address that was checked, nothing else
        extensions = {"sni_hostname": host} if parsed.scheme == "https" else {}
        shown = original[:200]
        with self._host_slot(host) as client:
            request = client.build_request("GET", target, headers=headers, extensions=extensions)
            try:
                response = client.send(request, stream=True)
            except httpx.TimeoutException:
                raise FetchFailed(f"{shown}: timed out") from None
            except httpx.HTTPError as exc:
                raise FetchFailed(f"{shown}: {type(exc).__name__.lower()} ({exc})") from None
            try:
                status = response.status_code
                if status in (301, 302, 303, 307, 308):
                    return status, response.headers.get("location"), "", None, {}
                validators = {k: response.headers[k] for k in ("etag", "last-modified") if k in response.headers}
                if status == 304:
                    return status, None, "", None, validators
                if status != 200:
                    raise FetchFailed(f"{shown}: HTTP {status}")
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > self.policy.max_bytes:
                    raise FetchFailed(f"{shown}: larger than the {self.policy.max_bytes}-byte limit")
                chunks, size = [], 0
                for chunk in response.iter_bytes():  # decompressed: the cap holds for gzip bombs too
                    size += len(chunk)
                    if size > self.policy.max_bytes:
                        raise FetchFailed(f"{shown}: larger than the {self.policy.max_bytes}-byte limit")
                    if time.monotonic() > deadline:
                        raise FetchFailed(f"{shown}: timed out (over {self.policy.total_timeout:g} s in total)")
                    chunks.append(chunk)
                return status, None, response.headers.get("content-type", ""), b"".join(chunks), validators
            except httpx.TimeoutException:
                raise FetchFailed(f"{shown}: timed out") from None
            except httpx.HTTPError as exc:
                raise FetchFailed(f"{shown}: {type(exc).__name__.lower()} ({exc})") from None
            finally:
                response.close()
