"""Scores from another attribution tool, in memory: orient, re-encode, set intercepts, self-check.

:func:`import_scores` is what ``pacda-prover import-scores`` runs after reading
its file, callable on an array or tensor a user already holds (kronfluence's
pairwise scores, a TRAK score matrix, dattri's tensors).  In order:

1. **Layout.** A ``(Z, N)`` or ``(N, Z)`` matrix of per-item scores
   (:func:`orient`; the shape decides unless ``layout`` says, and a square
   matrix needs it), float64, finite.
2. **Encoding.** ``mask``: coefficients of a model ``g(m) = beta0 + beta . m``
   of the 0/1 inclusion mask (TRAK, dattri, kronfluence).  With ``x = 2m - 1``
   that is pacda's ``g(x) = theta0 + theta . x`` with ``theta = beta / 2`` and
   ``theta0 = beta0 + sum_i beta_i / 2``.  ``pm``: already pacda's.
3. **Intercepts**, exactly one way: ``calibrate=K`` (train K models on B_p
   subsets and fit ``f_z ~ a_z + s_z theta_z . x`` by least squares per output;
   the scores become ``theta0 = a``, ``theta = s theta``:
   :func:`prover.attribution.calibration.calibrate`), ``intercept="mean"``
   (train ``intercept_samples`` models; ``theta0 = mean(f - theta . x)``),
   ``intercept="zero"`` or ``intercept=ARRAY`` (Z numbers in the input's encoding).
4. **Self-check** (``check_samples`` held-out retrainings, 0 skips it): the
   same check as ``pacda-prover attribute`` (:func:`~prover.attribution.selfcheck.run_self_check`:
   err with the audit's default statistic, its interval, LDS, the smallest
   epsilon the scores would pass), on subsets drawn independently of the
   calibration's, so the fitted scale and intercepts are judged out of sample.

Every argument is checked before any model is trained.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from protocol.errors import InvalidArgument
from protocol.estimators import NodeFunctional
from protocol.scores import Scores
from protocol.taskspec import pacda_version
from prover.attribution.calibration import calibrate as fit_calibration
from prover.attribution.config import AttributionConfig
from prover.attribution.pipeline import check_functional as attribute_check_functional
from prover.attribution.sampling import Streams, draw_check_pairs, draw_fit_design
from prover.attribution.selfcheck import SelfCheck, run_self_check
from prover.engine import DEFAULT_CHUNK_SIZE, train
from prover.progress import Progress
from prover.tasks.base import Task

__all__ = [
    "DEFAULT_CHECK_SAMPLES",
    "DEFAULT_INTERCEPT_SAMPLES",
    "METHOD_PREFIX",
    "ImportedScores",
    "as_score_matrix",
    "check_finite",
    "import_scores",
    "orient",
    "self_check_scores",
]

FloatArray = NDArray[np.float64]
Encoding = Literal["mask", "pm"]
Layout = Literal["ZN", "NZ"]

#: Held-out retrainings of the self-check unless ``check_samples`` says otherwise.
DEFAULT_CHECK_SAMPLES = 400
#: Models trained for ``intercept="mean"`` unless ``intercept_samples`` says otherwise.
DEFAULT_INTERCEPT_SAMPLES = 1000
_TOOL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
#: ``Scores.method`` of imported scores: this prefix and the tool's name.
METHOD_PREFIX = "imported-"
_MAX_METHOD = 64


@dataclass(frozen=True)
class ImportedScores:
    """The outcome of :func:`import_scores`.

    Attributes:
        scores: the pacda scores (``method = "imported-TOOL"``; ``meta["import"]``
            records the layout, encoding, intercepts and, with one, the self-check).
        layout: the input's layout as read (``"ZN"``, ``"NZ"`` or ``"N"``).
        calibration: with ``calibrate=K``, per output ``scale``, ``intercept``,
            ``residual_mean_square``, ``var_f``, ``r2`` (else ``None``).
        check: the self-check (``None`` with ``check_samples=0``).
        n_trained: models trained (calibration or intercept mean, plus the self-check).
        seconds: wall time per stage.
    """

    scores: Scores
    layout: str
    calibration: dict[str, FloatArray] | None
    check: SelfCheck | None
    n_trained: int
    seconds: dict[str, float] = field(default_factory=dict)


def as_score_matrix(values: Any, where: str = "scores") -> FloatArray:
    """A float64 copy of a numpy array, torch tensor or nested sequence of real numbers.

    Raises:
        InvalidArgument: not numeric (object, complex, bool or string values).
    """
    if hasattr(values, "detach") and hasattr(values, "cpu"):  # a torch tensor, on any device
        values = values.detach().cpu().numpy()
    arr = np.asarray(values)
    if arr.dtype.kind not in "iuf":
        raise InvalidArgument(f"{where}: dtype {arr.dtype} is not a real number type")
    return np.array(arr, dtype=np.float64)


def check_finite(arr: FloatArray, where: str) -> None:
    """Refuse NaN and inf, naming how many and the first index."""
    bad = ~np.isfinite(arr)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise InvalidArgument(
            f"{where}: {int(bad.sum())} non-finite value(s) (NaN or inf), the first at index "
            f"{first}"
        )


def orient(
    arr: FloatArray, *, n_items: int, n_outputs: int, layout: str | None, where: str
) -> tuple[FloatArray, str]:
    """The ``(Z, N)`` form of a ``(Z, N)`` or ``(N, Z)`` matrix, and the layout read.

    A 1-D array of N scores is accepted when Z = 1 (layout ``"N"``).  Anything
    else (another shape, a square matrix without ``layout``) is refused.
    """
    Z, N = n_outputs, n_items
    zn, nz = (Z, N), (N, Z)
    want = {"ZN": f"(Z, N) = {zn}", "NZ": f"(N, Z) = {nz}"}
    if layout is not None and layout not in want:
        raise InvalidArgument(f"layout must be 'ZN' or 'NZ', got {layout!r}")
    if arr.ndim == 1 and Z == 1 and arr.shape[0] == N:
        return arr.reshape(1, N), "N"
    if arr.ndim != 2:
        expected = want[layout] if layout else f"{want['ZN']} or {want['NZ']}"
        raise InvalidArgument(f"{where}: expected shape {expected}, got {arr.shape}")
    shape = tuple(arr.shape)
    if layout is None:
        if zn == nz and shape == zn:
            raise InvalidArgument(
                f"{where}: shape {shape} is ambiguous (N = Z = {N}); say --layout ZN or NZ"
            )
        if shape == zn:
            return arr, "ZN"
        if shape == nz:
            return np.ascontiguousarray(arr.T), "NZ"
        raise InvalidArgument(
            f"{where}: expected shape {want['ZN']} or {want['NZ']} for this task, got {shape}"
        )
    expected_shape = zn if layout == "ZN" else nz
    if shape != expected_shape:
        other = "NZ" if layout == "ZN" else "ZN"
        hint = f" (that is --layout {other})" if shape == (zn if other == "ZN" else nz) else ""
        raise InvalidArgument(
            f"{where}: expected shape {want[layout]} for --layout {layout}, got {shape}{hint}"
        )
    return (arr if layout == "ZN" else np.ascontiguousarray(arr.T)), layout


def _trained(
    task: Task, x: NDArray[np.int8], seeds: NDArray[np.uint64], *, chunk_size: int, progress: bool,
    desc: str,
) -> FloatArray:  # fmt: skip
    with Progress(total=len(x), enabled=progress, desc=desc) as bar:
        return train(task, x, seeds, chunk_size=chunk_size, progress=bar.update).outputs


def check_functional(p: float) -> NodeFunctional:
    """The self-check's node functional, with ``attribute``'s default degree and radius."""
    return attribute_check_functional(AttributionConfig(method="datamodel", samples=0), p)


def self_check_scores(
    task: Task,
    theta0: FloatArray,
    theta: FloatArray,
    *,
    samples: int = DEFAULT_CHECK_SAMPLES,
    seed: int = 0,
    delta: float = 0.05,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: bool = False,
    log: Callable[[str], object] | None = None,
) -> SelfCheck:
    """``attribute``'s self-check of pm scores on ``samples`` fresh held-out retrainings.

    The held-out subsets come from the ``check`` streams of ``Streams(seed)``,
    independent of the ``fit`` streams a calibration with the same seed draws.

    Raises:
        InvalidArgument: ``samples < 8`` or shapes that do not fit the task.
    """
    if samples < 8:
        raise InvalidArgument(f"the self-check needs at least 8 retrainings, got {samples}")
    p = float(task.p)
    functional = check_functional(p)
    design = draw_check_pairs(Streams(seed), functional, samples // 2, task.n_items, p)
    xs, ss = design.points()
    if log is not None:
        log(
            f"self-check: training {len(xs)} held-out models ({design.n_pairs} correlated pairs, "
            f"seed {seed}, drawn independently of a calibration's subsets)"
        )
    outs = _trained(task, xs, ss, chunk_size=chunk_size, progress=progress, desc="self-check")
    n = design.n_pairs
    return run_self_check(
        theta0, theta, design, outs[:n], outs[n:], functional,
        bound=task.bound, tolerance=task.output_tolerance, p=p, delta=delta,
    )  # fmt: skip


def _intercept_kind(calibrate: int | None, intercept: Any, intercept_samples: int | None) -> str:
    chosen = [
        name
        for name, on in (("calibrate", calibrate is not None), ("intercept", intercept is not None))
        if on
    ]
    if len(chosen) != 1:
        raise InvalidArgument(
            "give exactly one of calibrate=K or intercept=('mean' | 'zero' | Z numbers) "
            f"(got {', '.join(chosen) if chosen else 'none'})"
        )
    if calibrate is not None:
        if isinstance(calibrate, bool) or not isinstance(calibrate, int) or calibrate < 3:
            raise InvalidArgument(f"calibrate=K needs K >= 3 models, got {calibrate!r}")
        return "calibrate"
    if isinstance(intercept, str):
        if intercept not in ("mean", "zero"):
            raise InvalidArgument(
                f"intercept must be 'mean', 'zero' or Z numbers, got {intercept!r}"
            )
        if intercept == "mean" and intercept_samples is not None and intercept_samples < 2:
            raise InvalidArgument(f"intercept_samples must be >= 2, got {intercept_samples}")
        return intercept
    return "given"


def import_scores(
    values: Any,
    task: Task,
    *,
    layout: str | None = None,
    encoding: Encoding = "mask",
    calibrate: int | None = None,
    intercept: Any = None,
    intercept_samples: int | None = None,
    seed: int = 0,
    check_samples: int = DEFAULT_CHECK_SAMPLES,
    delta: float = 0.05,
    tool: str = "scores",
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: bool = False,
    log: Callable[[str], object] | None = None,
    meta: dict[str, Any] | None = None,
    where: str = "scores",
) -> ImportedScores:
    """Another tool's scores (array or tensor, ``(Z, N)`` or ``(N, Z)``) as pacda scores.

    Args:
        values: the score matrix (numpy array, torch tensor on any device, nested lists).
        task: the task the scores are of.
        layout: ``"ZN"``, ``"NZ"`` or ``None`` (the shape decides).
        encoding: ``"mask"`` (coefficients of the 0/1 inclusion mask) or ``"pm"``.
        calibrate: K, train K models and fit an intercept and a scale per output.
        intercept: instead of ``calibrate``: ``"mean"``, ``"zero"`` or Z numbers.
        intercept_samples: models for ``intercept="mean"`` (default 1,000).
        seed: root of the calibration's and the self-check's streams (independent).
        check_samples: held-out retrainings of the self-check (0 skips it, else >= 8).
        delta: the self-check's failure probability (its intervals and epsilon search).
        tool: names the method, ``imported-TOOL``.
        chunk_size: models trained per vectorised call.
        progress: show progress bars on stderr.
        log: called with one line per stage (``None``: silent).
        meta: more entries for ``meta["import"]``, written last (the CLI records the
            file read, and ``"intercepts": "file"`` for an intercept file).
        where: names the scores in error messages (the CLI: the file).

    Raises:
        InvalidArgument: a bad shape, encoding, intercept choice or count, NaN/inf
            scores, or a calibration that cannot fit (too few subsets).
    """
    say = log if log is not None else (lambda _line: None)
    N, Z = task.n_items, task.n_outputs
    if encoding not in ("mask", "pm"):
        raise InvalidArgument(f"encoding must be 'mask' or 'pm', got {encoding!r}")
    kind = _intercept_kind(calibrate, intercept, intercept_samples)
    if not _TOOL_RE.match(tool) or len(tool) > _MAX_METHOD - len(METHOD_PREFIX):
        raise InvalidArgument(
            f"the tool must be a name of letters, digits and '_.+-' (at most "
            f"{_MAX_METHOD - len(METHOD_PREFIX)}), got {tool!r}"
        )
    if check_samples and check_samples < 8:
        raise InvalidArgument(
            f"check_samples must be 0 (no self-check) or >= 8, got {check_samples}"
        )
    Streams(seed)  # validates the seed before any training
    raw = as_score_matrix(values, where)
    check_finite(raw, where)
    matrix, read_layout = orient(raw, n_items=N, n_outputs=Z, layout=layout, where=where)
    given0: FloatArray | None = None
    if kind == "zero":
        given0 = np.zeros(Z)
    elif kind == "given":
        given0 = as_score_matrix(intercept, "intercept").reshape(-1)
        if given0.shape != (Z,):
            raise InvalidArgument(f"intercept must hold Z = {Z} numbers, got {given0.size}")
        check_finite(given0, "intercept")
    # The tool's encoding -> pacda's pm encoding:
    # g = beta0 + beta.m with m = (x+1)/2  ==  (beta0 + sum(beta)/2) + (beta/2).x.
    theta = matrix / 2.0 if encoding == "mask" else matrix.copy()
    shift = theta.sum(axis=1) if encoding == "mask" else np.zeros(Z)

    seconds: dict[str, float] = {}
    n_trained = 0
    table: dict[str, FloatArray] | None = None
    fit: dict[str, Any]
    if kind in ("calibrate", "mean"):
        k = calibrate if kind == "calibrate" else (intercept_samples or DEFAULT_INTERCEPT_SAMPLES)
        assert k is not None
        stage = "calibrating" if kind == "calibrate" else "intercept-mean"
        say(
            f"{stage}: training {k} models of the task on B_p subsets (p={task.p}, seed {seed}, "
            f"chunks of {chunk_size})"
        )
        t0 = time.perf_counter()
        x, seeds = draw_fit_design(Streams(seed), k, N, float(task.p))
        f = _trained(task, x, seeds, chunk_size=chunk_size, progress=progress, desc=stage)
        seconds[kind] = time.perf_counter() - t0
        say(f"trained {k} models in {seconds[kind]:.1f} s")
        n_trained += k
        if kind == "calibrate":
            try:
                table = fit_calibration(theta, x, f)
            except InvalidArgument as err:
                raise InvalidArgument(f"{err} (calibrate on more models)") from None
            theta = theta * table["scale"][:, None]
            theta0 = table["intercept"]
            fit = {
                "intercepts": "calibrated",
                "calibration": {"samples": k, "seed": seed, "seconds": round(seconds[kind], 3),
                                **{name: v.tolist() for name, v in table.items()}},
            }  # fmt: skip
        else:
            resid = f - x.astype(np.float64) @ theta.T
            theta0 = resid.mean(axis=0)
            se = resid.std(axis=0, ddof=1) / math.sqrt(resid.shape[0])
            fit = {
                "intercepts": "mean",
                "intercept_mean": {"samples": k, "seed": seed, "seconds": round(seconds[kind], 3),
                                   "standard_error": se.tolist()},
            }  # fmt: skip
    else:
        assert given0 is not None
        theta0 = given0 + shift
        fit = {"intercepts": "zero" if kind == "zero" else "given"}

    check: SelfCheck | None = None
    if check_samples:
        t0 = time.perf_counter()
        check = self_check_scores(
            task, theta0, theta, samples=check_samples, seed=seed, delta=delta,
            chunk_size=chunk_size, progress=progress, log=say,
        )  # fmt: skip
        seconds["self_check"] = time.perf_counter() - t0
        n_trained += 2 * check.n_pairs
        say(f"trained {2 * check.n_pairs} models in {seconds['self_check']:.1f} s")
    record = {
        "layout": read_layout,
        "encoding": encoding,
        **fit,
        "self_check": check.to_dict() if check is not None else None,
        **(meta or {}),
    }
    scores = Scores(
        theta0=np.asarray(theta0, dtype=np.float64),
        theta=np.asarray(theta, dtype=np.float64),
        task_digest=task.digest,
        method=METHOD_PREFIX + tool,
        meta={
            "import": record,
            "task": {"digest": task.digest, "N": N, "Z": Z, "p": task.p, "bound": task.bound},
            "pacda_version": pacda_version(),
        },
    )
    return ImportedScores(
        scores=scores, layout=read_layout, calibration=table, check=check,
        n_trained=n_trained, seconds=seconds,
    )  # fmt: skip
