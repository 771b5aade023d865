"""Language analysis with no domain knowledge: which language a text is in, the figures a sentence gives
with their units and qualifiers. Used by answering (qa.answering.question, qa.answering.rules).

May import: the standard library and third-party libraries only (lingua, price-parser), never another qa
package: nothing here knows about articles, stores, retrieval or answers.
"""
