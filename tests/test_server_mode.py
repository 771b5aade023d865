"""The compose topology as plain processes: a real `chroma run` server and two API processes (one of them
`qa serve --workers 2`) sharing one data folder. Ingest through one, ask through the other, continue a
conversation across both, delete on one and see it gone on the other, restart everything and find the
data still there. Also: the embedded store refuses several workers with a message pointing to server mode.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from tests.support import ROOT, SEEDS, api_server, chroma_server, qa_env

pytestmark = pytest.mark.server

API_KEY = "server-mode-key"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
MISSILES = "How many Tomahawk missiles did the US fire at the Shayrat Airbase?"
MISSILES_DOC = "000_9a3c7f577db017be"


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found.extend(int(c) for c in (task / "children").read_text().split())
    return found


def test_embedded_store_refuses_several_workers(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "qa.cli", "serve", "--port", "9", "--workers", "2"],
        cwd=ROOT, env=qa_env(tmp_path / "data"), capture_output=True, text=True, timeout=60,
    )
    message = " ".join(result.stderr.split())
    assert result.returncode == 2, result.stderr
    assert "QA_CHROMA_URL" in message and "chroma run" in message, message
    assert "--workers 1" in message
    assert not (tmp_path / "data" / "chroma").exists()  # refused before touching the store


class Topology:
    """`chroma run` + `qa serve` (1 worker) + `qa serve --workers 2` on one data folder; restartable."""

    def __init__(self, root: Path) -> None:
        self.data_dir, self.chroma_dir = root / "data", root / "chroma"
        self.data_dir.mkdir()
        self._stack = ExitStack()
        self.chroma = self.single = self.multi = ""

    def start(self) -> None:
        self.chroma, _ = self._stack.enter_context(chroma_server(self.chroma_dir))
        env = {"QA_CHROMA_URL": self.chroma, "QA_API_KEY": API_KEY}
        self.single = self._stack.enter_context(api_server(self.data_dir, workers=1, **env))
        self.multi = self._stack.enter_context(api_server(self.data_dir, workers=2, **env))

    def stop(self) -> None:
        self._stack.close()
        self._stack = ExitStack()


@pytest.fixture(scope="module")
def topology(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    servers = Topology(tmp_path_factory.mktemp("server-mode"))
    try:
        servers.start()
        yield servers
    finally:
        servers.stop()


CLIENT: dict[str, str] = {}  # the X-QA-Client token the first answer issued: one API client throughout


def _ask(url: str, question: str, conversation_id: str | None = None) -> dict:
    body = {"question": question, **({"conversation_id": conversation_id} if conversation_id else {})}
    response = httpx.post(f"{url}/ask", json=body, headers=CLIENT, timeout=60)
    assert response.status_code == 200, response.text
    if "x-qa-client" in response.headers:
        CLIENT["X-QA-Client"] = response.headers["x-qa-client"]
    return response.json()


def test_ingest_on_one_worker_answer_on_the_other(topology: Topology) -> None:
    for url in (topology.single, topology.multi):
        health = httpx.get(f"{url}/health", timeout=30).json()
        assert health["store"] == "server" and health["status"] == "ok"

    files = [("files", (p.name, p.read_bytes(), "text/plain")) for p in sorted(SEEDS.glob("*.txt"))]
    assert httpx.post(f"{topology.single}/documents", files=files, timeout=120).status_code == 401
    response = httpx.post(f"{topology.single}/documents", files=files, headers=AUTH, timeout=300)
    assert response.status_code == 201, response.text
    assert len(response.json()["added"]) == 5

    health = httpx.get(f"{topology.multi}/health", timeout=30).json()
    assert health["documents"] == 5 and health["vectors"] == health["chunks"] > 0
    for _ in range(4):  # new connections, so both of the multi-worker server's processes get requests
        result = _ask(topology.multi, MISSILES)
        assert not result["refused"] and "59" in result["answer"], result["answer"]
        assert result["citations"][0]["doc_id"] == MISSILES_DOC
        assert any("bm25" in p["ranks"] for p in result["passages"])  # this process loaded the new BM25
        assert any("dense" in p["ranks"] for p in result["passages"])


def _cmdline(pid: Path) -> bytes:
    try:
        return (pid / "cmdline").read_bytes()
    except OSError:
        return b""


def test_multi_worker_server_runs_two_processes(topology: Topology) -> None:
    port = topology.multi.rsplit(":", 1)[1].encode()
    servers = [int(p.name) for p in Path("/proc").iterdir()
               if p.name.isdigit() and b"--port\x00" + port + b"\x00--workers\x002" in _cmdline(p)]
    assert len(servers) == 1
    assert len(_children(servers[0])) >= 2


def test_conversation_continues_across_workers(topology: Topology) -> None:
    first = _ask(topology.single, "Who did Trump fire?")
    conversation = first["conversation_id"]
    alone = _ask(topology.multi, "What was he investigating?")
    assert alone["standalone_question"] == "What was he investigating?"  # no history: nothing to resolve
    follow_up = _ask(topology.multi, "What was he investigating?", conversation)
    assert follow_up["conversation_id"] == conversation
    assert "Trump" in follow_up["standalone_question"], follow_up["standalone_question"]
    third = _ask(topology.single, "When did that happen?", conversation)
    assert third["standalone_question"] != "When did that happen?"


def test_delete_on_one_worker_is_seen_by_the_other(topology: Topology) -> None:
    before = _ask(topology.single, MISSILES)
    assert MISSILES_DOC in {p["doc_id"] for p in before["passages"]}
    response = httpx.delete(f"{topology.multi}/documents/{MISSILES_DOC}", headers=AUTH, timeout=60)
    assert response.status_code == 200, response.text
    after = _ask(topology.single, MISSILES)  # dense (Chroma) and keyword (reloaded BM25) both forget it
    assert MISSILES_DOC not in {p["doc_id"] for p in after["passages"]}
    assert httpx.get(f"{topology.single}/documents/{MISSILES_DOC}", timeout=30).status_code == 404
    assert httpx.get(f"{topology.multi}/health", timeout=30).json()["documents"] == 4


def test_data_survives_a_restart_of_every_process(topology: Topology) -> None:
    """`docker compose down && up` as processes: stop Chroma and both APIs, start them on the same folders."""
    conversation = _ask(topology.multi, "Who did Trump fire?")["conversation_id"]
    topology.stop()
    topology.start()
    health = httpx.get(f"{topology.single}/health", timeout=30).json()
    assert health["documents"] == 4 and health["vectors"] == health["chunks"] > 0
    follow_up = _ask(topology.multi, "What was he investigating?", conversation)
    assert "Trump" in follow_up["standalone_question"], follow_up["standalone_question"]
    result = _ask(topology.single, "Who is Vladimir Putin's press spokesman?")
    assert "Peskov" in result["answer"] or result["refused"]  # its article was deleted above
    result = _ask(topology.single, "How many safe zones does the Astana agreement set up in Syria?")
    assert not result["refused"] and "four" in result["answer"].lower(), result["answer"]
