"""The store's configuration, written once next to the data as ``store.json``.

A store holds results of exactly one task: opening it with a different task
digest, shape or weight policy is refused, never silently mixed (the
kronfluence convention of refusing to resume under a changed config).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from protocol.errors import InvalidArgument

__all__ = ["STORE_FORMAT", "StoreConfig"]

STORE_FORMAT = "pacda-result-store/1"
_DIGEST_RE = re.compile(r"^[a-z0-9][a-z0-9-]*:[0-9a-f]+$")


@dataclass(frozen=True, kw_only=True)
class StoreConfig:
    """Identity of a result store.

    Attributes:
        task_digest: the task's ``<alg>:<hex>`` digest (e.g. ``sha256:...``).
        n_items: N, length of every subset.
        n_outputs: Z, outputs per result.
        store_weights: whether the full trained weights are kept (not just
            their digests).
        format: on-disk format tag; only :data:`STORE_FORMAT` is understood.
    """

    task_digest: str
    n_items: int
    n_outputs: int
    store_weights: bool = False
    format: str = STORE_FORMAT

    def __post_init__(self) -> None:
        if not isinstance(self.task_digest, str) or not _DIGEST_RE.match(self.task_digest):
            raise InvalidArgument(
                f"task_digest must look like 'sha256:<hex>', got {self.task_digest!r}"
            )
        for name in ("n_items", "n_outputs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidArgument(f"{name} must be an integer >= 1, got {value!r}")
        if not isinstance(self.store_weights, bool):
            raise InvalidArgument(f"store_weights must be a bool, got {self.store_weights!r}")
        if self.format != STORE_FORMAT:
            raise InvalidArgument(
                f"unsupported store format {self.format!r} (this pacda reads {STORE_FORMAT!r})"
            )

    def to_json(self) -> str:
        """Stable JSON text (sorted keys, one trailing newline)."""
        return json.dumps(asdict(self), sort_keys=True, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, *, source: Path) -> StoreConfig:
        """Parse ``store.json``.

        Raises:
            InvalidArgument: malformed JSON, unknown or missing fields (named).
        """
        try:
            data: Any = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidArgument(f"{source}: not valid JSON ({exc})") from exc
        if not isinstance(data, dict):
            raise InvalidArgument(f"{source}: expected a JSON object")
        known = {"task_digest", "n_items", "n_outputs", "store_weights", "format"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidArgument(f"{source}: unknown field(s) {unknown}")
        missing = sorted({"task_digest", "n_items", "n_outputs", "format"} - set(data))
        if missing:
            raise InvalidArgument(f"{source}: missing field(s) {missing}")
        return cls(**data)

    def mismatches(self, other: StoreConfig) -> list[str]:
        """Human-readable differences ``field: stored X, requested Y``."""
        out = []
        for name in ("task_digest", "n_items", "n_outputs", "store_weights", "format"):
            mine, theirs = getattr(self, name), getattr(other, name)
            if mine != theirs:
                out.append(f"{name}: stored {mine!r}, requested {theirs!r}")
        return out
