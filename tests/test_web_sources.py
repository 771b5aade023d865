"""Fetching and reading web sources against a real HTTP server on 127.0.0.1 (tests/web_server.py)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from qa.db import sqlite_file
from qa.db.schema import VALIDATORS
from qa.sources.fetch import Fetcher, FetchFailed, FetchPolicy, FetchRefused, public_address
from qa.sources.web import (
    SqlValidatorCache,
    WebFailure,
    WebPage,
    WebSource,
    WebUnchanged,
    normalize_url,
    web_doc_id,
)
from tests.web_server import WebServer

BRIDGE = "/ledger/2026/03/14/harbour-bridge-reopens.html"
FAKE_PUBLIC = ipaddress.ip_address("127.0.0.2")  # stands in for a public host in the SSRF tests


@pytest.fixture(scope="module")
def web() -> Iterator[WebServer]:
    with WebServer() as server:
        yield server


@pytest.fixture(scope="module")
def public_web() -> Iterator[WebServer]:
    """A second server on 127.0.0.2, which the SSRF tests treat as a public address."""
    with WebServer("127.0.0.2") as server:
        yield server


def allowing(**overrides: object) -> Fetcher:
    return Fetcher(FetchPolicy(allow_private=True, **overrides))  # type: ignore[arg-type]


def refusing(**overrides: object) -> Fetcher:
    """Private hosts refused, except 127.0.0.2 which plays a public host."""
    return Fetcher(FetchPolicy(allow_private=False, **overrides),  # type: ignore[arg-type]
                   address_allowed=lambda ip: ip == FAKE_PUBLIC or public_address(ip))


# --- fetching ---------------------------------------------------------------------------------------------------

def test_fetch_sends_user_agent_accepts_gzip_and_returns_validators(web: WebServer) -> None:
    with allowing() as fetcher:
        fetched = fetcher.fetch(web.url(BRIDGE))
    assert fetched.status == 200 and fetched.content_type == "text/html" and fetched.charset == "utf-8"
    assert "Harbour Bridge reopened" in fetched.text()
    assert web.gzipped[BRIDGE] >= 1, "the server sent it gzipped and the fetcher inflated it"
    assert fetched.etag and fetched.last_modified
    assert any(agent.startswith("news-qa/") for agent in web.agents)


def test_conditional_refetch_gets_304_by_etag_and_by_last_modified(web: WebServer) -> None:
    with allowing() as fetcher:
        first = fetcher.fetch(web.url("/ledger/rss.xml"))
        by_etag = fetcher.fetch(web.url("/ledger/rss.xml"), etag=first.etag)
        by_date = fetcher.fetch(web.url("/ledger/rss.xml"), last_modified=first.last_modified)
        stale = fetcher.fetch(web.url("/ledger/rss.xml"), etag='"something-else"')
    assert by_etag.not_modified and by_etag.body is None
    assert by_date.not_modified
    assert stale.status == 200 and stale.body


def test_at_most_five_redirects_are_followed(web: WebServer) -> None:
    with allowing() as fetcher:
        fetched = fetcher.fetch(web.url("/redirect/5/ledger/rss.xml"))
        assert fetched.status == 200 and fetched.final_url == web.url("/ledger/rss.xml")
        assert len(fetched.redirects) == 5
        with pytest.raises(FetchFailed, match="more than 5 redirects"):
            fetcher.fetch(web.url("/redirect/6/ledger/rss.xml"))
        with pytest.raises(FetchFailed, match="more than 5 redirects"):
            fetcher.fetch(web.url("/redirect-loop"))


@pytest.mark.parametrize(("path", "reason"), [
    ("/status/404", "HTTP 404"), ("/status/500", "HTTP 500"), ("/nothing-here", "HTTP 404"),
    ("/huge?bytes=3000000", "larger than the 100000-byte limit"),
    ("/huge-declared?bytes=3000000", "larger than the 100000-byte limit"),
    ("/slow?seconds=3", "timed out"), ("/trickle?seconds=8", r"timed out \(over 3 s in total\)"),
])
def test_fetch_failures_are_one_line(web: WebServer, path: str, reason: str) -> None:
    with allowing(max_bytes=100_000, read_timeout=1.0, total_timeout=3.0) as fetcher, \
            pytest.raises(FetchFailed, match=reason) as caught:
        fetcher.fetch(web.url(path))
    assert "\n" not in str(caught.value) and str(caught.value).startswith(web.url(path))


def test_charset_declared_wrongly_either_way_still_decodes(web: WebServer) -> None:
    with allowing() as fetcher:
        for path in ("/misc/cp1252-declared-utf8.html", "/misc/utf8-declared-latin1.html"):
            text = fetcher.fetch(web.url(path)).text()
            assert "Café owners fear the new “meter” rules" in text, path
            assert "José Martínez" in text and "£2 an hour" in text, path


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:9/x", "http://localhost:9/", "http://[::1]:9/", "http://10.1.2.3/", "http://192.168.0.1/",
    "http://172.16.5.4/", "http://169.254.169.254/latest/meta-data/", "http://0.0.0.0/", "http://[::ffff:127.0.0.1]/",
    "http://224.0.0.1/", "http://100.64.0.1/", "http://[fe80::1]/", "http://[fc00::1]/", "http://240.0.0.1/",
])
def test_private_and_reserved_addresses_are_refused_without_a_request(url: str) -> None:
    with refusing() as fetcher, pytest.raises(FetchRefused, match="QA_FETCH_ALLOW_PRIVATE"):
        fetcher.fetch(url)


@pytest.mark.parametrize("address", ["192.0.0.8", "192.0.0.170", "fec0::1", "3fff::1", "5f00::1", "192.88.99.1",
                                     "64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe", "2001:db8::1", "100::1"])
def test_iana_special_purpose_ranges_are_refused_as_literals_and_as_dns_answers(address: str) -> None:
    """Python 3.11's `is_global` calls 192.0.0.0/24, fec0::/10, 3fff::/20 and 5f00::/16 global: the explicit IANA
    list refuses them, and a NAT64 address is as private as the IPv4 address it embeds."""
    ip = ipaddress.ip_address(address)
    assert not public_address(ip)
    literal = f"http://[{address}]/" if ip.version == 6 else f"http://{address}/"
    with Fetcher(FetchPolicy(), resolver=lambda _host, _port: [ip]) as fetcher:
        for url in (literal, "http://news.example/story"):
            with pytest.raises(FetchRefused, match="QA_FETCH_ALLOW_PRIVATE"):
                fetcher.fetch(url)
    for public in ("8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "2a00:1450:4001::1"):
        assert public_address(ipaddress.ip_address(public))


@pytest.mark.parametrize("url", ["ftp://example.org/file", "file:///etc/passwd", "gopher://x/", "javascript:alert(1)"])
def test_only_http_and_https(url: str) -> None:
    with refusing() as fetcher, pytest.raises(FetchRefused, match="only http and https"):
        fetcher.fetch(url)


def test_private_hosts_are_fetched_when_allowed(web: WebServer) -> None:
    with allowing() as fetcher:
        assert fetcher.fetch(web.url("/ledger/rss.xml")).status == 200
        assert fetcher.fetch(web.url("/ledger/rss.xml").replace("127.0.0.1", "localhost")).status == 200


def test_redirect_from_an_allowed_host_to_loopback_is_refused(web: WebServer, public_web: WebServer) -> None:
    target = web.url("/tribune/atom.xml")
    before = web.hits["/tribune/atom.xml"]
    with refusing() as fetcher:
        assert fetcher.fetch(public_web.url("/ledger/rss.xml")).status == 200  # the "public" host itself is fine
        with pytest.raises(FetchRefused, match=r"127\.0\.0\.1 is a private or reserved address"):
            fetcher.fetch(public_web.url(f"/redirect-to?url={target}"))
        with pytest.raises(FetchRefused, match="only http and https"):
            fetcher.fetch(public_web.url("/redirect-to?url=file:///etc/passwd"))
    assert web.hits["/tribune/atom.xml"] == before, "the refused hop was never requested"


def test_the_checked_address_is_the_one_connected(public_web: WebServer) -> None:
    """DNS rebinding: the name is resolved once per hop and the request goes to that checked address."""
    answers = [[FAKE_PUBLIC], [ipaddress.ip_address("127.0.0.1")]]  # a second lookup would get loopback
    calls: list[str] = []

    def rebinding(host: str, port: int) -> list:
        calls.append(host)
        return answers[min(len(calls) - 1, 1)]

    port = public_web.base.rsplit(":", 1)[1]
    fetcher = Fetcher(FetchPolicy(), resolver=rebinding, address_allowed=lambda ip: ip == FAKE_PUBLIC)
    with fetcher:
        fetched = fetcher.fetch(f"http://news.rebind.test:{port}/ledger/rss.xml")
    assert fetched.status == 200 and calls == ["news.rebind.test"]
    mixed = Fetcher(FetchPolicy(), resolver=lambda h, p: [FAKE_PUBLIC, ipaddress.ip_address("10.0.0.1")],
                    address_allowed=lambda ip: ip == FAKE_PUBLIC)
    with mixed, pytest.raises(FetchRefused, match=r"news.mixed.test \(10.0.0.1\)"):
        mixed.fetch(f"http://news.mixed.test:{port}/ledger/rss.xml")


def test_requests_per_host_are_limited(web: WebServer) -> None:
    with allowing(per_host=2) as fetcher, ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda i: fetcher.fetch(web.url(f"/slow?seconds=0.5&i={i}")).status, range(6)))
    assert results == [200] * 6
    assert web.max_in_flight == 2


def test_unresolvable_host_is_one_line() -> None:
    with refusing() as fetcher, pytest.raises(FetchFailed, match="cannot resolve host"):
        fetcher.fetch("http://no-such-host.invalid/")


# --- feeds, sitemaps, pages --------------------------------------------------------------------------------------

def _source(tmp_path: Path, fetcher: Fetcher | None = None, known: object = None) -> WebSource:
    return WebSource(fetcher or allowing(), SqlValidatorCache(sqlite_file(tmp_path / "web.sqlite", VALIDATORS)),
                     known=known)  # type: ignore[arg-type]


def test_rss_atom_and_a_page_without_metadata(web: WebServer, tmp_path: Path) -> None:
    items = list(_source(tmp_path).collect(
        [web.url("/ledger/rss.xml"), web.url("/tribune/atom.xml"), web.url("/courier/feed.xml")]))
    pages = {i.url: i for i in items if isinstance(i, WebPage)}
    assert len(pages) == 9 and len(items) == 9
    bridge = pages[web.url(BRIDGE)]
    assert (bridge.title, bridge.author, bridge.source, str(bridge.published), bridge.language) == (
        "Harbour Bridge reopens to traffic after two-year refit", "Ellen Marsh", "The Daily Ledger", "2026-03-14",
        "en-GB")
    assert "Share on Facebook" not in bridge.text and "Morning Ledger" not in bridge.text
    assert "harbourwatcher" not in bridge.text and "Two years and nine million" not in bridge.text  # comments
    courier = pages[web.url("/courier/stories/bridge-open-again")]
    # the page has only <title>Valley Courier</title> and no date: the feed's entry title and date are used
    assert courier.title == "Bridge open again - and hauliers are happy"
    assert str(courier.published) == "2026-03-15" and courier.source == "Valley Courier"
    tribune = pages[web.url("/tribune/news/bridge-back-open.html")]
    assert tribune.source == "Coastal Tribune" and tribune.title == "Crossing back in business as bridge refit ends"


def test_sitemap_index_expands_to_its_sitemaps_pages(web: WebServer, tmp_path: Path) -> None:
    items = list(_source(tmp_path).collect([web.url("/sitemap_index.xml")]))
    assert sorted(i.url for i in items if isinstance(i, WebPage)) == sorted(web.url(p) for p in (
        "/ledger/2026/03/20/bridge-toll-rise.html", "/ledger/2026/03/18/bridge-cycle-path.html", BRIDGE,
        "/tribune/news/flood-payouts.html"))


def test_rerun_is_conditional_and_an_edit_is_seen(web: WebServer, tmp_path: Path) -> None:
    source = _source(tmp_path)
    first = list(source.collect([web.url("/ledger/rss.xml")]))
    for page in first:
        assert isinstance(page, WebPage)
        source.remember(page)
    before = dict(web.not_modified)
    again = list(source.collect([web.url("/ledger/rss.xml")]))
    assert all(isinstance(i, WebUnchanged) for i in again) and len(again) == 5
    assert {i.doc_id for i in again} == {p.doc_id for p in first}  # type: ignore[union-attr]
    assert web.not_modified["/ledger/rss.xml"] == before.get("/ledger/rss.xml", 0) + 1
    web.edit(BRIDGE)
    try:
        third = list(source.collect([web.url("/ledger/rss.xml")]))
    finally:
        web.edit(BRIDGE, False)
    changed = [i for i in third if isinstance(i, WebPage)]
    assert [p.url for p in changed] == [web.url(BRIDGE)]
    assert "186 million pounds" in changed[0].text and changed[0].doc_id == first[2].doc_id  # type: ignore[union-attr]


def test_a_deleted_article_is_fetched_in_full_again(web: WebServer, tmp_path: Path) -> None:
    known: set[str] = set()
    source = _source(tmp_path, known=lambda doc_id: doc_id in known)
    page = next(iter(source.collect([web.url(BRIDGE)])))
    assert isinstance(page, WebPage)
    source.remember(page)
    again = next(iter(source.collect([web.url(BRIDGE)])))
    assert isinstance(again, WebPage), "no conditional request for a document the store does not hold"


def test_failures_are_one_line_each_and_do_not_stop_the_batch(web: WebServer, tmp_path: Path) -> None:
    urls = [web.url(p) for p in ("/status/404", "/file.pdf", "/image.png", "/status/500", BRIDGE,
                                 "/redirect/6/ledger/rss.xml")]
    items = list(_source(tmp_path).collect(urls))
    failures = {i.url: i.reason for i in items if isinstance(i, WebFailure)}
    assert failures == {
        web.url("/status/404"): "HTTP 404",
        web.url("/file.pdf"): "unsupported content type application/pdf (expected an HTML page, a feed or a sitemap)",
        web.url("/image.png"): "unsupported content type image/png (expected an HTML page, a feed or a sitemap)",
        web.url("/status/500"): "HTTP 500",
        web.url("/redirect/6/ledger/rss.xml"): "more than 5 redirects",
    }
    assert [i.url for i in items if isinstance(i, WebPage)] == [web.url(BRIDGE)]


def test_feed_entry_on_a_private_host_is_refused_while_the_feed_is_read(public_web: WebServer, tmp_path: Path) -> None:
    """The feed (on the "public" host) lists its entries under 127.0.0.2; one redirecting to loopback is refused."""
    source = _source(tmp_path, refusing())
    items = list(source.collect([public_web.url("/ledger/rss.xml"),
                                 public_web.url("/redirect-to?url=http://127.0.0.1:9/x")]))
    refused = [i for i in items if isinstance(i, WebFailure)]
    assert len(refused) == 1 and refused[0].refused and "127.0.0.1 is a private" in refused[0].reason
    assert sum(isinstance(i, WebPage) for i in items) == 5


def test_doc_ids_are_readable_stable_and_never_file_ids() -> None:
    url = "https://www.Example.com/news/2026/03/Harbour-Bridge-Reopens.html?utm_source=rss&page=2#comments"
    doc_id = web_doc_id(url)
    assert re.fullmatch(r"web:example\.com:harbour-bridge-reopens-[0-9a-f]{8}", doc_id)
    assert web_doc_id("https://www.example.com:443/news/2026/03/Harbour-Bridge-Reopens.html?page=2") == doc_id
    assert web_doc_id("https://www.example.com/news/2026/03/Harbour-Bridge-Reopens.html?page=3") != doc_id
    assert web_doc_id("https://other.example/news/harbour-bridge-reopens.html") != doc_id
    assert normalize_url("HTTP://Example.com") == "http://example.com/"
    assert not re.fullmatch(r"[A-Za-z0-9_.-]+", doc_id), "a file id only ever has these characters"


def test_cross_site_canonical_does_not_take_the_originals_id(web: WebServer, tmp_path: Path) -> None:
    """A copy whose canonical link names another site keeps its own id (it must not replace the original)."""
    from qa.sources.extract import extract_html
    from qa.sources.fetch import Fetched
    from qa.sources.web import page_from

    html = (Path(__file__).parent / "web_fixtures/site/tribune/news/bridge-back-open.html").read_text()
    html = html.replace('<link rel="canonical" href="{{BASE}}/tribune/news/bridge-back-open.html">',
                        '<link rel="canonical" href="https://ledger.example/2026/03/14/harbour-bridge-reopens.html">')
    url = web.url("/tribune/news/bridge-back-open.html")
    fetched = Fetched(url, url, 200, "text/html", "utf-8", html.encode())
    extracted = extract_html(html, url)
    assert extracted is not None and extracted.canonical_url.startswith("https://ledger.example/")
    page = page_from(fetched, extracted, None)
    assert page.url == url and page.doc_id == web_doc_id(url)
