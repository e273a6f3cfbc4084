"""Masking secret values in everything pipelinekit writes: logs, errors, events, the store.

A secret is replaced by ``****`` wherever it appears. A multi-line secret is also masked line by
line, so that a key printed one line at a time never leaks either.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["MASK", "Masker"]

MASK = "****"
#: Lines of a multi-line secret shorter than this are not masked on their own: masking every
#: "-----" or "}" in the logs would hide more than it protects.
_MIN_LINE = 4


class Masker:
    """The secrets of one execution, and the masking of text that may contain them."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        """Start with ``secrets`` registered."""
        self._secrets: set[str] = set()
        self._ordered: list[str] = []
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str) -> None:
        """Register a secret value; empty values are ignored."""
        pieces = {secret} if secret else set()
        if "\n" in secret:
            pieces |= {
                line.strip() for line in secret.splitlines() if len(line.strip()) >= _MIN_LINE
            }
        if pieces - self._secrets:
            self._secrets |= pieces
            # Longest first, so that a secret containing another is masked whole.
            self._ordered = sorted(self._secrets, key=len, reverse=True)

    def __bool__(self) -> bool:
        return bool(self._secrets)

    def mask(self, text: str) -> str:
        """``text`` with every registered secret replaced by ``****``."""
        for secret in self._ordered:
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    def mask_value(self, value: Any) -> Any:  # noqa: ANN401 - masks whatever shape it is given
        """Mask strings, also inside mappings, lists and tuples; other values pass unchanged."""
        if not self._secrets:
            return value
        if isinstance(value, str):
            return self.mask(value)
        if isinstance(value, Mapping):
            return {key: self.mask_value(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self.mask_value(item) for item in value)
        return value
