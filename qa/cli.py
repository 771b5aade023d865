"""The `qa` command: ingest, ask, chat, serve, eval."""

from __future__ import annotations

import errno
import json
import sys
import threading
import time
from contextlib import suppress
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from qa.config import Settings, load_settings
from qa.contract import AnswerOut, IngestReportOut
from qa.errors import QAError

if TYPE_CHECKING:
    from qa.service import Service
    from qa.sources import Source

app = typer.Typer(
    add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
    help="Question answering over news articles.",
)
err = Console(stderr=True, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)

DEFAULT_SEEDS = Path("seeds")


def _settings() -> Settings:
    try:
        return load_settings()
    except Exception as exc:  # pydantic ValidationError: show the one line that matters
        first = str(exc).splitlines()
        raise _fail(f"invalid configuration: {' '.join(first[:3])}") from None


def _fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}", markup=True, highlight=False)
    return typer.Exit(code)


def _where(settings: Settings) -> str:
    """Where the index lives, as a reader can find it again."""
    return "the PostgreSQL database (QA_DATABASE_URL)" if settings.database_url else str(settings.data_dir.resolve())


def _asking_service(settings: Settings) -> Service:
    """The service for `ask` and `chat`: an index that does not exist or holds nothing is said, with the data
    folder, instead of creating ./data and answering "the articles don't say"."""
    if settings.database_url is None and not settings.data_dir.exists():
        raise _fail(f"no index here: the data folder {_where(settings)} does not exist; run `qa ingest` first, "
                    "or set QA_DATA_DIR to the folder holding the index")
    _warm_up()
    service = _service(settings)
    try:
        documents, _ = service.docs.count()
    except QAError as exc:
        raise _fail(str(exc)) from None
    if not documents:
        raise _fail(f"the index in {_where(settings)} is empty: add articles with `qa ingest PATH`, "
                    "or set QA_DATA_DIR to the folder holding the index")
    return service


def _warm_up() -> None:
    """Begin, on a second core, what the first answer needs besides the models: the GeoNames names of the
    gazetteer and the Chroma client library (imported at the first search). Meanwhile the main thread loads
    the ONNX model, which runs in native code: `qa ask` starts ~1 s sooner (docs/benchmarks.md)."""

    def work() -> None:
        with suppress(Exception):  # a warm-up only: whatever fails here fails again, and is reported, later
            from qa.lexicon import geonames

            geonames()
            import chromadb  # noqa: F401

    threading.Thread(target=work, name="qa-warm-up", daemon=True).start()


def _service(settings: Settings) -> Service:
    from qa.service import build_service

    try:
        service = build_service(settings)
        service.startup()
        return service
    except QAError as exc:
        raise _fail(str(exc)) from None


_EVERY = {"s": 1, "m": 60, "h": 3600}


def _interval(text: str) -> float:
    """'15m', '30s', '1h' or plain seconds -> seconds."""
    text = text.strip().lower()
    unit = _EVERY.get(text[-1:])
    number = text[:-1] if unit else text
    try:
        seconds = float(number) * (unit or 1)
    except ValueError:
        raise _fail(f"--every: '{text}' is not an interval like 30s, 15m or 1h", 2) from None
    if not 1 <= seconds <= 7 * 86400:
        raise _fail("--every must be between 1 second and 7 days", 2)
    return seconds


def _print_urls(report: IngestReportOut) -> None:
    """One line per URL of a web ingest."""
    for line in report.urls:
        if line.status == "failed":
            err.print(f"[yellow]failed[/yellow]     {line.url}: {line.error}", highlight=False)
        elif line.status == "duplicate":
            out.print(f"duplicate  {line.url} (a copy of {line.of})", highlight=False)
        else:
            out.print(f"{line.status:<10} {line.url} ({line.doc_id})", highlight=False)


def _run_ingest(service: Service, sources: list[Source], as_json: bool) -> IngestReportOut:
    from rich.progress import Progress

    reports = []
    with Progress(console=err, transient=True, disable=as_json) as bar:
        task = bar.add_task("reading", total=None)
        total = 0
        for source in sources:
            service.bind(source)
            total += source.count()  # a feed or sitemap is read here, to know how many articles it lists
        bar.update(task, total=total, description="ingesting")
        moved: set[str] = set()  # articles the bar counted when they were embedded, not again when written

        def embedded(name: str) -> None:
            moved.add(name)
            bar.advance(task)

        def written(name: str) -> None:
            if name in moved:
                moved.discard(name)
            else:  # unchanged, failed or a copy: counted when its turn in the input order comes
                bar.advance(task)

        for source in sources:
            reports.append(service.ingest(source, progress=written, embedded=embedded))
    return _merge(reports)


@app.command()
def ingest(
    targets: Annotated[list[str] | None, typer.Argument(
        help="Files, folders, or URLs of RSS/Atom feeds, sitemaps and articles (default: seeds/).")] = None,
    reset: Annotated[bool, typer.Option(help="Delete the whole index first (e.g. after changing model).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    follow: Annotated[bool, typer.Option(help="Re-read the targets (feeds) every --every until interrupted.")] = False,
    every: Annotated[str, typer.Option(help="Interval between --follow rounds: 30s, 15m, 1h.")] = "15m",
    rounds: Annotated[int, typer.Option(help="With --follow: stop after this many rounds (0: never).")] = 0,
    fill: Annotated[bool, typer.Option(help="QA_SENTENCE_VECTORS=background: store the sentence vectors before "
                                            "exiting (by default `qa serve` does it in the background).")] = False,
) -> None:
    """Clean, chunk, embed and index articles from files, folders, feeds, sitemaps and pages; unchanged ones are
    skipped, syndicated copies of indexed articles are recorded on them instead of indexed again."""
    from qa.sources import open_targets

    settings = _settings()
    interval = _interval(every) if follow else 0.0
    given = targets or [str(DEFAULT_SEEDS)]

    def opened() -> list[Source]:
        """The targets as sources, each checked (a missing file, a URL that may not be fetched: exit 2)."""
        sources = open_targets(given, settings)
        try:
            for source in sources:
                source.check()
        except QAError as exc:
            for source in sources:
                source.close()
            raise _fail(str(exc), 2 if exc.status_code < 500 else 1) from None
        return sources

    sources = opened()
    if reset:
        from qa.service import reset_index

        reset_index(settings)
    service = _service(settings)
    if follow:
        _follow(service, opened, interval, rounds)
        return
    started = time.perf_counter()
    try:
        report = _run_ingest(service, sources, as_json)
    except QAError as exc:
        raise _fail(str(exc)) from None
    elapsed = time.perf_counter() - started
    if as_json:
        out.print_json(json.dumps({**report.model_dump(mode="json", exclude_none=True), "seconds": round(elapsed, 2)}))
    else:
        _print_urls(report)
        out.print(
            f"added {len(report.added)}, replaced {len(report.replaced)}, unchanged {len(report.unchanged)}, "
            f"failed {len(report.failed)}, duplicate {len(report.duplicate)} documents; "
            f"{report.chunks_written} chunks written, {report.chunks_total} in the index ({elapsed:.1f} s)"
        )
        urls = {u.url for u in report.urls}
        for failure in report.failed:
            if failure.file not in urls:  # a URL's failure is already on its line
                err.print(f"[yellow]skipped[/yellow] {failure.file}: {failure.error}", highlight=False)
    if fill and service.fill:
        started = time.perf_counter()
        try:
            stored = service.fill.run()
        except QAError as exc:
            raise _fail(str(exc)) from None
        if not as_json:
            out.print(f"stored {stored} sentence vectors, {service.fill.waiting} waiting "
                      f"({time.perf_counter() - started:.1f} s)")
    if report.failed and not (report.added or report.replaced or report.unchanged or report.duplicate):
        raise typer.Exit(1)
    if not (report.failed or report.added or report.replaced or report.unchanged or report.duplicate):
        from qa.sources.cleaning import SUPPORTED_SUFFIXES

        raise _fail(f"nothing to ingest in {', '.join(given)}: no {', '.join(SUPPORTED_SUFFIXES)} files, "
                    "feeds or pages found")


def _follow(service: Service, opened: object, interval: float, rounds: int) -> None:
    """Re-ingest the targets every `interval` seconds, one log line per round, until Ctrl-C (or `rounds`)."""
    done = 0
    try:
        while True:
            started = time.perf_counter()
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            try:
                report = _run_ingest(service, opened(), True)  # type: ignore[operator]
                line = (f"{stamp} round {done + 1}: added {len(report.added)}, replaced {len(report.replaced)}, "
                        f"unchanged {len(report.unchanged)}, duplicate {len(report.duplicate)}, "
                        f"failed {len(report.failed)} ({time.perf_counter() - started:.1f} s)")
                out.print(line, highlight=False)
                for failure in report.failed:
                    err.print(f"  failed {failure.file}: {failure.error}", highlight=False)
            except QAError as exc:  # e.g. the vector store is down: log it and try again next round
                err.print(f"{stamp} round {done + 1} failed: {exc}", highlight=False)
            done += 1
            if rounds and done >= rounds:
                return
            time.sleep(max(0.0, interval - (time.perf_counter() - started)))
    except KeyboardInterrupt:
        err.print(f"stopped after {done} rounds", highlight=False)


def _merge(reports: list[IngestReportOut]) -> IngestReportOut:
    """One report for several sources (the index total is the last one's)."""
    merged = IngestReportOut(added=[], replaced=[], unchanged=[], failed=[], chunks_written=0, chunks_total=0)
    for report in reports:
        merged.added += report.added
        merged.replaced += report.replaced
        merged.unchanged += report.unchanged
        merged.failed += report.failed
        merged.duplicate += report.duplicate
        merged.urls += report.urls
        merged.chunks_written += report.chunks_written
        merged.chunks_total = report.chunks_total
    return merged


def _parse_filters(source: str | None, since: str | None, until: str | None):
    from qa.retrieval import Filters

    if source is not None and not source.strip():
        raise _fail("--source must not be empty", 2)
    try:
        return Filters(
            source=source,
            published_from=date.fromisoformat(since) if since else None,
            published_to=date.fromisoformat(until) if until else None,
        )
    except ValueError as exc:
        raise _fail(f"bad date filter: {exc}", 2) from None
    except QAError as exc:
        raise _fail(str(exc), 2) from None


SOURCES = ("short", "full", "none")


def _print_answer(result: AnswerOut, sources: str = "short") -> None:
    """The answer, then its sources: `short` gives title, outlet, date and the quoted sentence; `full` the whole
    passage and where it stands in the article; `none` nothing."""
    style = "yellow" if result.refused else "bold"
    out.print(result.answer, style=style, highlight=False, markup=False)
    if result.notice:
        out.print(f"note: {result.notice}", style="dim", markup=False)
    if sources == "none":
        return
    for c in result.citations:
        if sources == "full":
            out.print(f"\n[cyan][{c.n}][/cyan] {c.title} — {c.source or '?'}, {c.published or 'undated'}"
                      f" (chars {c.start}-{c.end} of {c.doc_id})", highlight=False)
            out.print(f"    {c.text}", highlight=False, markup=False)
            continue
        quote = (c.quote.text if c.quote else "") or c.text
        quote = quote if len(quote) <= 300 else f"{quote[:300].rsplit(' ', 1)[0]}…"
        out.print(f"[cyan][{c.n}][/cyan] {c.title} — {c.source or '?'}, {c.published or 'undated'}", highlight=False)
        out.print(f"    “{quote}”", highlight=False, markup=False, style="dim")
    if result.refused and result.passages:
        out.print("\n[dim]Nearest passages:[/dim]")
        for p in result.passages[:3]:
            out.print(f"  - {p.title} ({p.doc_id}): {p.text[:160]}…", highlight=False, markup=False)


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The question.")],
    k: Annotated[int | None, typer.Option("-k", "--k", min=1, max=50, help="Passages to retrieve.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the JSON object of the API contract.")] = False,
    source: Annotated[str | None, typer.Option(help="Only articles from this source.")] = None,
    since: Annotated[str | None, typer.Option(help="Only articles published on/after YYYY-MM-DD.")] = None,
    until: Annotated[str | None, typer.Option(help="Only articles published on/before YYYY-MM-DD.")] = None,
    conversation: Annotated[str | None, typer.Option("--conversation", help="Continue this conversation id.")] = None,
    sources: Annotated[str, typer.Option(
        "--sources", help="short: title, outlet, date, quoted sentence; full: whole passages; none.")] = "short",
) -> None:
    """Answer one question from the indexed articles, with numbered sources."""
    if sources not in SOURCES:
        raise _fail(f"--sources must be one of {', '.join(SOURCES)}", 2)
    from qa.service import clean_question

    settings = _settings()
    try:  # a bad question is said before the index is looked at
        clean_question(question, settings.max_question_chars)
    except QAError as exc:
        raise _fail(str(exc), 2) from None
    filters = _parse_filters(source, since, until)
    service = _asking_service(settings)
    try:
        result = service.ask(question, k=k, filters=filters, conversation_id=conversation)
    except QAError as exc:
        raise _fail(str(exc), 2 if exc.status_code < 500 else 1) from None
    if as_json:
        sys.stdout.write(json.dumps(result.model_dump(mode="json"), ensure_ascii=False, indent=2) + "\n")
    else:
        _print_answer(result, sources)


def _line_editing(history: Path) -> None:
    """Arrow keys edit the line and walk earlier questions (GNU readline, or libedit on macOS); the history is
    kept between sessions in the data folder. Without readline (Windows), input() still works."""
    try:
        import readline
    except ImportError:  # pragma: no cover - no readline on this platform
        return
    import atexit

    readline.set_history_length(1000)
    with suppress(OSError):  # no history yet
        readline.read_history_file(history)

    def save() -> None:
        with suppress(OSError):  # a read-only data folder: the session still worked
            readline.write_history_file(history)

    atexit.register(save)


def _remember_instead(question: str) -> None:
    """The history keeps the question a typed number stood for, so Up recalls the question itself."""
    try:
        import readline
    except ImportError:  # pragma: no cover - no readline on this platform
        return
    length = readline.get_current_history_length()
    if length:
        readline.replace_history_item(length - 1, question)


@app.command()
def chat(
    sources: Annotated[str, typer.Option(
        "--sources", help="short: title, outlet, date, quoted sentence; full: whole passages; none.")] = "short",
) -> None:
    """An interactive conversation in the terminal (arrow keys edit and recall questions; empty line or Ctrl-D
    to quit)."""
    if sources not in SOURCES:
        raise _fail(f"--sources must be one of {', '.join(SOURCES)}", 2)
    settings = _settings()
    service = _asking_service(settings)
    if sys.stdin.isatty():
        _line_editing(settings.data_dir / "chat_history")
    conversation_id = None
    suggested: list[str] = []
    out.print("Ask about the indexed articles. Up and Down recall earlier questions; a number asks that suggested "
              "question; empty line to quit.")
    while True:
        try:
            question = input("\n> ").strip()
        except (EOFError, KeyboardInterrupt):
            break
        if not question:
            break
        if question.isdigit() and 1 <= int(question) <= len(suggested):
            question = suggested[int(question) - 1]
            out.print(f"> {question}", style="dim", highlight=False, markup=False)
            _remember_instead(question)
        try:
            result = service.ask(question, conversation_id=conversation_id)
        except QAError as exc:
            err.print(f"[red]error:[/red] {exc}")
            continue
        conversation_id = result.conversation_id
        _print_answer(result, sources)
        suggested = result.follow_ups
        if suggested:
            out.print("\nAsk next (type its number):", style="dim", highlight=False)
            for n, follow_up in enumerate(suggested, 1):
                out.print(f"  {n}. {follow_up}", highlight=False, markup=False)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Worker processes (needs QA_CHROMA_URL if >1).")] = 1,
) -> None:
    """Run the HTTP API and chat page."""
    import uvicorn

    settings = _settings()
    if workers > 1 and not settings.chroma_url:
        raise _fail(
            "the embedded Chroma store is not safe across processes; use --workers 1, or run a Chroma server "
            "(`chroma run`) and set QA_CHROMA_URL to serve with several workers", 2,
        )
    _check_port(host, port)
    out.print(f"Serving on http://{host}:{port}  (chat page at /, API docs at /docs)")
    # A worker loading its models on a busy host can miss uvicorn's 5 s liveness ping and be killed in a loop
    # before it ever serves; 30 s still replaces a worker that is really stuck.
    from api.serving import uvicorn_options

    uvicorn.run("api.app:create_app", factory=True, host=host, port=port, workers=workers, log_level="info",
                timeout_worker_healthcheck=30, **uvicorn_options(settings))


def _check_port(host: str, port: int) -> None:
    """Fail before "Serving on …" when the port cannot be bound (busy, or not allowed)."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise _fail(f"cannot serve on {host}: {exc.strerror or exc}", 2) from None
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: TIME_WAIT is no clash
        try:
            probe.bind(address)
        except OSError as exc:
            reason = "is already in use" if exc.errno == errno.EADDRINUSE else f"cannot be used ({exc.strerror})"
            raise _fail(f"port {port} on {host} {reason}: stop what holds it or pass --port", 2) from None


db_app = typer.Typer(no_args_is_help=True, help="The SQL stores (data folder or QA_DATABASE_URL): schema migrations.")
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the schema migrations the SQL stores lack (every process also does this at start, under a lock)."""
    from qa.service import databases
    from qa.store.layout import DataLayout

    settings = _settings()
    found = databases(settings, DataLayout(settings.data_dir).create(), upgrade=False)
    try:
        for database in dict.fromkeys(found.values()):  # PostgreSQL: one database holds every group
            try:
                applied = database.upgrade()
                version = database.revision()
            finally:
                database.close()
            where = "the database (QA_DATABASE_URL)" if database.is_postgres else database.engine.url.database
            shown = f"applied {', '.join(applied)}" if applied else "already up to date"
            out.print(f"{where}: schema version {version}; {shown}")
    except QAError as exc:
        raise _fail(str(exc)) from None


feedback_app = typer.Typer(no_args_is_help=True, help="Readers' thumbs up/down on answers.")
app.add_typer(feedback_app, name="feedback")


@feedback_app.command("export")
def feedback_export(
    folder: Annotated[Path, typer.Argument(help="Folder to write questions.jsonl and review.jsonl into.")],
) -> None:
    """Write the feedback as eval items: `qa eval --data FOLDER` asks the thumbs-up ones again."""
    from qa.conversations.feedback import export
    from qa.service import feedback_store

    settings = _settings()
    try:
        rows = feedback_store(settings).all()
    except QAError as exc:
        raise _fail(str(exc)) from None
    try:
        items, review = export(rows, folder)
    except OSError as exc:
        raise _fail(f"cannot write {folder}: {exc.strerror or exc}") from None
    out.print(f"{items} eval item(s) in {folder / 'questions.jsonl'}, {review} to review in {folder / 'review.jsonl'}")


from eval.command import eval_command  # noqa: E402 - registered last, the module imports lazily

app.command("eval")(eval_command)


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    app()
