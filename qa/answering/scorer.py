"""The learned sentence scorer: a logistic regression over the features of a candidate sentence, its weights
fitted on the tune sets by `python -m eval.fit_scorer` and committed as scorer.json beside this file. Serving
applies them with numpy (no scikit-learn import); the score is the probability that the sentence is the
evidence, and the refusal threshold chosen by the same fit applies to the best sentence's score."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

WEIGHTS = Path(__file__).with_name("scorer.json")
# What each candidate sentence is described by (qa.answering.extractive computes them in this order).
FEATURES = (
    "cosine_question",  # MiniLM cosine between the question and the sentence
    "cosine_passage",  # MiniLM cosine between the question and its passage (mean of the passage's sentences)
    "term_overlap",  # share of the question's content terms the sentence repeats
    "bm25",  # idf-weighted share of the question's terms (idf over the candidate sentences)
    "follow_up_overlap",  # share of a follow-up's own terms (0 without a conversation)
    "answer_type",  # 1 when the sentence holds the kind of answer asked (amount, date, person in a role ...)
    "entity_overlap",  # share of the names the question asks about that the sentence names (1 when none)
    "predicate_coverage",  # share of what a yes/no or why question asks that the sentence speaks of
    "reason",  # why questions: 1 for a reason given outright, 0.5 for a weaker cue
    "describes",  # description questions: 1 for a verb of describing, 0.5 for a copula with an evaluation
    "correction",  # the sentence corrects an earlier report
    "position",  # 1 / (1 + the sentence's place in its passage)
    "article_lead",  # the sentence opens its article
    "passage_rank",  # 1 / (1 + the passage's retrieval rank)
    "date_rank",  # 1 / (1 + the passage's place by publication date, newest first)
    "cosine_gap",  # cosine_question minus the best cosine_question among the candidates
    "cosine_rank",  # 1 / (1 + the sentence's place by cosine_question among the candidates)
    "typed_cosine",  # cosine_question when the sentence holds the asked kind of answer, else 0
    "typed_bm25",  # bm25 when the sentence holds the asked kind of answer, else 0
)


@dataclass(frozen=True)
class Scorer:
    """Standardise, weigh, add the intercept, squash: the fitted model as plain arrays."""

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    threshold: float

    @classmethod
    def from_json(cls, data: dict) -> Scorer:
        if list(data["features"]) != list(FEATURES):
            raise ValueError(f"{WEIGHTS.name} was fitted on other features; re-run python -m eval.fit_scorer")
        return cls(np.asarray(data["mean"], dtype=np.float32), np.asarray(data["scale"], dtype=np.float32),
                   np.asarray(data["coef"], dtype=np.float32), float(data["intercept"]), float(data["threshold"]))

    def score(self, rows: np.ndarray) -> np.ndarray:
        """The probability that each row's sentence answers the question."""
        if len(rows) == 0:
            return np.zeros(0, dtype=np.float32)
        logits = ((rows - self.mean) / self.scale) @ self.coef + self.intercept
        return 1.0 / (1.0 + np.exp(-logits))


@lru_cache(maxsize=1)
def load() -> Scorer:
    """The committed weights (read once per process)."""
    return Scorer.from_json(json.loads(WEIGHTS.read_text("utf-8")))
