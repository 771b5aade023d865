"""Follow-up questions made standalone: offline by a documented rule, or by the LLM when one is configured
(the offline rule is its fallback). Independent of which answerer answers."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Protocol

from qa.conversations.store import Turn
from qa.errors import AnswererUnavailable
from qa.lexicon import FOLLOW_UP_CUE_PATTERN, REFERRING_NOUNS, REFERRING_WORDS

_FOLLOW_UP = re.compile(
    rf"\b({'|'.join(sorted(REFERRING_WORDS))}|the ({'|'.join(sorted(REFERRING_NOUNS))}))\b", re.I
)
_CUE = re.compile(FOLLOW_UP_CUE_PATTERN, re.I)
_SENTENCE_END = re.compile(r"(?<=[?.!])\s+")
_MARKER = re.compile(r"\[\d+\]")
# How much of the previous turn a follow-up carries (offline), and how much longer than the question an LLM's
# rewrite may be: a conversation never grows its standalone question turn after turn.
CONTEXT_CHARS = 400
REWRITE_EXTRA_CHARS = 1000

REWRITE_PROMPT = """Rewrite the user's last question so it can be understood without the conversation.
Replace pronouns with the names they refer to. Reply with the rewritten question only."""


class QuestionRewriter(Protocol):
    """A question and the conversation so far -> the question to search and answer."""

    def standalone(self, question: str, history: list[Turn]) -> str: ...


def is_follow_up(question: str) -> bool:
    """A question that leans on an earlier turn: it uses a pronoun, a bare 'the meeting'-style reference, or a
    cue that points back without a pronoun ("in response", "then", "what about Iran?")."""
    return bool(_FOLLOW_UP.search(question) or _CUE.search(question)) or len(question.split()) <= 3


def offline_standalone(question: str, history: list[Turn]) -> str:
    """The documented offline rule: a follow-up is prefixed with the previous question (itself kept to its
    last two sentences), so "What was he investigating?" after "Who did Trump fire?" is searched and scored
    as "Who did Trump fire? What was he investigating?". The carried part is at most CONTEXT_CHARS (its end,
    cut at a word), so after any number of turns the standalone question is the question plus that."""
    if not history or not is_follow_up(question):
        return question
    previous = " ".join(_SENTENCE_END.split(history[-1].standalone.strip())[-2:])
    if len(previous) > CONTEXT_CHARS:
        tail = previous[-CONTEXT_CHARS:]
        previous = tail.split(" ", 1)[1] if " " in tail else tail
    return f"{previous} {question}" if previous else question


def llm_messages(question: str, history: list[Turn]) -> list[dict[str, str]]:
    """Messages asking an LLM to make a follow-up standalone."""
    lines = [f"Q: {t.standalone}\nA: {_MARKER.sub('', t.answer)[:600]}" for t in history[-3:]]
    user = "Conversation:\n" + "\n".join(lines) + f"\n\nLast question: {question}"
    return [{"role": "system", "content": REWRITE_PROMPT}, {"role": "user", "content": user}]


class OfflineRewriter:
    """The offline rule above."""

    def standalone(self, question: str, history: list[Turn]) -> str:
        return offline_standalone(question, history)


class LLMRewriter:
    """Asks the model to rewrite the follow-up; an unusable or unavailable reply falls back to the rule."""

    def __init__(self, complete: Callable[..., str]) -> None:
        self.complete = complete

    def standalone(self, question: str, history: list[Turn]) -> str:
        if not history:
            return question
        try:
            rewritten = self.complete(llm_messages(question, history), max_tokens=100).strip()
            if rewritten and len(rewritten) <= min(4 * len(question) + 400, len(question) + REWRITE_EXTRA_CHARS):
                return rewritten
        except AnswererUnavailable:
            pass  # the offline rule below is the fallback
        return offline_standalone(question, history)
