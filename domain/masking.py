"""Masking: secret values never reach a stored line.

Every value registered here (a secret param's value, anything a step passes to
``ctx.mask``) is replaced by ``***`` in each later line's message, logger name
and fields, in progress messages and in the step's error, before anything is
numbered or stored. The mask has one length whatever the secret's, and a
multi-line secret is also masked line by line (a traceback or a wrapped log
line may hold a piece of it).
"""

from __future__ import annotations

from steptrail.domain.definitions import MASK


class Masker:
    def __init__(self) -> None:
        self._needles: tuple[str, ...] = ()  # longest first: a longer secret masks whole

    def __bool__(self) -> bool:
        return bool(self._needles)

    def add(self, value: str) -> None:
        parts = {value, *(line.strip() for line in value.splitlines())}
        needles = {n for n in parts if n} | set(self._needles)
        # replaced whole, never appended to: readers on other threads see
        # the old tuple or the new one
        self._needles = tuple(sorted(needles, key=len, reverse=True))

    def text(self, text: str) -> str:
        for needle in self._needles:
            if needle in text:
                text = text.replace(needle, MASK)
        return text
