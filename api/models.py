"""Request bodies: validated at the edge so bad input is a 422 with a message, never a 500."""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from qa.retrieval import Filters


class FiltersIn(BaseModel):
    """Restrict which articles may answer."""

    model_config = ConfigDict(extra="forbid")

    source: str | None = Field(None, min_length=1, max_length=200, description="Exact source outlet, e.g. RT.")
    published_from: date | None = Field(None, description="Earliest publication date (YYYY-MM-DD).")
    published_to: date | None = Field(None, description="Latest publication date (YYYY-MM-DD).")

    @field_validator("published_from", "published_to", mode="before")
    @classmethod
    def _iso_date(cls, value: object) -> object:
        """Only YYYY-MM-DD: pydantic alone would also read numbers as Unix timestamps (0 -> 1970-01-01)."""
        if isinstance(value, date) or value is None:
            return value
        if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            raise ValueError("must be a date as YYYY-MM-DD")
        return value

    def to_filters(self) -> Filters:
        return Filters(self.source, self.published_from, self.published_to)


def _json_integer(cls: type, value: object) -> object:
    """A JSON integer (5 or 5.0), not true or "5", which pydantic would otherwise accept (AskIn's and EditIn's k)."""
    if isinstance(value, bool | str):
        raise ValueError("must be an integer")
    return value


class AskIn(BaseModel):
    """A question, optionally continuing a conversation."""

    # The /docs example is a first question: a made-up conversation_id would only ever get a 404.
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"question": "How many Tomahawk missiles did the US fire at the Shayrat Airbase?"}]})

    # No min_length: an empty question gets the same 400 as a blank one, from the service's own check.
    question: str = Field(..., max_length=20_000, description="The question.")
    conversation_id: str | None = Field(
        None, pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="Continue this conversation: the `conversation_id` of an earlier reply (with the same "
                    "X-QA-Client token or qa_client cookie).",
    )
    k: int | None = Field(None, ge=1, le=50, description="How many passages to retrieve.")
    filters: FiltersIn | None = None

    _k_is_json_integer = field_validator("k", mode="before")(_json_integer)


class EditIn(BaseModel):
    """The new question for a kept turn (none: the same question answered again)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"question": "How many Tomahawk missiles did the US fire?"}, {}]})

    question: str | None = Field(None, max_length=20_000,
                                 description="The question in place of the turn's; omit it to regenerate the answer.")
    k: int | None = Field(None, ge=1, le=50, description="How many passages to retrieve.")
    filters: FiltersIn | None = None

    _k_is_json_integer = field_validator("k", mode="before")(_json_integer)


class IngestPathsIn(BaseModel):
    """Files or folders on the server to ingest; each must resolve inside QA_INGEST_ROOT."""

    model_config = ConfigDict(extra="forbid")

    paths: list[Annotated[str, Field(min_length=1, max_length=4096)]] = Field(
        ..., min_length=1, max_length=100,
        description="Paths relative to QA_INGEST_ROOT (or absolute paths inside it); symlinks may not lead out.",
    )


class IngestUrlsIn(BaseModel):
    """Feeds (RSS/Atom), sitemaps (or sitemap indexes) and article pages to fetch and ingest."""

    model_config = ConfigDict(extra="forbid")

    urls: list[Annotated[str, Field(min_length=1, max_length=4096)]] = Field(
        ..., min_length=1, max_length=100,
        description="http(s) URLs; one on a loopback/private/reserved host refuses the whole request (403) "
                    "unless QA_FETCH_ALLOW_PRIVATE=true.",
    )
    wait: bool = Field(False, description="Answer with the report when the ingest is over, instead of 202 and a job.")


class RenameIn(BaseModel):
    """A conversation's new title."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(..., min_length=1, max_length=1000, description="Shown in the list (kept to 200 characters).")


class FeedbackIn(BaseModel):
    """A reader's rating of one answer, with an optional note."""

    model_config = ConfigDict(extra="forbid")

    rating: Literal["up", "down"]
    question: str = Field(..., min_length=1, max_length=20_000)
    answer: str = Field("", max_length=50_000, description="The answer text that was rated.")
    conversation_id: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]{1,64}$")
    note: str | None = Field(None, max_length=2000)
    refused: bool = False
    doc_ids: list[Annotated[str, Field(max_length=300)]] = Field(
        default_factory=list, max_length=50, description="The articles the answer cited."
    )
    evidence: list[Annotated[str, Field(min_length=1, max_length=5000)]] = Field(
        default_factory=list, max_length=50, description="The quotes the answer cited."
    )
