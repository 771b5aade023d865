"""The stage seams: a part plugs in with a module and a registry line; stages import only what they may;
the keyword index lives in the SQL store's transaction; the typed contract is what every route declares."""

from __future__ import annotations

import ast
import shutil
import sqlite3
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import qa.answering
import qa.retrieval
from api.app import create_app
from qa.answering import AnswerChain, AnswerContext, build_answerer
from qa.errors import BadRequest, EmbedderUnavailable
from qa.service import Service, build_service
from tests.conftest import make_settings
from tests.fake_llm import FakeLLM, Reply
from tests.plugins.noop_reranker import NoopReranker
from tests.support import ROOT, sql_rows

QUESTION = "How many Tomahawk missiles did the US fire at the Shayrat Airbase?"


def test_a_reranker_plugs_in_with_one_module_and_one_registry_line(
    copy_seeded: Callable[..., Service], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(qa.retrieval.RERANKERS, "noop", "tests.plugins.noop_reranker:NoopReranker")
    default = copy_seeded().ask(QUESTION)
    NoopReranker.calls = 0
    service = copy_seeded(reranker="noop", part_options={"reranker:noop": {"label": "from settings"}})
    assert service.retriever.reranker.label == "from settings"  # type: ignore[attr-defined]
    reranked = service.ask(QUESTION)
    assert NoopReranker.calls == 1
    assert [p.chunk_id for p in reranked.passages] == [p.chunk_id for p in default.passages]
    assert reranked.answer == default.answer


def test_a_part_option_its_factory_does_not_take_is_a_clear_error(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(qa.retrieval.RERANKERS, "noop", "tests.plugins.noop_reranker:NoopReranker")
    settings = make_settings(tmp_path, reranker="noop", part_options={"reranker:noop": {"lable": "typo"}})
    with pytest.raises(BadRequest, match="reranker 'noop': got an unexpected keyword argument 'lable'"):
        qa.retrieval.RERANKERS.build("noop", settings, settings)
    assert qa.retrieval.RERANKERS.build("none", settings, settings).name == "none"


def test_a_source_type_plugs_in_with_one_module_and_one_registry_line(
    copy_seeded: Callable[..., Service], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI's ingest path (open, check, bind, count, ingest) takes a new type with no edit of its own."""
    import qa.sources
    from qa.cli import _run_ingest
    from tests.plugins.memo_source import claims, open_memos

    monkeypatch.setattr(qa.sources, "SOURCE_TYPES", [qa.sources.SourceType("memo", claims, open_memos),
                                                     *qa.sources.SOURCE_TYPES])
    service = copy_seeded()
    sources = qa.sources.open_targets(["memo:Zebra|The zebra summit in Quuxville ended with a pact."], service.settings)
    for source in sources:
        source.check()
    report = _run_ingest(service, sources, as_json=True)
    assert report.added == ["memo-zebra"] and service.get_document("memo-zebra").title == "Zebra"
    with pytest.raises(BadRequest, match="memo:Title"):
        qa.sources.open_targets(["memo:no bar"], service.settings)[0].check()


def test_every_source_type_follows_the_lifecycle_and_nothing_switches_on_it() -> None:
    """Each source class has every Source method; the service and the CLI never ask which class a source is."""
    import qa.sources
    from qa.sources.lifecycle import Source

    methods = [n for n in vars(Source) if not n.startswith("_")] + ["name", "remote"]
    classes = [qa.sources.FileSource, qa.sources.UploadSource, qa.sources.UrlSource]
    for cls in classes:
        assert all(hasattr(cls, m) for m in methods), (cls, [m for m in methods if not hasattr(cls, m)])
    names = {cls.__name__ for cls in classes}
    for path in (ROOT / "qa" / "service.py", ROOT / "qa" / "cli.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "isinstance":
                assert not names & {n.id for n in ast.walk(node.args[1]) if isinstance(n, ast.Name)}, path


def test_create_app_is_a_short_wiring_function() -> None:
    """Routes live in api/routers/ (one module per resource); create_app only wires them (at most 60 lines)."""
    tree = ast.parse((ROOT / "api" / "app.py").read_text())
    create = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "create_app")
    assert create.end_lineno - create.lineno + 1 <= 60
    assert not [n for n in ast.walk(create) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
                and n is not create], "no routes or handlers defined inside create_app"


def test_an_unknown_reranker_is_a_clear_error(copy_seeded: Callable[..., Service]) -> None:
    with pytest.raises(Exception, match="unknown reranker 'nope'"):
        copy_seeded(reranker="nope")


def test_the_fallback_chain_hands_over_with_a_notice(
    copy_seeded: Callable[..., Service], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(qa.answering.ANSWERERS, "down", "tests.plugins.unavailable_answerer:build")
    service = copy_seeded()
    context = AnswerContext(service.settings, service.docs, service.indexer.embedder)
    service.answerer = AnswerChain([build_answerer("down", context), build_answerer("extractive", context)])
    result = service.ask(QUESTION)
    assert result.mode == "extractive" and "59 Tomahawk" in result.answer
    assert result.notice == "the down service is down — showing an extractive answer from the articles instead."
    events = list(service.stream(QUESTION))
    assert events[0][0] == "sources" and events[-1][0] == "done"
    assert events[-1][1].answer == result.answer and events[-1][1].notice == result.notice
    assert "".join(d.text for e, d in events if e == "token") == result.answer
    service.answerer = AnswerChain([build_answerer("down", context)])
    assert [e for e, _ in service.stream(QUESTION)][-1] == "error"


# Which stage may import which (the rule each package's __init__ docstring states).
FORBIDDEN = {
    "sources": ("qa.store", "qa.indexing", "qa.retrieval", "qa.answering", "qa.conversations", "qa.service"),
    "store": ("qa.indexing", "qa.retrieval", "qa.answering", "qa.conversations", "qa.service", "qa.embedding"),
    "embedding": ("qa.sources", "qa.store", "qa.indexing", "qa.retrieval", "qa.answering", "qa.service"),
    "indexing": ("qa.retrieval", "qa.answering", "qa.conversations", "qa.service"),
    "retrieval": ("qa.answering", "qa.indexing", "qa.conversations", "qa.service"),
    "answering": ("qa.conversations", "qa.service", "qa.sources.files", "qa.sources.uploads"),
    "conversations": ("qa.answering", "qa.retrieval", "qa.store", "qa.indexing", "qa.service"),
    # language analysis without domain knowledge: no other qa package at all
    "text": ("qa.sources", "qa.store", "qa.embedding", "qa.indexing", "qa.retrieval", "qa.answering",
             "qa.conversations", "qa.service", "qa.lexicon", "qa.config", "qa.errors", "qa.contract"),
}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


@pytest.mark.parametrize("stage", sorted(FORBIDDEN))
def test_stages_import_only_what_they_may(stage: str) -> None:
    for path in sorted((ROOT / "qa" / stage).glob("*.py")):
        bad = sorted(n for n in _imports(path) if n.startswith(FORBIDDEN[stage]))
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}"
    assert ast.get_docstring(ast.parse((ROOT / "qa" / stage / "__init__.py").read_text())), "stage docstring"


def test_the_registry_module_imports_no_stage() -> None:
    """qa.registry sits below every stage that keeps a registry (retrieval, answering): config and errors only."""
    assert {n for n in _imports(ROOT / "qa" / "registry.py") if n.startswith("qa.")} <= {"qa.config", "qa.errors"}


def test_lexicon_and_lower_stages_never_import_the_service() -> None:
    for path in (ROOT / "qa").rglob("*.py"):
        if path.name in ("service.py", "cli.py"):
            continue
        assert "qa.service" not in _imports(path), path


def _keyword_rows(service: Service) -> dict[str, int]:
    """Chunks per article in the keyword index (tantivy), as it stands after replaying the change feed."""
    return dict(Counter(chunk_id.split(":", 1)[0] for chunk_id in service.docs.keyword.chunk_ids()))


def _segments(service: Service) -> set[str]:
    return {p.stem for p in service.layout.keyword_index.glob("*.idx")}


def test_keyword_index_changes_in_place_with_the_article(copy_seeded: Callable[..., Service], tmp_path: Path) -> None:
    """An ingest or delete touches only its article's keyword rows; nothing is rebuilt: the change feed
    advances by one per change and the segments holding the other articles stay as they were."""
    service = copy_seeded()
    service.startup()
    before, segments = _keyword_rows(service), _segments(service)
    generation, seq = service.docs.keyword_head()
    assert sum(before.values()) == service.docs.count()[1] and segments
    (tmp_path / "zebra.txt").write_text("Zebra summit\n\nThe zebra summit in Quuxville ended with a pact on stripes.")
    assert service.ingest_paths([tmp_path / "zebra.txt"]).added == ["zebra"]
    assert _keyword_rows(service) == {**before, "zebra": 1}
    assert service.docs.keyword_head() == (generation, seq + 1)
    assert segments <= _segments(service)  # every other chunk keeps its keyword row where it was
    assert service.retriever.retrieve("Quuxville stripes pact", 1, mode="bm25").passages[0].doc_id == "zebra"
    service.delete("zebra")
    assert _keyword_rows(service) == before and service.docs.keyword_head() == (generation, seq + 2)
    assert service.retriever.retrieve("Quuxville stripes pact", 3, mode="bm25").passages == []


OLD_SCHEMA = """
CREATE TABLE documents (doc_id TEXT PRIMARY KEY, title TEXT NOT NULL, source TEXT, published TEXT, url TEXT,
  path TEXT, text TEXT NOT NULL, content_hash TEXT NOT NULL, n_chunks INTEGER NOT NULL, embed_model TEXT NOT NULL,
  indexed_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP);
CREATE TABLE chunks (chunk_id TEXT PRIMARY KEY, doc_id TEXT NOT NULL, idx INTEGER NOT NULL, start INTEGER NOT NULL,
  "end" INTEGER NOT NULL);
CREATE INDEX chunks_doc ON chunks(doc_id);
CREATE TABLE sentences (doc_id TEXT NOT NULL, start INTEGER NOT NULL, "end" INTEGER NOT NULL, vector BLOB NOT NULL,
  PRIMARY KEY (doc_id, start));
CREATE TABLE pending (doc_id TEXT PRIMARY KEY);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO meta VALUES ('generation', '7');
"""


def test_a_store_from_before_the_fts_index_is_migrated(seeded_dir: Path, tmp_path: Path) -> None:
    """A data folder written by the previous release (bm25s files beside the docstore) keeps working."""
    data_dir = tmp_path / "data"
    shutil.copytree(seeded_dir, data_dir)
    new = sqlite3.connect(data_dir / "docstore.sqlite")
    docs = new.execute("SELECT doc_id, title, source, published, url, path, text, content_hash, n_chunks, embed_model,"
                       " indexed_at FROM documents").fetchall()  # the old release's columns (no `author`)
    chunks = new.execute('SELECT chunk_id, doc_id, idx, start, "end" FROM chunks').fetchall()
    spans = new.execute('SELECT doc_id, start, "end", vector FROM spans WHERE kind=\'sentence\'').fetchall()
    new.close()
    (data_dir / "docstore.sqlite").unlink()
    old = sqlite3.connect(data_dir / "docstore.sqlite")
    old.executescript(OLD_SCHEMA)
    old.executemany(f"INSERT INTO documents VALUES ({','.join('?' * len(docs[0]))})", docs)
    old.executemany("INSERT INTO chunks VALUES (?,?,?,?,?)", chunks)
    old.executemany("INSERT INTO sentences VALUES (?,?,?,?)", spans)
    old.commit()
    old.close()
    service = build_service(make_settings(data_dir))
    assert service.docs.count() == (5, len(chunks))
    assert service.get_document(docs[0][0]).author is None  # the column added since, empty for old articles
    assert sum(_keyword_rows(service).values()) == len(chunks)
    result = service.ask(QUESTION)
    assert "59 Tomahawk" in result.answer and not result.refused
    assert service.retriever.retrieve("Tomahawk cruise missiles", 1, mode="bm25").passages


def test_openapi_declares_every_response_body(copy_seeded: Callable[..., Service]) -> None:
    with TestClient(create_app(copy_seeded().settings)) as client:
        spec = client.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    assert {"AnswerOut", "CitationOut", "PassageOut", "DocumentOut", "DocumentList", "IngestReportOut", "HealthOut",
            "ErrorOut", "DeletedOut"} <= set(schemas)
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            responses = operation["responses"]
            ok = [code for code in responses if code.startswith("2")]
            assert ok, f"{method} {path}: no success response"
            content = responses[ok[0]].get("content", {})
            assert "text/event-stream" in content or content["application/json"]["schema"], (method, path)
            errors = [code for code in responses if code[0] in "45"]
            assert "500" in errors, f"{method} {path}: errors {errors}"
            for code in errors:
                schema = responses[code]["content"]["application/json"]["schema"]
                refs = [s["$ref"] for s in schema.get("anyOf", [schema])]
                assert {r.rsplit("/", 1)[1] for r in refs} <= {"ErrorOut", "IngestReportOut", "HealthOut"}, (path, code)
                assert "ErrorOut" in str(refs) or code == "503", (path, code)


def test_docs_page_needs_no_internet(copy_seeded: Callable[..., Service]) -> None:
    with TestClient(create_app(copy_seeded().settings)) as client:
        page = client.get("/docs")
        assert page.status_code == 200
        sources = [s for s in page.text.split('"') if s.endswith((".js", ".css"))]
        assert sources and all(s.startswith("/") for s in sources), sources
        for asset in sources:
            response = client.get(asset)
            assert response.status_code == 200 and len(response.content) > 1000, asset
        assert "http://" not in page.text.replace("http://127.0.0.1", "") and "https://" not in page.text
        redoc = client.get("/redoc")
        assert redoc.status_code == 200 and "https://" not in redoc.text


def test_an_embedding_service_outage_is_a_503(tmp_path: Path) -> None:
    with FakeLLM() as server:
        settings = make_settings(tmp_path / "data", embed_provider="openai", llm_base_url=server.url,
                                 openai_api_key="sk-test", llm_max_retries=0, llm_timeout=2)
        server.replies.extend([Reply(status=500), Reply(status=500)])
        with pytest.raises(EmbedderUnavailable, match="HTTP 500"):
            build_service(settings).retriever.retrieve(QUESTION, 3)
        with TestClient(create_app(settings)) as client:
            response = client.post("/ask", json={"question": QUESTION})
    assert response.status_code == 503
    assert response.json() == {"error": "the embedding service returned HTTP 500"}


def test_a_programming_error_is_not_reported_as_llm_unavailable(copy_seeded: Callable[..., Service]) -> None:
    """Only the model server's failures fall back; a bug in our code surfaces (a 500 over HTTP)."""
    from qa.answering.llm import ChatModel, LLMAnswerer

    class BrokenClient:
        class chat:  # mimics the openai client
            class completions:
                @staticmethod
                def create(**_kwargs: object) -> None:
                    raise TypeError("a bug")

    service = copy_seeded()
    service.answerer = AnswerChain([LLMAnswerer(ChatModel(BrokenClient(), "m")), service.answerer.answerers[0]])
    with pytest.raises(TypeError, match="a bug"):
        service.ask(QUESTION)


FTS5_TABLES = """
CREATE VIRTUAL TABLE chunk_terms USING fts5(terms, content='', tokenize="unicode61 remove_diacritics 0 tokenchars '_'");
CREATE VIRTUAL TABLE chunk_terms_df USING fts5vocab(chunk_terms, 'row');
CREATE VIRTUAL TABLE chunk_terms_postings USING fts5vocab(chunk_terms, 'instance');
INSERT INTO chunk_terms(rowid, terms) SELECT id, 'old terms' FROM chunks;
INSERT INTO meta VALUES ('analyzer', 'snowball-english+bm25s-stopwords:2'), ('terms', '99');
"""


def test_a_store_with_the_fts5_keyword_index_upgrades_in_place(seeded_dir: Path, tmp_path: Path) -> None:
    """A data folder of the release that kept BM25 in SQLite FTS5: the FTS5 tables go, the tantivy index is
    built from the stored chunks on first start, and keyword search finds what it found before."""
    data_dir = tmp_path / "data"
    shutil.copytree(seeded_dir, data_dir)
    shutil.rmtree(data_dir / "keyword-index")
    old = sqlite3.connect(data_dir / "docstore.sqlite")
    old.executescript(FTS5_TABLES + "DROP TABLE alembic_version;")  # that release had no migration record
    old.commit()
    old.close()
    service = build_service(make_settings(data_dir))
    service.startup()
    tables = {r[0] for r in sql_rows(service.docs, "SELECT name FROM sqlite_master")}
    assert not {t for t in tables if t.startswith("chunk_terms")}
    assert sum(_keyword_rows(service).values()) == service.docs.count()[1] > 0
    hit = service.retriever.retrieve("Tomahawk cruise missiles Shayrat", 1, mode="bm25").passages[0]
    assert "Tomahawk" in hit.text
