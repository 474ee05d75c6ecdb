"""Sessions: one Commit and what follows it, kept by a thread-safe registry with caps and deadlines.

A session goes through three states, each reached once:

1. *committed* — the Commit stream sent its signed commitment;
2. *challenged* — a Challenge fixed the plan; results are filled in point by
   point as they are trained (``done`` marks which);
3. *rooted* — every result is known and the signed Merkle root was built; from
   then on the results are frozen and Open is allowed.

A session is freed (removed from the registry, its memory and spill file
released) when

* its Commit stream breaks off before the commitment (client cancellation or
  disconnect): the session never existed;
* the client closes it (``Close``), e.g. at the end of an audit;
* it has been idle — no call of it in progress — for ``idle_s`` seconds since
  its last call ended (a dropped Challenge stream can be resumed until then);
* it is older than ``lifetime_s`` seconds, whatever it is doing: a running
  stream of it is aborted at its next message.

Only the Verifier that opened a session may use it: Commit hands out a random
32-byte session token with the id, and Challenge, Open and Close must present it.
"""

from __future__ import annotations

import hmac
import math
import os
import secrets
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from protocol.errors import ProverError
from protocol.merkle import HASH_BYTES, MerkleTree, leaf_hash, result_leaf
from protocol.messages import ResultRoot
from prover.service.errors import (
    PermissionDenied,
    ServerBusy,
    SessionExpired,
    SessionStateError,
    UnknownSession,
    show_id,
)
from prover.service.limits import ServiceLimits
from prover.service.plan import ChallengePlan

__all__ = ["TOKEN_BYTES", "Results", "Session", "SessionRegistry", "WeightSpill", "client_of"]

#: Length of a session token (``secrets.token_bytes``).
TOKEN_BYTES = 32


def client_of(peer: str) -> str:
    """The client a peer address belongs to: the address without its port.

    ``ipv4:127.0.0.1:5555`` -> ``ipv4:127.0.0.1``, ``ipv6:[::1]:5555`` ->
    ``ipv6:[::1]`` (gRPC's percent-encoding is undone); anything else
    (``unix:...``, ``""``) is its own client.
    """
    peer = urllib.parse.unquote(peer)  # gRPC writes ipv6:%5B::1%5D:5555
    if peer.startswith(("ipv4:", "ipv6:")) and peer.count(":") >= 2:
        return peer.rsplit(":", 1)[0]
    return peer


class _Tree(MerkleTree):
    """A :class:`MerkleTree` built from its leaf level as one ``bytes`` (no list of leaves)."""

    @classmethod
    def from_level(cls, level: bytes) -> MerkleTree:
        tree = cls.__new__(cls)
        tree._init_levels(level)
        return tree


class WeightSpill:
    """The trained weights of one challenge in an unlinked temporary file, row ``i`` at ``8 P i``.

    Used when the Prover has no result store: the weights must be opened bit for
    bit later, but must not stay in memory.  The file disappears when closed
    (or when the process dies).

    Args:
        n_points: rows.
        directory: where to create the file (default: the system's temp directory).
    """

    def __init__(self, n_points: int, directory: Path | None = None) -> None:
        self.n_points = n_points
        self.n_weights: int | None = None
        # Closed by close() when the session is freed, not at the end of a block.
        self._file = tempfile.TemporaryFile(dir=directory, prefix="pacda-weights-")  # noqa: SIM115
        self._lock = threading.Lock()

    def write(self, indices: NDArray[np.int64], rows: NDArray[np.float64]) -> None:
        """Store float64 ``rows`` ``(n, P)`` at the given point indices."""
        rows = np.ascontiguousarray(rows, dtype="<f8")
        with self._lock:
            if self._file.closed:
                return
            if self.n_weights is None:
                self.n_weights = int(rows.shape[1])
            fd, size = self._file.fileno(), 8 * self.n_weights
            for i, row in zip(indices.tolist(), rows, strict=True):
                os.pwrite(fd, row.tobytes(), i * size)

    def read(self, index: int) -> bytes:
        """Float64 little-endian bytes of row ``index``.

        Raises:
            ProverError: nothing was stored, or the spill was closed.
        """
        with self._lock:
            if self._file.closed or self.n_weights is None:
                raise ProverError("no weights kept for this session")
            size = 8 * self.n_weights
            raw = os.pread(self._file.fileno(), size, index * size)
        if len(raw) != size:
            raise ProverError(f"weights of point {index} were never stored")
        return raw

    def close(self) -> None:
        """Delete the file."""
        with self._lock:
            self._file.close()


@dataclass
class Results:
    """The results of one challenge, filled in as points are trained.

    Memory per point (:meth:`ServiceLimits.point_bytes`): committed outputs,
    weight digest and done flag from the start (zero-filled pages, resident
    only once written), the Merkle tree's levels once the root is built.
    Weights live in the result store or in ``spill``.

    Attributes:
        plan: the challenge.
        outputs: float64 ``(n_points, Z)``; meaningful where ``done``.
        weight_digests: uint8 ``(n_points, 32)``.
        done: bool ``(n_points,)``.
        spill: the weights of a Prover without a result store, else None.
        tree: the Merkle tree once every point is done.
        root: the signed root once built (the results are frozen from then on).
    """

    plan: ChallengePlan
    outputs: NDArray[np.float64]
    weight_digests: NDArray[np.uint8]
    done: NDArray[np.bool_]
    spill: WeightSpill | None = None
    tree: MerkleTree | None = None
    root: ResultRoot | None = None

    @classmethod
    def empty(cls, plan: ChallengePlan, n_outputs: int, spill: WeightSpill | None) -> Results:
        """No point done yet (``np.zeros``: pages are allocated lazily)."""
        n = plan.n_points
        return cls(
            plan=plan,
            outputs=np.zeros((n, n_outputs)),
            weight_digests=np.zeros((n, 32), dtype=np.uint8),
            done=np.zeros(n, dtype=bool),
            spill=spill,
        )

    def build_tree(self) -> MerkleTree:
        """The RFC 6962 tree over every point's :func:`protocol.merkle.result_leaf`.

        Leaf hashes go straight into one buffer (32 bytes per point) that
        becomes the tree's bottom level; no list of leaves is built.
        """
        n = self.plan.n_points
        level = bytearray(n * HASH_BYTES)
        for i in range(n):
            leaf = result_leaf(i, self.outputs[i], self.weight_digests[i].tobytes())
            level[i * HASH_BYTES : (i + 1) * HASH_BYTES] = leaf_hash(leaf)
        return _Tree.from_level(bytes(level))


@dataclass
class Session:
    """One audit session (see the module docstring).

    Attributes:
        session_id: 32 hex characters from ``secrets.token_hex(16)``.
        token: the secret that proves a call comes from the session's Verifier.
        client: the peer host that opened it (:func:`client_of`).
        mode: ``"committed"`` or ``"paper"``.
        attribution_digest: the committed digest.
        created: monotonic time of the Commit.
        last_active: monotonic time the last call of it started or ended.
        active: calls of it in progress.
        reserved: bytes of memory budget its results hold.
        freed: why it was freed (None while it lives); running streams stop on it.
        committed: the commitment was sent.
        results: set by the first Challenge.
        lock: guards the fields above.
    """

    session_id: str
    token: bytes
    client: str
    mode: str
    attribution_digest: str
    created: float
    last_active: float
    active: int = 0
    reserved: int = 0
    freed: str | None = None
    committed: bool = False
    results: Results | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def check_alive(self) -> None:
        """Raise :class:`SessionExpired` if the session was freed."""
        if self.freed is not None:
            raise SessionExpired(f"session {show_id(self.session_id)} {self.freed}")

    def start_challenge(
        self,
        plan: ChallengePlan,
        n_outputs: int,
        *,
        reserve: Callable[[str, int], None],
        spill: Callable[[int], WeightSpill | None],
    ) -> Results:
        """Fix the plan on the first call; later calls must bring the same plan (a resume).

        Args:
            plan: the validated challenge.
            n_outputs: Z.
            reserve: ``reserve(client, nbytes)`` takes the results' memory from the
                budget (may raise ServerBusy); called before anything is allocated.
            spill: makes the weight spill of ``n_points`` points (or None).

        Raises:
            SessionStateError: no completed commitment yet, or a replayed session
                (already challenged with a different seed or plan).
            ServerBusy: the memory budget cannot hold the results.
            SessionExpired: the session was freed.
        """
        with self.lock:
            self.check_alive()
            if not self.committed:
                raise SessionStateError(
                    f"session {show_id(self.session_id)} has no completed commitment"
                )
            if self.results is None:
                nbytes = plan.n_points * ServiceLimits.point_bytes(n_outputs)
                reserve(self.client, nbytes)
                self.reserved = nbytes
                self.results = Results.empty(plan, n_outputs, spill(plan.n_points))
            elif self.results.plan != plan:
                raise SessionStateError(
                    f"replayed session: session {show_id(self.session_id)} was already "
                    "challenged with a different seed or plan"
                )
            return self.results

    def rooted(self) -> Results:
        """The frozen results.

        Raises:
            SessionStateError: the results' root has not been sent yet.
        """
        with self.lock:
            self.check_alive()
            results = self.results
        if results is None or results.root is None:
            raise SessionStateError(
                f"session {show_id(self.session_id)} has no results root yet; "
                "Open is allowed only after the Challenge stream ended with its root"
            )
        return results


class SessionRegistry:
    """Thread-safe map from session id to :class:`Session`, with caps, deadlines and a budget.

    Args:
        max_sessions: most sessions at once (all clients).
        max_per_client: most sessions at once per client (:func:`client_of`).
        idle_s: free a session idle (no call in progress) this long.
        lifetime_s: free a session this long after its Commit.
        max_memory_bytes: budget of all sessions' results (:meth:`ServiceLimits.point_bytes`).
        max_client_memory_bytes: budget of one client's sessions' results.
        clock: monotonic seconds (tests may pass their own).
    """

    def __init__(
        self,
        *,
        max_sessions: int,
        max_per_client: int | None = None,
        idle_s: float = math.inf,
        lifetime_s: float = math.inf,
        max_memory_bytes: int | None = None,
        max_client_memory_bytes: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max = max_sessions
        self._max_per_client = max_per_client if max_per_client is not None else max_sessions
        self.idle_s = idle_s
        self.lifetime_s = lifetime_s
        self._budget = max_memory_bytes
        self._client_budget = max_client_memory_bytes
        self._client_memory: dict[str, int] = {}
        self._clock = clock
        self._sessions: dict[str, Session] = {}
        self._per_client: dict[str, int] = {}
        self._memory = 0
        self._lock = threading.Lock()
        self._listeners: list[Callable[[], None]] = []
        self.n_expired = 0
        self.n_freed = 0

    # ----------------------------------------------------------- observers
    def add_listener(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` (no lock held) whenever sessions are created or freed."""
        self._listeners.append(callback)

    def _changed(self) -> None:
        for callback in list(self._listeners):
            callback()

    @property
    def full(self) -> bool:
        """No new session can be created for a new client."""
        with self._lock:
            return len(self._sessions) >= self._max

    @property
    def memory_bytes(self) -> int:
        """Memory budget held by all sessions' results."""
        with self._lock:
            return self._memory

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)

    # ----------------------------------------------------------- lifecycle
    def create(self, *, mode: str, attribution_digest: str, client: str = "") -> Session:
        """A new session with a fresh random id and token.

        Raises:
            ServerBusy: ``max_sessions`` sessions exist, or ``max_per_client`` of ``client``.
        """
        self.expire()
        with self._lock:
            if len(self._sessions) >= self._max:
                raise ServerBusy(
                    f"too many sessions: this Prover keeps at most {self._max}; "
                    f"idle sessions are freed after {self.idle_s:g} s"
                )
            if self._per_client.get(client, 0) >= self._max_per_client:
                raise ServerBusy(
                    f"too many sessions from {client[:60]}: this Prover keeps at most "
                    f"{self._max_per_client} per client; close finished sessions or wait "
                    f"{self.idle_s:g} s for idle ones to be freed"
                )
            session_id = secrets.token_hex(16)
            while session_id in self._sessions:  # pragma: no cover - 128 random bits
                session_id = secrets.token_hex(16)
            now = self._clock()
            session = Session(
                session_id=session_id,
                token=secrets.token_bytes(TOKEN_BYTES),
                client=client,
                mode=mode,
                attribution_digest=attribution_digest,
                created=now,
                last_active=now,
                active=1,  # its Commit stream
            )
            self._sessions[session_id] = session
            self._per_client[client] = self._per_client.get(client, 0) + 1
        self._changed()
        return session

    def get(self, session_id: str) -> Session:
        """The live session ``session_id``.

        Raises:
            UnknownSession: no such session (or it was freed).
        """
        self.expire()
        with self._lock:
            session = self._sessions.get(session_id)
        if session is None:
            raise UnknownSession(f"unknown session {show_id(session_id)}")
        return session

    def authorize(self, session_id: str, token: bytes) -> Session:
        """The session, if ``token`` is its token.

        Raises:
            UnknownSession: no such session.
            PermissionDenied: the token is not the session's.
        """
        session = self.get(session_id)
        if not hmac.compare_digest(session.token, bytes(token)):
            raise PermissionDenied(
                f"session {show_id(session_id)} belongs to the client that opened it: "
                "the session token is missing or wrong"
            )
        return session

    @contextmanager
    def activity(self, session: Session) -> Iterator[Session]:
        """Count a call of ``session`` as in progress (it does not go idle meanwhile)."""
        with session.lock:
            session.check_alive()
            session.active += 1
            session.last_active = self._clock()
        try:
            yield session
        finally:
            self.end_call(session)

    def end_call(self, session: Session) -> None:
        """A call of ``session`` ended (its idle clock starts when none is left)."""
        with session.lock:
            session.active -= 1
            session.last_active = self._clock()

    def reserve(self, client: str, nbytes: int) -> None:
        """Take ``nbytes`` from the memory budget, in total and of ``client``.

        Raises:
            ServerBusy: the budget cannot hold them.
        """
        mib = 1 << 20
        with self._lock:
            if self._budget is not None and self._memory + nbytes > self._budget:
                raise ServerBusy(
                    f"not enough memory: this challenge needs {nbytes / mib:.1f} MiB of session "
                    f"state; {(self._budget - self._memory) / mib:.1f} MiB of the Prover's "
                    f"{self._budget / mib:.1f} MiB are free"
                )
            mine = self._client_memory.get(client, 0)
            if self._client_budget is not None and mine + nbytes > self._client_budget:
                raise ServerBusy(
                    f"not enough memory: this challenge needs {nbytes / mib:.1f} MiB of session "
                    f"state; {(self._client_budget - mine) / mib:.1f} MiB of the "
                    f"{self._client_budget / mib:.1f} MiB per client are free"
                )
            self._memory += nbytes
            self._client_memory[client] = mine + nbytes

    def discard(self, session_id: str, reason: str = "was closed") -> bool:
        """Free a session (no-op if absent); True if it was there."""
        with self._lock:
            session = self._sessions.pop(session_id, None)
            if session is None:
                return False
            self._per_client[session.client] -= 1
            if not self._per_client[session.client]:
                del self._per_client[session.client]
        self.n_freed += 1  # under no lock: a hint for housekeeping, not an exact count
        with session.lock:
            session.freed = reason
            self._memory_release(session)
            results = session.results
            spill = results.spill if results is not None else None
        if spill is not None:
            spill.close()
        self._changed()
        return True

    def clear(self, reason: str = "was freed: the Prover stopped") -> int:
        """Free every session; returns how many."""
        with self._lock:
            ids = list(self._sessions)
        return sum(self.discard(sid, reason) for sid in ids)

    def _memory_release(self, session: Session) -> None:
        with self._lock:
            self._memory -= session.reserved
            left = self._client_memory.get(session.client, 0) - session.reserved
            if left > 0:
                self._client_memory[session.client] = left
            else:
                self._client_memory.pop(session.client, None)
        session.reserved = 0

    def expire(self) -> int:
        """Free every session past its idle deadline or lifetime; returns how many."""
        now = self._clock()
        doomed: list[tuple[str, str]] = []
        with self._lock:
            sessions = list(self._sessions.values())
        for s in sessions:
            with s.lock:
                if now - s.created > self.lifetime_s:
                    doomed.append((s.session_id, f"expired (lifetime {self.lifetime_s:g} s)"))
                elif s.active <= 0 and now - s.last_active > self.idle_s:
                    doomed.append((s.session_id, f"expired (idle for {self.idle_s:g} s)"))
        n = sum(self.discard(sid, reason) for sid, reason in doomed)
        self.n_expired += n
        return n

    def next_deadline(self) -> float | None:
        """Seconds until the next session may expire (None: no session)."""
        now = self._clock()
        with self._lock:
            sessions = list(self._sessions.values())
        best: float | None = None
        for s in sessions:
            with s.lock:
                t = s.created + self.lifetime_s
                if s.active <= 0:
                    t = min(t, s.last_active + self.idle_s)
            best = t - now if best is None else min(best, t - now)
        return best
