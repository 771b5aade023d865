"""The `qa` command: ingest, ask, chat, serve, eval."""

from __future__ import annotations

import json
import sys
import time
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


def _service(settings: Settings) -> Service:
    from qa.service import build_service

    try:
        service = build_service(settings)
        service.startup()
        return service
    except QAError as exc:
        raise _fail(str(exc)) from None


@app.command()
def ingest(
    paths: Annotated[list[Path] | None, typer.Argument(help="Files or folders (default: seeds/).")] = None,
    reset: Annotated[bool, typer.Option(help="Delete the whole index first (e.g. after changing model).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Clean, chunk, embed and index articles; unchanged articles are skipped."""
    from rich.progress import Progress

    from qa.sources import FileSource, open_targets

    settings = _settings()
    sources = open_targets([str(p) for p in (paths or [DEFAULT_SEEDS])], settings)
    missing = [str(p) for s in sources if isinstance(s, FileSource) for p in s.paths if not p.exists()]
    if missing:
        raise _fail(f"no such file or folder: {', '.join(missing)}", 2)
    if reset:
        from qa.service import reset_index

        reset_index(settings)
    service = _service(settings)
    started = time.perf_counter()
    reports = []
    try:
        with Progress(console=err, transient=True, disable=as_json) as bar:
            task = bar.add_task("ingesting", total=sum(s.count() for s in sources))
            for source in sources:
                reports.append(service.ingest(source, progress=lambda _name: bar.advance(task)))
    except QAError as exc:
        raise _fail(str(exc)) from None
    report = _merge(reports)
    elapsed = time.perf_counter() - started
    if as_json:
        out.print_json(json.dumps({**report.model_dump(mode="json", exclude_none=True), "seconds": round(elapsed, 2)}))
    else:
        out.print(
            f"added {len(report.added)}, replaced {len(report.replaced)}, unchanged {len(report.unchanged)}, "
            f"failed {len(report.failed)} documents; {report.chunks_written} chunks written, "
            f"{report.chunks_total} in the index ({elapsed:.1f} s)"
        )
        for failure in report.failed:
            err.print(f"[yellow]skipped[/yellow] {failure.file}: {failure.error}", highlight=False)
    if report.failed and not (report.added or report.replaced or report.unchanged):
        raise typer.Exit(1)


def _merge(reports: list[IngestReportOut]) -> IngestReportOut:
    """One report for several sources (the index total is the last one's)."""
    merged = IngestReportOut(added=[], replaced=[], unchanged=[], failed=[], chunks_written=0, chunks_total=0)
    for report in reports:
        merged.added += report.added
        merged.replaced += report.replaced
        merged.unchanged += report.unchanged
        merged.failed += report.failed
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


def _print_answer(result: AnswerOut) -> None:
    style = "yellow" if result.refused else "bold"
    out.print(result.answer, style=style, highlight=False, markup=False)
    if result.notice:
        out.print(f"note: {result.notice}", style="dim", markup=False)
    for c in result.citations:
        out.print(f"\n[cyan][{c.n}][/cyan] {c.title} — {c.source or '?'}, {c.published or 'undated'}"
                  f" (chars {c.start}-{c.end} of {c.doc_id})", highlight=False)
        out.print(f"    {c.text}", highlight=False, markup=False)
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
) -> None:
    """Answer one question from the indexed articles, with numbered sources."""
    filters = _parse_filters(source, since, until)
    service = _service(_settings())
    try:
        result = service.ask(question, k=k, filters=filters, conversation_id=conversation)
    except QAError as exc:
        raise _fail(str(exc), 2 if exc.status_code < 500 else 1) from None
    if as_json:
        sys.stdout.write(json.dumps(result.model_dump(mode="json"), ensure_ascii=False, indent=2) + "\n")
    else:
        _print_answer(result)


@app.command()
def chat() -> None:
    """An interactive conversation in the terminal (empty line or Ctrl-D to quit)."""
    service = _service(_settings())
    conversation_id = None
    out.print("Ask about the indexed articles. Empty line to quit.")
    while True:
        try:
            question = input("\n> ").strip()
        except (EOFError, KeyboardInterrupt):
            break
        if not question:
            break
        try:
            result = service.ask(question, conversation_id=conversation_id)
        except QAError as exc:
            err.print(f"[red]error:[/red] {exc}")
            continue
        conversation_id = result.conversation_id
        _print_answer(result)


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
    out.print(f"Serving on http://{host}:{port}  (chat page at /, API docs at /docs)")
    # A worker loading its models on a busy host can miss uvicorn's 5 s liveness ping and be killed in a loop
    # before it ever serves; 30 s still replaces a worker that is really stuck.
    uvicorn.run("api.app:create_app", factory=True, host=host, port=port, workers=workers, log_level="info",
                timeout_worker_healthcheck=30)


feedback_app = typer.Typer(no_args_is_help=True, help="Readers' thumbs up/down on answers.")
app.add_typer(feedback_app, name="feedback")


@feedback_app.command("export")
def feedback_export(
    folder: Annotated[Path, typer.Argument(help="Folder to write questions.jsonl and review.jsonl into.")],
) -> None:
    """Write the feedback as eval items: `qa eval --data FOLDER` asks the thumbs-up ones again."""
    from qa.conversations.feedback import FeedbackStore, export
    from qa.store.layout import DataLayout

    settings = _settings()
    rows = FeedbackStore(DataLayout(settings.data_dir).create().conversations).all()
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
