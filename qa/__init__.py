"""News QA: cited answers over news articles, offline by default."""

__version__ = "0.1.0"
