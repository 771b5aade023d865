"""Stage 6, conversations: the turns of each conversation (in a database of the SQL layer: SQLite or
PostgreSQL) and the rewriting of follow-ups into standalone questions (offline rule, or the LLM when configured);
readers' feedback on answers (feedback.py).

May import: qa.errors, qa.config, qa.db. The LLM rewriter gets a `complete` callable from the service; it does not
import the answering stage.
"""

from qa.conversations.rewrite import LLMRewriter, OfflineRewriter, QuestionRewriter, offline_standalone
from qa.conversations.store import LOCAL_CLIENT, Conversations, ConversationStore, Limits, Turn

__all__ = ["LOCAL_CLIENT", "ConversationStore", "Conversations", "LLMRewriter", "Limits", "OfflineRewriter",
           "QuestionRewriter", "Turn", "offline_standalone"]
