"""Reasoning crossing to a client of another format: shown where it can be, never passed off as signed.

A signature or encrypted reasoning only means something to the provider that made it. When a stream
crosses formats, this filter removes them from reasoning parts (``keep_text``), or, for a client
whose format accepts reasoning only with a valid signature (Anthropic), removes the reasoning parts
altogether and renumbers the remaining parts so they stay contiguous. Tool-call signatures are not
touched here (``core/signatures.py`` seals them into the call id).
"""

from __future__ import annotations

from dataclasses import replace

from polyroute.core.events import PartStart, SignatureDelta, StreamEvent


class ForeignReasoningFilter:
    """Sans-IO: ``feed()`` one event, get back the events to pass on (zero or one)."""

    __slots__ = ("_dropped", "_keep_text", "_next", "_numbers", "_reasoning")

    def __init__(self, *, keep_text: bool) -> None:
        self._keep_text = keep_text
        self._reasoning: set[int] = set()
        self._dropped: set[int] = set()
        self._numbers: dict[int, int] = {}
        self._next = 0

    def feed(self, event: StreamEvent) -> list[StreamEvent]:
        """The event as the client may see it."""
        index = getattr(event, "index", None)
        if index is None:
            return [event]
        if isinstance(event, PartStart):
            return self._start(event)
        if index in self._dropped:
            return []
        if isinstance(event, SignatureDelta) and index in self._reasoning:
            return []
        if self._keep_text:
            return [event]
        return [replace(event, index=self._numbers.get(index, index))]

    def _start(self, event: PartStart) -> list[StreamEvent]:
        if event.part_kind == "reasoning":
            self._reasoning.add(event.index)
            if not self._keep_text:
                self._dropped.add(event.index)
                return []
            return [replace(event, signature=None, redacted=None)]
        if self._keep_text:
            return [event]
        self._numbers[event.index] = self._next
        self._next += 1
        return [replace(event, index=self._numbers[event.index])]
