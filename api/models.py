"""Request bodies: validated at the edge so bad input is a 422 with a message, never a 500."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, ConfigDict, Field

from qa.retrieve import Filters


class FiltersIn(BaseModel):
    """Restrict which articles may answer."""

    model_config = ConfigDict(extra="forbid")

    source: str | None = Field(None, min_length=1, max_length=200, description="Exact source outlet, e.g. RT.")
    published_from: date | None = Field(None, description="Earliest publication date (YYYY-MM-DD).")
    published_to: date | None = Field(None, description="Latest publication date (YYYY-MM-DD).")

    def to_filters(self) -> Filters:
        return Filters(self.source, self.published_from, self.published_to)


class AskIn(BaseModel):
    """A question, optionally continuing a conversation."""

    model_config = ConfigDict(extra="forbid")

    question: str = Field(..., min_length=1, max_length=20_000, description="The question.")
    conversation_id: str | None = Field(
        None, pattern=r"^[A-Za-z0-9_-]{1,64}$", description="Continue this conversation (from an earlier reply)."
    )
    k: int | None = Field(None, ge=1, le=50, description="How many passages to retrieve.")
    filters: FiltersIn | None = None
