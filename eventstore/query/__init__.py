"""Query strings for the event store: Lucene syntax parsed once into a typed tree (``ast``),
translated per backend (``sqlite`` for the embedded store)."""

from eventstore.query.lucene import DEFAULT_FIELD, DEFAULT_OPERATOR, parse

__all__ = ["DEFAULT_FIELD", "DEFAULT_OPERATOR", "parse"]
