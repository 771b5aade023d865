# ruff: noqa: E501  (the page templates are HTML, kept as a page would be written)
"""Writes the static news pages under site/ from stories/ and three outlet layouts (run once; output committed).

Each outlet has the furniture real news sites carry, so extraction is measured against it: navigation, a cookie
banner, share buttons, captions, related links, a newsletter box, comments, a footer, and JSON-LD / Open Graph
metadata (the Courier has almost none, so a feed has to supply its title and date). `{{BASE}}` is replaced by
the test server's address when a page is served.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

HERE = Path(__file__).parent
SITE = HERE / "site"


def story(name: str) -> tuple[str, str, str, list[str]]:
    lines = [x for x in (HERE / "stories" / f"{name}.txt").read_text("utf-8").splitlines() if x.strip()]
    return lines[0], lines[1], lines[2], lines[3:]


def paras(body: list[str], related_after: int | None = None, related: str = "") -> str:
    out = []
    for i, p in enumerate(body):
        out.append(f"      <p>{html.escape(p)}</p>")
        if related_after is not None and i == related_after:
            out.append(related)
    return "\n".join(out)


LEDGER_NAV = """  <header class="site-header">
    <a class="logo" href="{{BASE}}/ledger/">The Daily Ledger</a>
    <nav class="main-nav" aria-label="Sections">
      <ul>
        <li><a href="{{BASE}}/ledger/news">News</a></li>
        <li><a href="{{BASE}}/ledger/politics">Politics</a></li>
        <li><a href="{{BASE}}/ledger/business">Business</a></li>
        <li><a href="{{BASE}}/ledger/sport">Sport</a></li>
        <li><a href="{{BASE}}/ledger/weather">Weather</a></li>
        <li><a href="{{BASE}}/ledger/opinion">Opinion</a></li>
      </ul>
    </nav>
    <form class="search" action="{{BASE}}/ledger/search"><input name="q" placeholder="Search the Ledger"></form>
  </header>
  <div id="cookie-banner" class="consent" role="dialog">
    <p>We use cookies and similar technologies to improve your experience, measure our audience and show you
    personalised advertising. You can accept all cookies, reject non-essential cookies or manage your choices
    at any time in our privacy settings.</p>
    <button>Accept all</button> <button>Reject non-essential</button> <a href="{{BASE}}/ledger/privacy">Manage choices</a>
  </div>"""

LEDGER_FOOT = """  <section class="comments" id="comments">
    <h2>Comments (3)</h2>
    <ol>
      <li class="comment"><span class="comment-author">harbourwatcher</span>
        <p>Two years and nine million over budget, and they still could not make the cycle path wider. Typical of this council.</p></li>
      <li class="comment"><span class="comment-author">DaveP</span>
        <p>Crossed it this morning with the kids. Much smoother than the old deck, I will give them that.</p></li>
      <li class="comment"><span class="comment-author">north_bank_mum</span>
        <p>Who is paying for the audit? Probably us, through the toll, as usual.</p></li>
    </ol>
    <form class="comment-form"><textarea placeholder="Join the conversation"></textarea><button>Post</button></form>
  </section>
  <footer class="site-footer">
    <ul>
      <li><a href="{{BASE}}/ledger/about">About us</a></li><li><a href="{{BASE}}/ledger/contact">Contact</a></li>
      <li><a href="{{BASE}}/ledger/privacy">Privacy policy</a></li><li><a href="{{BASE}}/ledger/terms">Terms of use</a></li>
      <li><a href="{{BASE}}/ledger/advertise">Advertise with us</a></li>
    </ul>
    <p>&copy; 2026 Ledger Media Group Ltd. All rights reserved. Registered in England and Wales, company no. 01234567.</p>
  </footer>"""


def ledger(name: str, slug: str, extra_body: list[str] | None = None,
           edit: tuple[str, str] | None = None) -> tuple[list[str], str]:
    title, author, published, body = story(name)
    body = list(body)
    if edit:
        body = [p.replace(*edit) for p in body]
    body += extra_body or []
    url = "{{BASE}}/ledger/" + slug
    ld = {
        "@context": "https://schema.org", "@type": "NewsArticle", "headline": title,
        "datePublished": f"{published}T07:30:00+00:00", "dateModified": f"{published}T09:05:00+00:00",
        "author": [{"@type": "Person", "name": author}],
        "publisher": {"@type": "Organization", "name": "The Daily Ledger"},
        "mainEntityOfPage": url, "inLanguage": "en-GB",
    }
    related = """      <aside class="related-inline"><strong>Read more:</strong>
        <a href="{{BASE}}/ledger/2026/03/20/bridge-toll-rise.html">Council votes to raise Harbour Bridge toll</a></aside>"""
    return body, f"""<!DOCTYPE html>
<html lang="en-GB">
<head>
  <meta charset="utf-8">
  <title>{html.escape(title)} | The Daily Ledger</title>
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <meta name="description" content="{html.escape(body[0][:150])}">
  <link rel="canonical" href="{url}">
  <meta property="og:type" content="article">
  <meta property="og:title" content="{html.escape(title)}">
  <meta property="og:site_name" content="The Daily Ledger">
  <meta property="og:url" content="{url}">
  <meta property="article:published_time" content="{published}T07:30:00+00:00">
  <script type="application/ld+json">{json.dumps(ld)}</script>
  <script>window.dataLayer = window.dataLayer || []; dataLayer.push({{"section": "news"}});</script>
  <style>.consent{{position:fixed;bottom:0}}</style>
</head>
<body>
{LEDGER_NAV}
  <main>
    <article class="story">
      <p class="kicker"><a href="{{BASE}}/ledger/news">News</a> / <a href="{{BASE}}/ledger/transport">Transport</a></p>
      <h1>{html.escape(title)}</h1>
      <p class="byline">By <a rel="author" href="{{BASE}}/ledger/authors/{author.lower().replace(' ', '-')}">{author}</a>,
        Transport Correspondent &middot; <time datetime="{published}T07:30:00Z">{published}</time></p>
      <div class="share">
        <a href="#">Share on Facebook</a> <a href="#">Share on X</a> <a href="#">Share on WhatsApp</a> <a href="#">Email</a>
        <button>Copy link</button>
      </div>
      <figure><img src="{{BASE}}/ledger/img/{slug}.jpg" alt="">
        <figcaption>The view from the northern approach. Photograph: Ledger Media/Jo Park</figcaption></figure>
      <div class="article-body">
{paras(body, related_after=2, related=related)}
      </div>
      <div class="newsletter-signup">
        <h3>Get the Morning Ledger</h3>
        <p>Sign up for our free newsletter and get the day's most important stories in your inbox every morning at seven.</p>
        <form><input type="email" placeholder="Your email address"><button>Sign me up</button></form>
      </div>
      <div class="tags"><a href="{{BASE}}/ledger/tag/transport">Transport</a> <a href="{{BASE}}/ledger/tag/council">Council</a></div>
    </article>
    <aside class="related">
      <h2>Related stories</h2>
      <ul>
        <li><a href="{{BASE}}/ledger/2026/03/18/bridge-cycle-path.html">Cyclists say the new Harbour Bridge path is too narrow</a></li>
        <li><a href="{{BASE}}/ledger/2026/02/27/council-budget.html">City council sets budget with cuts to library opening hours</a></li>
        <li><a href="{{BASE}}/ledger/2026/02/09/eden-flood-warning.html">Flood warning issued for three towns as River Eden rises</a></li>
      </ul>
    </aside>
  </main>
{LEDGER_FOOT}
</body>
</html>
"""


def tribune(name: str, slug: str, headline: str, drop_last: int = 0,
            edits: tuple[tuple[str, str], ...] = ()) -> tuple[list[str], str]:
    _, author, published, body = story(name)
    body = body[: len(body) - drop_last] if drop_last else list(body)
    for old, new in edits:
        body = [p.replace(old, new) for p in body]
    url = "{{BASE}}/tribune/news/" + slug
    blocks = []
    for i, p in enumerate(body):
        blocks.append(f'        <div class="para">{html.escape(p)}</div>')
        if i == 1:
            blocks.append('        <div class="ad-slot">Advertisement</div>')
        if i == 3:
            blocks.append('        <div class="inline-link">READ MORE: <a href="{{BASE}}/tribune/news/flood-payouts.html">'
                          'Insurers promise faster payouts for flooded homes</a></div>')
    body_html = "\n".join(blocks)
    return body, f"""<!DOCTYPE html>
<html lang="en">
<head>
  <meta http-equiv="Content-Type" content="text/html; charset=utf-8">
  <title>{html.escape(headline)} - Coastal Tribune</title>
  <meta name="author" content="{author}">
  <meta property="og:title" content="{html.escape(headline)}">
  <meta property="og:site_name" content="Coastal Tribune">
  <meta property="og:url" content="{url}">
  <meta property="article:published_time" content="{published}T11:00:00Z">
  <link rel="canonical" href="{url}">
</head>
<body class="tribune">
  <div class="topbar"><a href="{{BASE}}/tribune/">Home</a> | <a href="{{BASE}}/tribune/news">Local news</a> |
    <a href="{{BASE}}/tribune/sport">Sport</a> | <a href="{{BASE}}/tribune/jobs">Jobs</a> | <a href="{{BASE}}/tribune/subscribe">Subscribe</a></div>
  <div class="gdpr-notice">This site uses cookies. By continuing to browse you agree to our use of cookies. <a href="#">OK</a></div>
  <div class="wrapper">
    <div class="col-main">
      <div class="headline-block"><h1 class="headline">{html.escape(headline)}</h1>
        <div class="meta">{author} | Press Wire | {published}</div></div>
      <div class="social"><span>Share this:</span> <a href="#">Facebook</a> <a href="#">Twitter</a> <a href="#">LinkedIn</a></div>
      <div class="story-body">
{body_html}
      </div>
      <div class="subscribe-box">Support local journalism. Subscribe to the Coastal Tribune from just 1 pound a week and get unlimited access to every story.</div>
    </div>
    <div class="col-side">
      <h3>Most read</h3>
      <ol>
        <li><a href="{{BASE}}/tribune/news/a.html">Lifeboat crew rescue two walkers cut off by tide</a></li>
        <li><a href="{{BASE}}/tribune/news/b.html">Seafront hotel plans approved despite objections</a></li>
        <li><a href="{{BASE}}/tribune/news/c.html">School ranked among best in the region</a></li>
      </ol>
    </div>
  </div>
  <div class="footer">Coastal Tribune, 12 Quay Street. Contact the newsroom: news@tribune.example. Copyright 2026 Tribune Newspapers.</div>
</body>
</html>
"""


def courier(name: str, headline: str, extra: list[str], insert_at: int) -> tuple[list[str], str]:
    _, _, _, body = story(name)
    body = list(body)
    for i, p in enumerate(extra):
        body.insert(insert_at + i, p)
    return body, f"""<html>
<head><title>Valley Courier</title></head>
<body>
  <div id="masthead"><img src="{{BASE}}/courier/logo.png" alt="Valley Courier"> <span>Your valley, your news</span></div>
  <ul class="menu"><li><a href="{{BASE}}/courier/">Front page</a></li><li><a href="{{BASE}}/courier/notices">Notices</a></li>
    <li><a href="{{BASE}}/courier/whats-on">What's on</a></li></ul>
  <section id="content">
    <h2>{html.escape(headline)}</h2>
{paras(body)}
    <p class="share-links">Share: <a href="#">Facebook</a> &middot; <a href="#">Email a friend</a></p>
  </section>
  <div id="footer"><p>Valley Courier is published by Valley Community Press. Letters to the editor: letters@courier.example</p></div>
</body>
</html>
"""


EDITED = ("184-million-pound", "186-million-pound")
CORRECTION = ["Correction: an earlier version of this article gave the cost of the refit as 184 million pounds. "
              "The council has since confirmed a final figure of 186 million pounds."]
COURIER_EXTRA = [
    "In the valley, hauliers said the reopening would take about forty minutes off the run to the port, and the "
    "Courier's readers have been sending in photographs of the first morning's crossing all weekend.",
]


def pages() -> dict[str, tuple[list[str], str]]:
    """Each page's path under site/ -> (its body paragraphs, as an extractor should return them; its HTML)."""
    return {
        "ledger/2026/03/14/harbour-bridge-reopens.html": ledger("bridge-reopens", "2026/03/14/harbour-bridge-reopens.html"),
        "ledger/2026/03/14/harbour-bridge-reopens.v2.html": ledger(
            "bridge-reopens", "2026/03/14/harbour-bridge-reopens.html", extra_body=CORRECTION, edit=EDITED),
        "ledger/2026/03/20/bridge-toll-rise.html": ledger("bridge-tolls", "2026/03/20/bridge-toll-rise.html"),
        "ledger/2026/03/18/bridge-cycle-path.html": ledger("bridge-cyclists", "2026/03/18/bridge-cycle-path.html"),
        "ledger/2026/02/09/eden-flood-warning.html": ledger("river-flood-warning", "2026/02/09/eden-flood-warning.html"),
        "ledger/2026/02/27/council-budget.html": ledger("council-budget", "2026/02/27/council-budget.html"),
        "tribune/news/bridge-back-open.html": tribune(
            "bridge-reopens", "bridge-back-open.html", "Crossing back in business as bridge refit ends", drop_last=2),
        "tribune/news/eden-towns-warned.html": tribune(
            "river-flood-warning", "eden-towns-warned.html", "Eden valley towns told to prepare for flooding",
            edits=(("on Monday afternoon", "on Monday"), ("said the agency's area manager", "said area manager"))),
        "tribune/news/flood-payouts.html": tribune("flood-insurance", "flood-payouts.html",
                                                   "Insurers promise faster payouts for flooded homes in Cumbria"),
        "courier/stories/bridge-open-again": courier(
            "bridge-reopens", "Bridge open again - and hauliers are happy", COURIER_EXTRA, insert_at=4),
    }


def main() -> None:
    for rel, (_, text) in pages().items():
        path = SITE / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, "utf-8")
        print(path.relative_to(HERE))


if __name__ == "__main__":
    main()
