"""The Verifier's local record of the challenges it issued, and the delta each audit may spend.

Why a record.  A Prover sees the challenge points before it answers.  A Prover
that ends the session whenever its statistic on those points looks
unfavourable, and then asks for a fresh audit, gets another draw each time: if
every audit spent the same failure probability delta, m tries would let scores
with ``err >= epsilon`` through with probability up to ``m * delta``.

The record.  One JSON line per challenge issued, appended (under an exclusive
``flock``, flushed and fsynced) *before* the challenge leaves the Verifier, so a
crash or a Prover that hangs up cannot erase it::

    {"prover_key": HEX, "attribution_digest": "sha256:...", "task_digest": "sha256:...",
     "challenge_seed_sha256": HEX, "audit": J, "delta": DELTA_J, "time": "...Z"}

Audits of the same scores are counted per ``(Prover public key, attribution
digest)``; the seed itself is not kept (only its hash), so the file tells nothing
about a challenge that a reader could use.

The delta of audit ``j``.  The ``j``-th audit of the same scores by this
Verifier spends

    delta_j = delta / (j (j + 1)),    sum_{j >= 1} delta_j = delta  (telescoping),

so the probability that *any* of the audits this Verifier ever starts of these
scores accepts them when ``err >= epsilon`` is at most ``delta``, however many
times the Prover walks away and asks again.  The first audit spends delta / 2,
the second delta / 6, the third delta / 12.  Every report records ``j``, the
delta it was asked for and the delta it spent.

The record is only as good as its file: a Verifier that deletes it, or audits
the same scores from several machines with different records, loses the
accounting across those records (docs/threat-model.md).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from protocol.errors import InvalidArgument

__all__ = [
    "ChallengeLog",
    "default_challenge_log_path",
    "delta_for_audit",
    "resolve_challenge_log",
]

#: ``AuditConfig.challenge_log`` value for the per-user default file.
DEFAULT = "default"
#: ``AuditConfig.challenge_log`` value (and ``--challenge-log none``) that keeps no record.
NONE = "none"


def delta_for_audit(delta: float, audit: int) -> float:
    """``delta / (j (j + 1))``: what audit ``j`` (1-based) of the same scores may spend.

    Raises:
        InvalidArgument: ``audit < 1`` or ``delta`` outside (0, 1).
    """
    if audit < 1:
        raise InvalidArgument(f"audits are numbered from 1, got {audit}")
    if not 0.0 < delta < 1.0:
        raise InvalidArgument(f"delta must lie in (0, 1), got {delta}")
    return delta / (audit * (audit + 1))


def default_challenge_log_path() -> Path:
    """``$PACDA_HOME/challenges.jsonl``, else ``$XDG_DATA_HOME/pacda/challenges.jsonl``.

    An unset or empty ``XDG_DATA_HOME`` means ``~/.local/share`` (XDG Base Directory spec).
    """
    home = os.environ.get("PACDA_HOME")
    if home:
        return Path(home) / "challenges.jsonl"
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "pacda" / "challenges.jsonl"


def resolve_challenge_log(setting: str | None) -> ChallengeLog | None:
    """The log an ``AuditConfig.challenge_log`` setting names (``None``/``"none"``: no record)."""
    if setting is None or setting == NONE:
        return None
    return ChallengeLog(default_challenge_log_path() if setting == DEFAULT else Path(setting))


@dataclass(frozen=True)
class ChallengeLog:
    """An append-only JSON-lines record of challenges issued (see the module docstring)."""

    path: Path

    @contextmanager
    def _locked(self) -> Iterator[IO[str]]:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 (locked below)
        except OSError as err:
            raise InvalidArgument(
                f"cannot open the challenge log {self.path}: {err.strerror or err}"
            ) from err
        with handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield handle
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    @staticmethod
    def _count(handle: IO[str], prover_key: bytes, attribution_digest: str) -> int:
        handle.seek(0)
        key = prover_key.hex()
        n = 0
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                if not line.endswith("\n"):  # a torn last line (a crash mid-write): it counts
                    n += 1
                    continue
                raise InvalidArgument(
                    f"the challenge log {handle.name} line {number} is not JSON; repair or move it"
                ) from None
            if entry.get("prover_key") == key and entry.get("attribution_digest") == (
                attribution_digest
            ):
                n += 1
        return n

    def audits_started(self, prover_key: bytes, attribution_digest: str) -> int:
        """How many challenges this log records for these scores of this Prover."""
        if not self.path.exists():
            return 0
        with self._locked() as handle:
            return self._count(handle, prover_key, attribution_digest)

    def record(
        self,
        *,
        prover_key: bytes,
        attribution_digest: str,
        task_digest: str,
        challenge_seed: bytes,
        audit: int,
        delta: float,
    ) -> None:
        """Append the challenge of audit ``audit``, durably, before it is sent.

        Raises:
            InvalidArgument: the log now holds a different count for these scores
                (another audit of them started meanwhile: its delta would be
                spent twice), or it cannot be written.
        """
        with self._locked() as handle:
            before = self._count(handle, prover_key, attribution_digest)
            if before != audit - 1:
                raise InvalidArgument(
                    f"another audit of these scores started while this one planned (the "
                    f"challenge log {self.path} now holds {before} before this one, planned "
                    f"for {audit - 1}); run the audit again"
                )
            entry = {
                "prover_key": prover_key.hex(),
                "attribution_digest": attribution_digest,
                "task_digest": task_digest,
                "challenge_seed_sha256": hashlib.sha256(challenge_seed).hexdigest(),
                "audit": audit,
                "delta": delta,
                "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            handle.seek(0, os.SEEK_END)
            handle.write(json.dumps(entry, sort_keys=True) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
