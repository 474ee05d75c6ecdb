"""The Prover's protocol logic as plain Python: domain requests in, domain messages out.

:class:`ProverHandlers` implements the four RPCs of ``pacda.v1.Prover``
(``protos/pacda/v1/prover.proto``) on domain objects (:mod:`protocol.messages`);
the gRPC servicer only converts messages (:mod:`protocol.messages_proto`).  Each
method validates its request completely before it yields anything and raises
errors of the one hierarchy (:mod:`protocol.errors`, :mod:`prover.service.errors`),
which :mod:`prover.service.status` maps to gRPC status codes.

Training goes through :func:`prover.executors.run` with the Prover's result
store, so a restarted Prover or a resumed stream never trains a run twice.
Openings must carry the exact weights whose digests were committed, and
retraining reproduces weights only within the task's ``weight_tolerance``
(batch composition changes the last bits), so the weights of every challenge
run are kept: in the store (which must keep weights) or, without a store, in
the session's spill file (:class:`~prover.service.session.WeightSpill`, on disk,
never in memory).  Sessions live under the caps and deadlines of
:class:`~prover.service.limits.ServiceLimits` (:mod:`prover.service.session`);
the servicer checks a request's session token (:meth:`ProverHandlers.authorize`)
before it calls :meth:`~ProverHandlers.challenge`, :meth:`~ProverHandlers.open`
or :meth:`~ProverHandlers.close`.
Signed statements (canonical JSON, Ed25519; ``docs/wire.md``) are built by
:func:`protocol.signing.commitment_statement` and :func:`protocol.signing.root_statement`.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from protocol.canonical_json import canonical_json
from protocol.digests import attribution_digest
from protocol.errors import InvalidArgument, ProverError
from protocol.hypercube import check_p
from protocol.merkle import MerkleTree
from protocol.messages import (
    AttributionCommitment,
    AttributionHeader,
    AttributionValues,
    ChallengeRequest,
    CommitItem,
    Opening,
    ResultBatch,
    ResultItem,
    ResultRoot,
    TaskDescription,
)
from protocol.scores import Scores
from protocol.signing import commitment_statement, root_statement
from protocol.taskspec import pacda_version
from prover.executors import Executor, TaskSource, resolve_task, run
from prover.executors.base import device_of
from prover.service.errors import UnknownSession, show_id
from prover.service.limits import ServiceLimits
from prover.service.plan import plan_from_request
from prover.service.policy import HonestPolicy, ResultPolicy
from prover.service.session import Results, Session, SessionRegistry, WeightSpill
from prover.service.signer import Signer
from prover.store import ResultStore
from prover.tasks.base import Task

__all__ = ["EMPTY_WEIGHT_DIGEST", "MODES", "ProverHandlers", "ServiceStats"]

log = logging.getLogger("prover.service")

#: Protocol modes this Prover serves (docs/design.md §2); both use the same message order.
MODES: tuple[str, ...] = ("committed", "paper")
#: Weight digest of a model without trained parameters (P = 0): SHA-256 of b"".
EMPTY_WEIGHT_DIGEST = hashlib.sha256(b"").digest()


@dataclass
class ServiceStats:
    """Training done on behalf of clients (counted in distinct runs).

    Attributes:
        n_trained: runs trained for Challenge streams.
        n_from_store: runs of Challenge streams read back from the store.
        n_opened_retrained: runs retrained to recover weights for Open.
    """

    n_trained: int = 0
    n_from_store: int = 0
    n_opened_retrained: int = 0


class ProverHandlers:
    """The honest (by default) Prover of one task and one set of committed scores.

    Args:
        source: the task, or a picklable factory of it (for remote executors).
        task_toml: the task file text, sent by DescribeTask.
        scores: the attributions to commit; must be for this task.
        signer: the Prover's Ed25519 key.
        store: a writable result store of the task that keeps weights
            (``store_weights=True``), or None (results and weights then live
            only in the session's memory).
        executor: where to train (default: in this process).
        limits: caps and chunk sizes.
        policy: hook to alter answers (adversarial Provers); default honest.
        p: the inclusion probability challenges must use; default: the task spec's ``p``.
        spill_dir: directory of the weight spill files of a Prover without a store
            (default: the system's temp directory).

    Raises:
        InvalidArgument: the scores are for another task or shape, the store
            keeps no weights, or no ``p`` is known for a task without a spec.
    """

    def __init__(
        self,
        *,
        source: TaskSource,
        task_toml: str,
        scores: Scores,
        signer: Signer,
        store: ResultStore | None = None,
        executor: Executor | None = None,
        limits: ServiceLimits | None = None,
        policy: ResultPolicy | None = None,
        p: float | None = None,
        spill_dir: Path | None = None,
    ) -> None:
        self.task = resolve_task(source)
        self.task_p = _task_p(self.task) if p is None else check_p(p)
        self._source = source
        scores.check_task(self.task.digest, n_items=self.task.n_items)
        if scores.n_outputs != self.task.n_outputs:
            raise InvalidArgument(
                f"scores have Z={scores.n_outputs} outputs, the task has Z={self.task.n_outputs}"
            )
        if store is not None and not store.config.store_weights:
            raise InvalidArgument(
                f"result store {store.path} keeps only weight digests; the Prover needs "
                "store_weights=True to open spot checks with the exact committed weights"
            )
        self.task_toml = task_toml
        self.scores = scores
        self.signer = signer
        self.store = store
        self.executor = executor
        self.device = device_of(executor)  # announced in every Commit header
        self.limits = limits if limits is not None else ServiceLimits()
        self.policy = policy if policy is not None else HonestPolicy()
        lim = self.limits
        self.sessions = SessionRegistry(
            max_sessions=lim.max_sessions,
            max_per_client=lim.max_sessions_per_client,
            idle_s=lim.session_idle_s,
            lifetime_s=lim.session_lifetime_s,
            max_memory_bytes=lim.max_memory_bytes,
            max_client_memory_bytes=lim.max_client_memory_bytes,
        )
        self.spill_dir = spill_dir
        self.stats = ServiceStats()
        self._train_lock = threading.Lock()  # one training job at a time (the store has one writer)
        self._matrix = np.concatenate([scores.theta0[:, None], scores.theta], axis=1).reshape(-1)
        self.attribution_digest = attribution_digest(scores.theta0, scores.theta)

    # ----------------------------------------------------------- DescribeTask
    def describe(self) -> TaskDescription:
        """The task, its digest, the Prover's version, public key and modes."""
        return TaskDescription(
            task_toml=self.task_toml,
            task_digest=self.task.digest,
            pacda_version=pacda_version(),
            prover_public_key=self.signer.public_key,
            modes=MODES,
        )

    # ----------------------------------------------------------------- Commit
    def commit(self, task_digest: str, mode: str, client: str = "") -> Iterator[CommitItem]:
        """Open a session and stream the attribution matrix, then the signed commitment.

        Args:
            task_digest: must be this Prover's.
            mode: one of :data:`MODES`.
            client: who asks (:func:`prover.service.session.client_of` of the peer);
                counts against ``max_sessions_per_client``.

        Raises:
            InvalidArgument: another task digest, or an unknown mode.
            ServerBusy: too many sessions, in total or of this client.
        """
        if task_digest != self.task.digest:
            raise InvalidArgument(
                f"task digest mismatch: this Prover serves {self.task.digest}, "
                f"the request names {task_digest[:80]!r}"
            )
        if mode not in MODES:
            raise InvalidArgument(f"unknown mode {mode[:40]!r}; this Prover serves {list(MODES)}")
        session = self.sessions.create(
            mode=mode, attribution_digest=self.attribution_digest, client=client
        )
        try:
            yield AttributionHeader(
                session_id=session.session_id,
                session_token=session.token,
                n_outputs=self.scores.n_outputs,
                n_items=self.scores.n_items,
                method=self.scores.method,
                meta_json=canonical_json(dict(self.scores.meta)).decode("utf-8"),
                device_class=self.device.device_class,
                device_name=self.device.description,
            )
            step = self.limits.values_per_chunk
            for offset in range(0, self._matrix.size, step):
                session.check_alive()
                yield AttributionValues(offset=offset, values=self._matrix[offset : offset + step])
            signature = self.signer.sign(
                commitment_statement(
                    session_id=session.session_id,
                    task_digest=self.task.digest,
                    attribution_digest=self.attribution_digest,
                    mode=mode,
                )
            )
            with session.lock:
                session.check_alive()
                session.committed = True
            yield AttributionCommitment(
                attribution_digest=self.attribution_digest, signature=signature
            )
        finally:
            if not session.committed:  # the stream broke off: the session never existed
                self.sessions.discard(session.session_id, "was never committed")
            else:
                self.sessions.end_call(session)

    # ------------------------------------------------------- authorize, close
    def authorize(self, session_id: str, token: bytes) -> Session:
        """The session ``session_id`` if ``token`` is the token its Commit handed out.

        Raises:
            UnknownSession: no such session (never created, closed or expired).
            PermissionDenied: the token is missing or wrong.
        """
        return self.sessions.authorize(session_id, token)

    def close(self, session_id: str) -> None:
        """Free a session and everything it holds (its token was checked by the caller).

        Raises:
            UnknownSession: no such session.
        """
        if not self.sessions.discard(session_id, "was closed by its client"):
            raise UnknownSession(f"unknown session {show_id(session_id)}")

    # -------------------------------------------------------------- Challenge
    def challenge(self, request: ChallengeRequest) -> Iterator[ResultItem]:
        """Train the challenge points, stream their results from ``start_point``, then the root.

        The first Challenge of a session fixes its plan; a later one with the
        same seed and plan is a resume (nothing is trained again), one with a
        different seed or plan is refused.

        Raises:
            UnknownSession: no such session (``SessionExpired``: it was freed while
                the stream ran).
            InvalidArgument: a malformed plan (:func:`plan_from_request`).
            SessionStateError: no completed commitment, or a replayed session.
            ServerBusy: the memory budget cannot hold the challenge's results.
        """
        session = self.sessions.get(request.session_id)
        plan = plan_from_request(request, task_p=self.task_p, max_points=self.limits.max_points)
        with self.sessions.activity(session):
            results = session.start_challenge(
                plan, self.task.n_outputs, reserve=self.sessions.reserve, spill=self._spill
            )
            step = self.limits.batch_points(request.chunk_points, self.task.n_outputs)
            for first in range(request.start_point, plan.n_points, step):
                stop = min(first + step, plan.n_points)
                self._ensure(session, results, first, stop)
                session.check_alive()
                yield ResultBatch.of_points(
                    first, results.outputs[first:stop], results.weight_digests[first:stop]
                )
            root = self._root(session, results)
            session.check_alive()
            yield root

    def _spill(self, n_points: int) -> WeightSpill | None:
        return WeightSpill(n_points, self.spill_dir) if self.store is None else None

    def _ensure(self, session: Session, results: Results, start: int, stop: int) -> None:
        """Train (or read from the store) every point not done in a block covering [start, stop)."""
        n = results.plan.n_points
        lo = start - start % 2
        hi = min(n, max(stop, lo + self.limits.train_block))
        with session.lock:
            if results.done[start:stop].all():
                return
        # Decide what to train only under the training lock, so that two streams of
        # one session (a resume racing a dropped stream) never train a point twice.
        with self._train_lock:
            with session.lock:
                todo = np.flatnonzero(~results.done[lo:hi]).astype(np.int64) + lo
            if not todo.size:
                return
            pairs = np.unique(todo // 2)
            points = np.stack([2 * pairs, 2 * pairs + 1], axis=1).reshape(-1)
            x, seeds = results.plan.points(points, self.task.n_items)
            res = run(
                self._source,
                x,
                seeds,
                store=self.store,
                executor=self.executor,
                chunk_size=self.limits.train_chunk,
                progress=False,
                with_weights=self.store is None,
            )
            self.stats.n_trained += res.n_trained
            self.stats.n_from_store += res.n_from_store
            outputs, digests = self.policy.results(
                session.session_id, results.plan, points, res.outputs, res.weight_digests
            )
            with session.lock:
                session.check_alive()
                fresh = ~results.done[points]
                if res.weights is not None and results.spill is not None:
                    results.spill.write(points[fresh], res.weights[fresh])
                results.outputs[points[fresh]] = outputs[fresh]
                results.weight_digests[points[fresh]] = digests[fresh]
                results.done[points[fresh]] = True

    def _root(self, session: Session, results: Results) -> ResultRoot:
        """Build, sign and freeze the root once; later calls return the same root."""
        self._ensure_all(session, results)
        with session.lock:
            if results.root is not None:
                return results.root
        # Every point is done, so the results no longer change: hash them without the
        # session's lock (a million leaves take seconds; housekeeping must not wait).
        tree = results.build_tree()
        with session.lock:
            if results.root is None:
                signature = self.signer.sign(
                    root_statement(
                        session_id=session.session_id,
                        task_digest=self.task.digest,
                        attribution_digest=session.attribution_digest,
                        challenge_seed=results.plan.seed,
                        merkle_root=tree.root,
                        n_leaves=tree.n_leaves,
                    )
                )
                root = ResultRoot(
                    merkle_root=tree.root, n_leaves=tree.n_leaves, signature=signature
                )
                results.tree = tree
                results.root = self.policy.root(session.session_id, results.plan, root)
            return results.root

    def _ensure_all(self, session: Session, results: Results) -> None:
        while True:
            with session.lock:
                missing = np.flatnonzero(~results.done)
            if not missing.size:
                return
            first = int(missing[0])
            self._ensure(session, results, first, first + 1)

    # ------------------------------------------------------------------- Open
    def open(self, session_id: str, point_indices: Sequence[int]) -> Iterator[Opening]:
        """Stream the results, weights and inclusion proofs of the requested points.

        Raises:
            UnknownSession: no such session.
            SessionStateError: the results' root has not been sent yet.
            InvalidArgument: no indices, too many, a duplicate or one out of range.
            ProverError: the task returned no weights where a digest says it has some.
        """
        session = self.sessions.get(session_id)
        results = session.rooted()
        tree = results.tree
        if tree is None:  # set together with the root
            raise ProverError(f"session {show_id(session_id)} lost its Merkle tree")
        indices = self._check_open(list(point_indices), tree.n_leaves)
        with self.sessions.activity(session):
            yield from self._openings(session, results, tree, indices)

    def _openings(
        self, session: Session, results: Results, tree: MerkleTree, indices: NDArray[np.int64]
    ) -> Iterator[Opening]:
        session_id = session.session_id
        for start in range(0, len(indices), self.limits.train_chunk):
            part = indices[start : start + self.limits.train_chunk]
            session.check_alive()
            weights = self._weights(results, part)
            for i, w in zip(part.tolist(), weights, strict=True):
                opening = Opening(
                    point_index=i,
                    outputs=results.outputs[i].copy(),
                    weight_digest=results.weight_digests[i].tobytes(),
                    weights=w,
                    proof=tuple(tree.proof(i)),
                )
                yield self.policy.opening(session_id, results.plan, opening)

    def _check_open(self, indices: list[int], n_leaves: int) -> NDArray[np.int64]:
        if not indices:
            raise InvalidArgument("point_indices is empty")
        if len(indices) > self.limits.max_open:
            raise InvalidArgument(
                f"too many point indices: {len(indices)} > {self.limits.max_open} per request"
            )
        seen: set[int] = set()
        for i in indices:
            if i >= n_leaves:
                raise InvalidArgument(f"point index {i} is out of range (n_leaves = {n_leaves})")
            if i in seen:
                raise InvalidArgument(f"duplicate point index {i}")
            seen.add(i)
        return np.asarray(indices, dtype=np.int64)

    def _weights(self, results: Results, indices: NDArray[np.int64]) -> list[bytes]:
        """Float64 little-endian weights of committed points (from the store or the spill)."""
        digests = [results.weight_digests[i].tobytes() for i in indices.tolist()]
        need = np.asarray([d != EMPTY_WEIGHT_DIGEST for d in digests], dtype=bool)
        out = [b""] * len(indices)
        if not need.any():
            return out
        rows: NDArray[np.float64] | None
        if self.store is None:
            spill = results.spill
            if spill is None:
                raise ProverError("no weights kept for points whose weight digest is not empty")
            rows = np.stack(
                [
                    np.frombuffer(spill.read(int(indices[j])), dtype="<f8")
                    for j in np.flatnonzero(need).tolist()
                ]
            )
        else:
            x, seeds = results.plan.points(indices[need], self.task.n_items)
            with self._train_lock:  # reads the stored weights; trains only what is missing
                res = run(
                    self._source,
                    x,
                    seeds,
                    store=self.store,
                    executor=self.executor,
                    chunk_size=self.limits.train_chunk,
                    progress=False,
                    with_weights=True,
                )
                self.stats.n_opened_retrained += res.n_trained
            rows = res.weights
        if rows is None:
            raise ProverError("no weights kept for points whose weight digest is not empty")
        for row, j in enumerate(np.flatnonzero(need).tolist()):
            raw = np.ascontiguousarray(rows[row], dtype="<f8").tobytes()
            if hashlib.sha256(raw).digest() != digests[j]:  # the Verifier will refuse it
                log.warning(
                    "the weights of point %d do not match its committed weight digest",
                    int(indices[j]),
                )
            out[j] = raw
        return out


def _task_p(task: Task) -> float:
    """:attr:`Task.p` of a task that declares its p (spec-built tasks do).

    The server does not fall back on the base class's default 0.5: challenges
    must use the p of the Verifier's task file, so a task without its own p
    needs an explicit one.
    """
    if type(task).p is Task.p:
        raise InvalidArgument(f"{type(task).__name__} has no spec with p; pass p explicitly")
    return check_p(task.p)
