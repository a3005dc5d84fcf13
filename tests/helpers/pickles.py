"""Pickle payloads for the tests that check dtif refuses to unpickle arbitrary objects."""

from __future__ import annotations

from pathlib import Path
from typing import Any


class Payload:
    """What an attacker would put in a checkpoint: unpickling it runs ``touch(marker)``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


class Innocent:
    """Any custom class instance, even harmless, is a pickle payload."""
