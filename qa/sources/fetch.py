"""Fetch web pages for ingestion safely: timeouts, a size cap, checked redirects and no requests to private hosts.

Every fetch ends by its deadline (QA_FETCH_TOTAL_TIMEOUT), response head, redirects and compressed bodies
included: the connections go through a network backend that caps every socket operation at the time left, so a
site that sends a byte a second, or gzip blocks that decode to nothing, cannot hold a fetch past it. Bodies are
inflated here, incrementally and never past the byte budget (httpx would inflate a whole chunk at once).

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
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import Message

import httpcore
import httpx

from qa.errors import QAError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[IPAddress]]
AddressCheck = Callable[[IPAddress], bool]

USER_AGENT = "news-qa/0.1 (article fetcher for a question-answering service)"
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_:.-]+)""", re.I)
_XML_ENCODING = re.compile(rb"""^\s*<\?xml[^>]+encoding\s*=\s*["']([A-Za-z0-9_.-]+)""")
_HOSTNAME = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62})(?:\.[A-Za-z0-9_-]{1,63})*\.?$")
_REDIRECTS = (301, 302, 303, 307, 308)
_ENCODINGS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
_deadline = threading.local()  # the deadline of the fetch running on this thread (see _DeadlineBackend)


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


# IANA's special-purpose address registries (iana-ipv4-special-registry, iana-ipv6-special-registry, 2025) plus
# the deprecated and multicast blocks: every block not "globally reachable" is listed, since Python's `is_global`
# misses some (3.11: 192.0.0.0/24, fec0::/10, 3fff::/20, 5f00::/16). Checked as well as the flags, never instead.
SPECIAL_PURPOSE = tuple(ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12", "192.0.0.0/24",
    "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24",
    "224.0.0.0/4", "240.0.0.0/4", "255.255.255.255/32",
    "::/128", "::1/128", "::ffff:0:0/96", "64:ff9b:1::/48", "100::/64", "100:0:0:1::/64", "2001::/23",
    "2001:db8::/32", "3fff::/20", "5f00::/16", "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8",
))
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # well-known NAT64 prefix: as public as the IPv4 address it holds


def public_address(ip: IPAddress) -> bool:
    """True for a globally routable unicast address; loopback, private, link-local, multicast, reserved,
    unspecified and shared (CGNAT) addresses are not, nor any IANA special-purpose block that is not globally
    reachable, nor IPv6 forms that embed one of them (IPv4-mapped, 6to4, Teredo, NAT64)."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None and not public_address(embedded):
            return False
    if any(ip in network for network in SPECIAL_PURPOSE):
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


class _Overdue(httpcore.ReadTimeout):
    """The fetch's total deadline passed (told apart from a per-read timeout in the message)."""


def _left(timeout: float | None) -> float | None:
    """The socket timeout to use now: the per-operation one, capped at what is left of this thread's fetch."""
    deadline = getattr(_deadline, "at", None)
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise _Overdue("the total fetch deadline passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """A socket stream whose every read, write and TLS handshake ends by the fetch's deadline."""

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _left(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _left(timeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(self, ssl_context: object, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        return _DeadlineStream(self._stream.start_tls(ssl_context, server_hostname, _left(timeout)))  # type: ignore

    def get_extra_info(self, info: str) -> object:
        return self._stream.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's own sockets, wrapped in _DeadlineStream (httpcore's documented network-backend seam)."""

    def __init__(self) -> None:
        self._backend = httpcore.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: object = None) -> httpcore.NetworkStream:
        return _DeadlineStream(self._backend.connect_tcp(host, port, _left(timeout), local_address,
                                                         socket_options))  # type: ignore[arg-type]

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: object = None) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("unix sockets are never used for fetching")

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


class _DeadlineTransport(httpx.HTTPTransport):
    """httpx's transport on a connection pool that uses _DeadlineBackend."""

    def __init__(self) -> None:
        super().__init__(trust_env=False)
        self._pool = httpcore.ConnectionPool(ssl_context=httpx.create_ssl_context(trust_env=False),
                                             network_backend=_DeadlineBackend())


def _inflater(encoding: str, first: bytes, shown: str) -> zlib._Decompress | None:  # type: ignore[name-defined]
    """A zlib decompressor for the response's Content-Encoding (None for identity); `deflate` is zlib-wrapped
    or, as some servers send it, raw (told apart by the zlib header's check bits, as browsers do)."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return None
    if encoding not in _ENCODINGS:
        raise FetchFailed(f"{shown}: unsupported content encoding {encoding[:40]!r}")
    wbits = _ENCODINGS[encoding]
    if encoding == "deflate" and not (len(first) >= 2 and first[0] & 0x0F == 8 and
                                      (first[0] << 8 | first[1]) % 31 == 0):
        wbits = -zlib.MAX_WBITS
    return zlib.decompressobj(wbits)


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
    def _host_slot(self, host: str, deadline: float, shown: str) -> Iterator[httpx.Client]:
        with self._lock:
            slot = self._slots.setdefault(host, threading.BoundedSemaphore(self.policy.per_host))
            # one client per host name: a pooled TLS connection is never reused for another name on the same IP
            client = self._clients.get(host)
            if client is None:
                client = self._clients[host] = httpx.Client(
                    timeout=self._timeout, follow_redirects=False, trust_env=False, transport=_DeadlineTransport(),
                    headers={"User-Agent": self.policy.user_agent, "Accept-Encoding": "gzip, deflate"},
                )
        if not slot.acquire(timeout=max(0.0, deadline - time.monotonic())):  # waiting for the host counts too
            raise self._overdue(shown)
        try:
            yield client
        finally:
            slot.release()

    def _overdue(self, shown: str) -> FetchFailed:
        return FetchFailed(f"{shown}: timed out (over {self.policy.total_timeout:g} s in total)")

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
        if not _HOSTNAME.match(host) and ":" not in host:  # IPv6 literals are checked by ip_address below
            raise InvalidUrl(f"{shown}: {host[:100]!r} is not a valid host name")
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        if not 0 < port < 65536:
            raise InvalidUrl(f"{shown}: port {port} is out of range")
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
        """GET url following at most max_redirects redirects, each hop vetted, all of it (head, redirects, body)
        within policy.total_timeout; conditional when validators are given (a 304 comes back as a Fetched with no
        body). Raises FetchRefused or FetchFailed (a malformed redirect is FetchFailed "invalid redirect")."""
        deadline = time.monotonic() + self.policy.total_timeout
        _deadline.at = deadline
        try:
            return self._follow(url, etag, last_modified, deadline)
        finally:
            _deadline.at = None

    def _follow(self, url: str, etag: str | None, last_modified: str | None, deadline: float) -> Fetched:
        current, hops = url, []
        while True:
            try:
                parsed, ip = self.check_url(current)
            except InvalidUrl:
                if not hops:
                    raise
                raise FetchFailed(f"{url[:200]}: invalid redirect") from None
            response_info = self._get(parsed, ip, etag, last_modified, deadline, url)
            if response_info[0] in _REDIRECTS:
                location = response_info[1]
                if not location:
                    raise FetchFailed(f"{url[:200]}: redirect without a Location")
                if len(hops) >= self.policy.max_redirects:
                    raise FetchFailed(f"{url[:200]}: more than {self.policy.max_redirects} redirects")
                current = self._redirect_target(parsed, location, url)
                hops.append(current)
                continue
            status, _, content_type, body, validators = response_info
            media_type, charset = _charset_of(content_type)
            return Fetched(url, current, status, media_type, charset, body, validators.get("etag"),
                           validators.get("last-modified"), tuple(hops))

    @staticmethod
    def _redirect_target(parsed: httpx.URL, location: str, original: str) -> str:
        """The absolute URL a Location header points to; FetchFailed "invalid redirect" for one that is not a URL
        (`http:x`, `https:relative`, a scheme without a host, an unparseable host or port)."""
        try:
            target = httpx.URL(location)
            if target.scheme in ("http", "https") and not target.host:
                raise httpx.InvalidURL("a scheme without a host")
            return str(parsed.join(target))
        except (httpx.InvalidURL, TypeError, ValueError, UnicodeError):
            raise FetchFailed(f"{original[:200]}: invalid redirect") from None

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
        with self._host_slot(host, deadline, shown) as client:
            try:
                request = client.build_request("GET", target, headers=headers, extensions=extensions)
                response = client.send(request, stream=True)
            except httpx.InvalidURL:  # httpx reads a redirect's Location itself, even when not following it
                raise FetchFailed(f"{shown}: invalid redirect") from None
            except httpx.TimeoutException:
                raise self._timed_out(shown, deadline) from None
            except httpx.HTTPError as exc:
                if "location header" in str(exc).lower():
                    raise FetchFailed(f"{shown}: invalid redirect") from None
                raise FetchFailed(f"{shown}: {type(exc).__name__.lower()} ({exc})") from None
            try:
                status = response.status_code
                if status in _REDIRECTS:
                    return status, response.headers.get("location"), "", None, {}
                validators = {k: response.headers[k] for k in ("etag", "last-modified") if k in response.headers}
                if status == 304:
                    return status, None, "", None, validators
                if status != 200:
                    raise FetchFailed(f"{shown}: HTTP {status}")
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > self.policy.max_bytes:
                    raise FetchFailed(f"{shown}: larger than the {self.policy.max_bytes}-byte limit")
                body = self._read_body(response, shown)
                return status, None, response.headers.get("content-type", ""), body, validators
            except httpx.TimeoutException:
                raise self._timed_out(shown, deadline) from None
            except httpx.HTTPError as exc:
                raise FetchFailed(f"{shown}: {type(exc).__name__.lower()} ({exc})") from None
            finally:
                response.close()

    def _timed_out(self, shown: str, deadline: float) -> FetchFailed:
        return self._overdue(shown) if time.monotonic() >= deadline else FetchFailed(f"{shown}: timed out")

    def _read_body(self, response: httpx.Response, shown: str) -> bytes:
        """The body, inflated here a bounded step at a time: never more than the byte budget (plus one) is
        produced, however much a compressed chunk would expand to (a gzip bomb costs no more memory than the cap)."""
        limit = self.policy.max_bytes
        encoding = response.headers.get("content-encoding", "")
        inflater, started, chunks, size = None, False, [], 0
        for data in response.iter_raw():
            if data and not started:
                inflater, started = _inflater(encoding, data, shown), True
            while data:
                if inflater is None:
                    out, data = data, b""
                else:
                    try:
                        out = inflater.decompress(data, limit - size + 1)
                    except zlib.error:
                        raise FetchFailed(f"{shown}: the compressed body is corrupt") from None
                    data = inflater.unconsumed_tail
                size += len(out)
                if size > limit:
                    raise FetchFailed(f"{shown}: larger than the {limit}-byte limit")
                chunks.append(out)
                if inflater is not None and inflater.eof:
                    break
        return b"".join(chunks)
