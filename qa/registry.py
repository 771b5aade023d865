"""Registries of the parts a stage can be built from (rerankers, rankers, answerers): name -> "module:factory",
imported only when used. Every factory is built from the settings: it is called with the stage's arguments (the
Settings first, or a context holding them) and, as keyword arguments, the part's own options from
QA_PART_OPTIONS (a JSON object keyed by "kind:name"), so a part with options of its own (a model path, a
cut-off) needs its module and one registry line, and no edit anywhere else.
"""

from __future__ import annotations

import inspect
from importlib import import_module
from typing import Any

from pydantic import ValidationError

from qa.config import Settings
from qa.errors import BadRequest


class Registry(dict[str, str]):
    """name -> "module:factory" for one kind of part (the kind names its options: "reranker:name")."""

    def __init__(self, kind: str, entries: dict[str, str]) -> None:
        super().__init__(entries)
        self.kind = kind

    def load(self, name: str) -> Any:
        """The factory registered under `name` (its module imported now)."""
        if name not in self:
            raise BadRequest(f"unknown {self.kind} '{name}' (known: {', '.join(sorted(self))})")
        module, _, attribute = self[name].partition(":")
        return getattr(import_module(module), attribute)

    def options(self, settings: Settings, name: str) -> dict[str, Any]:
        """The part's options: QA_PART_OPTIONS["kind:name"], or none."""
        found = settings.part_options.get(f"{self.kind}:{name}", {})
        if not isinstance(found, dict):
            raise BadRequest(f"QA_PART_OPTIONS['{self.kind}:{name}'] must be a JSON object")
        return found

    def build(self, name: str, settings: Settings, *args: Any) -> Any:
        """The part built by its factory from `args` and its options; an option the factory does not take (or
        one it needs and lacks) is a clear error, before anything is built."""
        factory = self.load(name)
        options = self.options(settings, name)
        try:
            inspect.signature(factory).bind(*args, **options)
        except TypeError as exc:
            raise BadRequest(f"{self.kind} '{name}': {exc} (options come from QA_PART_OPTIONS)") from None
        try:
            return factory(*args, **options)
        except ValidationError as exc:  # a factory that validates its options (pydantic.validate_call, a model)
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first.get("loc", ()))
            raise BadRequest(f"{self.kind} '{name}': option {where}: {first.get('msg', 'invalid')}") from None
