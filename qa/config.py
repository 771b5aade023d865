"""All tunables in one place, read from QA_* environment variables or .env when a command starts."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Service configuration; every field is documented in the README's configuration table."""

    model_config = SettingsConfigDict(env_prefix="QA_", env_file=".env", extra="ignore")

    data_dir: Path = Field(Path("./data"), description="Embedded Chroma, keyword index, documents, chats.")
    chroma_url: str | None = Field(None, description="Chroma server URL; unset means the embedded store.")
    collection: str = Field("news", description="Chroma collection name.")
    database_url: SecretStr | None = Field(
        None, description="PostgreSQL URL (postgresql://user:pass@host:5432/db) for documents, keyword index, "
        "conversations, jobs, ingest progress, the client-token key and the writer lock; unset means SQLite files "
        "in data_dir.",
    )

    embed_provider: str = Field("onnx", description="Offline ONNX MiniLM (onnx) or OpenAI (openai): a name in "
                                "qa.embedding.EMBEDDERS.")
    openai_embed_model: str = Field("text-embedding-3-small", description="Model when embed_provider=openai.")
    embed_batch_size: int = Field(64, ge=1, le=1024, description="Texts per embedding batch (max 1,024 tokens).")
    embed_threads: int = Field(0, ge=0, description="Batches embedded at once, one core each; 0: one per core.")

    chunk_size: int = Field(256, ge=32, le=2048, description="Chunk size in tokens (llama-index splitter).")
    chunk_overlap: int = Field(32, ge=0, le=512, description="Token overlap between neighbouring chunks.")

    retriever: Literal["hybrid", "dense", "bm25"] = Field("hybrid", description="Retrieval strategy.")
    top_k: int = Field(5, ge=1, le=50, description="Passages returned per question.")
    candidates: int = Field(30, ge=1, le=500, description="Candidates each retriever contributes to fusion.")
    rrf_k: int = Field(60, ge=1, description="Reciprocal-rank-fusion constant.")
    dense_weight: float = Field(2.0, ge=0, description="Weight of the dense ranking in fusion.")
    bm25_weight: float = Field(1.0, ge=0, description="Weight of the BM25 ranking in fusion.")
    max_per_article: int = Field(3, ge=0, le=50, description="Passages of one article among the k before every "
                                 "other article's best; its further ones follow the rest (0: no limit).")
    duplicate_overlap: float = Field(0.8, ge=0, le=1, description="Share of a passage's 3-word shingles found in "
                                     "a better-ranked one that makes it a near-identical copy, dropped (0: off).")
    reranker: str = Field("none", description="Reranker applied after fusion (a name in qa.retrieval.RERANKERS).")
    part_options: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Options of pluggable parts, a JSON object keyed by kind:name (e.g. "
        '{"reranker:cross-encoder": {"top_n": 20}}); each is passed to the part\'s factory as keyword arguments.')

    answer_mode: Literal["auto", "extractive", "llm"] = Field(
        "auto", description="auto uses the LLM when one is configured, else extractive."
    )
    sentence_vectors: Literal["separate", "pooled", "lazy", "background"] = Field(
        "background", description="Sentence vectors: each embedded alone at ingest, pooled from the chunk pass at "
        "ingest, (lazy) embedded when an answer first reads them and kept in memory (ingest embeds only chunks), or "
        "(background) as lazy, then embedded and stored by the serving process after the ingest commits.",
    )
    refusal_threshold: float | None = Field(
        None, description="Minimum score of the best sentence to answer (extractive; the learned scorer's "
                          "probability). Unset: the threshold chosen on the tune sets (qa/answering/scorer.json).")
    max_answer_sentences: int = Field(2, ge=1, le=5, description="Sentences in an extractive answer.")

    llm_base_url: str | None = Field(None, description="OpenAI-compatible base URL (vLLM, Ollama, ...).")
    llm_model: str = Field("gpt-4o-mini", description="Chat model name for the LLM answerer.")
    openai_api_key: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("OPENAI_API_KEY", "QA_OPENAI_API_KEY"),
        description="API key for the LLM/embeddings (OPENAI_API_KEY).",
    )
    llm_timeout: float = Field(30.0, gt=0, description="Seconds the LLM may stay silent (connect, each read).")
    llm_deadline: float = Field(20.0, gt=0, le=600, description="Seconds one LLM answer (call or stream) may take "
                                "in all; then the extractive fallback is given.")
    llm_rewrite_deadline: float = Field(5.0, gt=0, le=600, description="Seconds the LLM may take to rewrite a "
                                        "follow-up; then the offline rule is used.")
    llm_max_tokens: int = Field(300, ge=16, le=4096, description="max_tokens asked of the LLM per answer.")
    llm_max_reply_bytes: int = Field(524_288, ge=1024, description="Largest LLM reply read (bytes on the wire).")
    llm_max_retries: int = Field(1, ge=0, le=5, description="Retries on LLM connection errors/5xx.")
    llm_fallback: bool = Field(True, description="Answer extractively with a notice when the LLM fails.")

    api_key: SecretStr | None = Field(None, description="Bearer token required on write endpoints.")
    cors_origins: list[str] = Field(default_factory=list, description="Allowed CORS origins (JSON list).")
    max_upload_bytes: int = Field(2_000_000, ge=1, description="Largest accepted article file.")
    max_question_chars: int = Field(2000, ge=10, description="Longest accepted question.")
    ingest_root: Path | None = Field(None, description="Folder the server may ingest paths from.")
    history_turns: int = Field(10, ge=1, le=100, description="Last turns of a conversation given as context.")
    conversation_turns: int = Field(200, ge=1, le=10_000,
                                    description="Turns of a conversation kept for reopening it (older ones deleted).")
    conversation_retention_days: int = Field(
        30, ge=0, description="Conversations idle for longer are deleted (0: kept for ever).")
    max_conversations_per_client: int = Field(
        100, ge=0, description="A client's new conversation beyond this deletes its least recently used (0: no limit).")
    max_stored_turns: int = Field(
        50_000, ge=0, description="Turns kept in all; beyond, the least recently used conversations are deleted "
                                  "down to 90% of it (0: no limit).")
    max_feedback: int = Field(
        10_000, ge=0, description="Readers' ratings kept; beyond, new ones get a 507 (0: no limit).")

    fetch_allow_private: bool = Field(False, description="Fetch URLs on loopback/private/link-local hosts too.")
    fetch_connect_timeout: float = Field(5.0, gt=0, le=120, description="Seconds to connect to a web host.")
    fetch_timeout: float = Field(15.0, gt=0, le=600, description="Seconds a web host may stay silent mid-response.")
    fetch_total_timeout: float = Field(30.0, gt=0, le=3600, description="Seconds one fetch may take in all.")
    fetch_per_host: int = Field(2, ge=1, le=32, description="Requests in flight to one host at a time.")
    fetch_concurrency: int = Field(8, ge=1, le=64, description="Pages fetched at once.")
    fetch_max_urls: int = Field(1000, ge=1, le=100_000, description="Articles read from one feed or sitemap.")
    header_timeout: float = Field(10.0, gt=0, le=600, description="Seconds a client may take to send a request "
                                  "head (from connecting, or from the end of the last response).")
    keep_alive_timeout: int = Field(5, ge=1, le=600, description="Seconds an idle keep-alive connection is kept.")
    max_connections: int = Field(200, ge=1, le=100_000, description="Connections and requests served at once "
                                 "(per worker process); more get 503.")
    fetch_max_sitemaps: int = Field(50, ge=1, le=10_000,
                                    description="Sitemaps a sitemap index may have read for one URL asked for.")

    @property
    def llm_configured(self) -> bool:
        """True when an LLM endpoint can be called."""
        return bool(self.llm_base_url or self.openai_api_key)

    @property
    def use_llm(self) -> bool:
        """Whether answers come from the LLM."""
        return self.answer_mode == "llm" or (self.answer_mode == "auto" and self.llm_configured)


def load_settings(**overrides: Any) -> Settings:
    """Build settings from the environment, with explicit overrides winning."""
    return Settings(**overrides)
