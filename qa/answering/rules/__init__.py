"""Answering rules, one per question form or assertion, each reading the parsed Question
(qa.answering.question) and a sentence, and returning a verdict: whether a yes/no answer may be said
outright, whether two figures are values of the same measure of the same subject. Word lists a rule needs
are data files beside it. Each rule has unit tests (sentence in, verdict out) in tests/test_rules.py."""
