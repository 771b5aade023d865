"""Conversations: a follow-up is made standalone from the earlier turn, and history survives restarts."""

from __future__ import annotations

from collections.abc import Callable

from qa.conversations import LOCAL_CLIENT, Turn, offline_standalone
from qa.service import Service
from tests.support import sql_rows

COMEY_PROBE = "who was leading a probe into whether the Republican billionaire’s campaign aides colluded"
MEMORANDUM = "Memorandum of Understanding on Flight Safety in Syria that was signed in October 2015"


def evidence_rank(result: dict, evidence: str) -> int | None:
    return next((i for i, p in enumerate(result["passages"], 1) if evidence in p["text"]), None)


def test_follow_up_retrieves_only_because_of_the_first_turn(copy_seeded: Callable[..., Service]) -> None:
    pipeline = copy_seeded()
    alone = pipeline.ask("When had it been signed?", k=5).model_dump()
    assert evidence_rank(alone, MEMORANDUM) is None  # on its own the follow-up cannot find the passage
    first = pipeline.ask("Which agreement did Russia suspend in response to the US missile strike?", k=5).model_dump()
    assert "Memorandum" in first["answer"]
    follow = pipeline.ask("When had it been signed?", k=5, conversation_id=first["conversation_id"]).model_dump()
    assert follow["conversation_id"] == first["conversation_id"]
    assert follow["standalone_question"].endswith("When had it been signed?")
    assert evidence_rank(follow, MEMORANDUM) == 1
    assert "October 2015" in follow["answer"]


def test_who_did_trump_fire_follow_up(copy_seeded: Callable[..., Service]) -> None:
    pipeline = copy_seeded()
    alone = evidence_rank(pipeline.ask("What was he investigating?", k=5).model_dump(), COMEY_PROBE)
    first = pipeline.ask("Who did Trump fire?", k=5).model_dump()
    follow = pipeline.ask("What was he investigating?", k=5, conversation_id=first["conversation_id"]).model_dump()
    assert follow["standalone_question"] == "Who did Trump fire? What was he investigating?"
    assert evidence_rank(follow, COMEY_PROBE) == 1 and (alone is None or alone > 1)
    if not follow["refused"]:  # offline the follow-up may be refused; an answer must come from the passages
        assert all(c["text"] in [p["text"] for p in follow["passages"]] for c in follow["citations"])


def test_history_survives_a_restart(copy_seeded: Callable[..., Service]) -> None:
    first = copy_seeded().ask("Who did Trump fire?").model_dump()
    restarted = copy_seeded()  # a new pipeline on the same data folder
    history = restarted.conversations.history(first["conversation_id"])
    assert [t.question for t in history] == ["Who did Trump fire?"]


def test_history_is_bounded(copy_seeded: Callable[..., Service]) -> None:
    pipeline = copy_seeded(history_turns=2, conversation_turns=3)
    conversation = pipeline.conversations
    for i in range(5):
        conversation.add("c1", Turn(f"q{i}", f"q{i}", f"a{i}"))
    assert [t.question for t in conversation.history("c1")] == ["q3", "q4"]  # the context
    ((rows,),) = sql_rows(conversation, "SELECT COUNT(*) FROM turns WHERE conversation_id='c1'")
    assert rows == 3  # kept for reopening the conversation


def test_a_conversation_reopens_with_more_turns_than_its_context(copy_seeded: Callable[..., Service]) -> None:
    pipeline = copy_seeded()
    assert pipeline.settings.conversation_turns > pipeline.settings.history_turns
    first = pipeline.ask("Who did Trump fire?")
    for i in range(pipeline.settings.history_turns + 1):
        pipeline.ask(f"What was he investigating? ({i})", conversation_id=first.conversation_id)
    turns = pipeline.get_conversation(first.conversation_id, LOCAL_CLIENT).turns
    assert len(turns) == pipeline.settings.history_turns + 2
    assert turns[0].question == "Who did Trump fire?" and turns[0].answer is not None


def test_offline_rule() -> None:
    history = [Turn("Who did Trump fire?", "Who did Trump fire?", "Trump dismissed FBI Director James Comey [1].")]
    assert offline_standalone("What was he investigating?", history) == (
        "Who did Trump fire? What was he investigating?"
    )
    chained = [Turn("q", "Who did Trump fire? What was he investigating?", "a")]
    assert offline_standalone("When did he start it?", chained) == (
        "Who did Trump fire? What was he investigating? When did he start it?"
    )
    longer = [Turn("q", "A? B? C?", "a")]
    assert offline_standalone("And then?", longer) == "B? C? And then?"
    assert offline_standalone("Where is the Shayrat Airbase located in Syria?", history) == (
        "Where is the Shayrat Airbase located in Syria?"
    )
