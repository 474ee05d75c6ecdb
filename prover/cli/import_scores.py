"""``pacda-prover import-scores``: turn another tool's score matrix into a pacda scores file.

Example (TRAK scores of N training items for Z test examples, saved as a
``(N, Z)`` array; TRAK's scores are a ranking on their own scale, so calibrate
them on 500 retrainings of the task)::

    pacda-prover import-scores --task task.toml --in trak_scores.npy --layout NZ \\
        --encoding mask --calibrate 500 --tool trak --out scores.npz

The input is a ``.npy``, ``.npz`` (``--key`` selects the array), ``.pt`` (a
tensor or a dict of tensors, read with ``torch.load(weights_only=True)``) or
``.csv`` file holding a ``(Z, N)`` or ``(N, Z)`` matrix of per-item scores
(``--layout``; without it the shape decides, and a square matrix is refused).
``--format kronfluence|trak|dattri`` reads what those libraries save themselves
(kronfluence's ``pairwise_scores.safetensors`` or a directory above it, TRAK's
``scores/EXP.mmap`` or its save directory, dattri's tensor in a ``.pt`` file;
:mod:`prover.attribution.libraries.readers`) and sets ``--layout``,
``--encoding mask`` and ``--tool`` to the library's unless given.
``--encoding`` says what the scores are coefficients of:

* ``mask``: a linear model ``g(m) = beta0 + beta . m`` of the 0/1 inclusion mask
  (the usual convention of TRAK, dattri, Kronfluence: the effect of adding an
  item).  With ``x = 2m - 1`` this is pacda's pm model with
  ``theta = beta / 2`` and ``theta0 = beta0 + sum_i beta_i / 2`` (the inverse of
  :meth:`protocol.scores.Scores.mask_encoding`).
* ``pm``: already pacda's ``g(x) = theta0 + theta . x`` for ``x`` in {-1,+1}^N.

Exactly one way to get the intercepts: ``--intercept FILE`` (Z numbers, in the
same encoding: ``beta0`` for ``mask``, ``theta0`` for ``pm``), ``--intercept-zero``,
``--intercept-mean`` (train ``--intercept-samples`` models on B_p subsets and set
each intercept to the mean of ``f - theta . x``: the least-squares intercept for
the given scores), or ``--calibrate K`` (train K models and fit, per output,
``f_z(x) ~ a_z + s_z h_z(x)`` by least squares, where ``h_z(x) = theta_z . x`` is
the imported predictor; the written scores are ``theta0 = a``, ``theta = s theta``).

Then the self-check ``attribute`` prints (``--check-samples M`` held-out
retrainings, drawn apart from the calibration's; 0 skips it) and the budget
line.  The work after reading the file is :func:`prover.attribution.import_scores`,
which takes an array or tensor already in memory.

Everything is checked before any model is trained.  Usage errors exit 2 with
one line on stderr; Ctrl-C exits 130 with one line and writes nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from protocol.digests import attribution_digest
from protocol.errors import InvalidArgument
from protocol.scores import save_scores
from prover.attribution.importing import (
    DEFAULT_CHECK_SAMPLES,
    DEFAULT_INTERCEPT_SAMPLES,
    METHOD_PREFIX,
    check_finite,
    import_scores,
    orient,
)
from prover.attribution.libraries.readers import LIBRARY_FORMATS, read_kronfluence, read_trak
from prover.attribution.sampling import Streams
from prover.cli._selfcheck_text import budget_hint, print_self_check
from prover.engine import DEFAULT_CHUNK_SIZE
from prover.tasks.registry import load_task

__all__ = ["HELP", "add_arguments", "load_matrix", "run"]

HELP = "import scores from another attribution tool (TRAK, dattri, ...) as a pacda scores file"

#: Exit status after Ctrl-C (128 + SIGINT), with one line on stderr.
EXIT_INTERRUPTED = 130

FORMATS = (".npy", ".npz", ".pt", ".csv")
_TOOL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
_MAX_METHOD = 64


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the options of ``import-scores``."""
    parser.epilog = (
        "exit codes: 0 success, 1 failure of the job (a calibration retraining failed), "
        "2 usage error (bad file, shape, values or options; checked before any training), "
        "130 interrupted (Ctrl-C; nothing is written)"
    )
    parser.add_argument("--task", required=True, type=Path, help="the pacda task file (TOML)")
    parser.add_argument(
        "--in",
        dest="input",
        required=True,
        type=Path,
        metavar="FILE",
        help=f"the other tool's score matrix: {', '.join(FORMATS)}; with --format, the "
        "file or directory the library saved",
    )
    parser.add_argument(
        "--format",
        choices=("file", *LIBRARY_FORMATS),
        default="file",
        help="file: a matrix in a file named by its extension (default); "
        + "; ".join(f"{f.name}: {f.description}" for f in LIBRARY_FORMATS.values())
        + " (these set --layout, --encoding mask and --tool unless given)",
    )
    parser.add_argument(
        "--key",
        default=None,
        metavar="NAME",
        help="array to read from a .npz or a dict saved in a .pt (default: the only one)",
    )
    parser.add_argument(
        "--layout",
        choices=("ZN", "NZ"),
        default=None,
        help="(Z, N): one row per output; (N, Z): one row per training item "
        "(default: from the shape; a square matrix needs it)",
    )
    parser.add_argument(
        "--encoding",
        choices=("mask", "pm"),
        default=None,
        help="mask: coefficients of the 0/1 inclusion mask (theta = beta/2); "
        "pm: coefficients of pacda's +-1 encoding (taken as they are); required unless "
        "--format names a library (whose scores are mask-encoded)",
    )
    way = parser.add_argument_group(
        "intercepts",
        "give exactly one of --calibrate, --intercept, --intercept-mean, --intercept-zero; "
        "--calibrate fits intercept and scale, the others keep the scores as they are",
    )
    way.add_argument(
        "--calibrate",
        type=int,
        default=None,
        metavar="K",
        help="train K models of the task on B_p subsets and fit, per output, the intercept "
        "and one scale factor by least squares of f on the imported predictor",
    )
    way.add_argument(
        "--intercept",
        type=Path,
        default=None,
        metavar="FILE",
        help="Z intercepts in the --encoding (beta0 = g(empty set) for mask, theta0 for pm); "
        f"{', '.join(FORMATS)}",
    )
    way.add_argument(
        "--intercept-key", default=None, metavar="NAME", help="--key for the --intercept file"
    )
    way.add_argument(
        "--intercept-mean",
        action="store_true",
        help="train --intercept-samples models on B_p subsets and set each intercept to the "
        "mean of f - theta.x (the least-squares intercept for these scores)",
    )
    way.add_argument(
        "--intercept-samples",
        type=int,
        default=None,
        metavar="K",
        help=f"models trained for --intercept-mean (default {DEFAULT_INTERCEPT_SAMPLES})",
    )
    way.add_argument(
        "--intercept-zero",
        action="store_true",
        help="intercept 0 in the --encoding (for mask: g(empty set) = 0)",
    )
    parser.add_argument("--out", required=True, type=Path, help="scores file to write (.npz)")
    parser.add_argument("--force", action="store_true", help="replace an existing --out file")
    parser.add_argument(
        "--tool",
        default=None,
        metavar="NAME",
        help="name of the tool, recorded as method 'imported-NAME' (default: the input file's "
        "name without its extension)",
    )
    parser.add_argument(
        "--check-samples",
        type=int,
        default=DEFAULT_CHECK_SAMPLES,
        metavar="M",
        help="held-out retrainings for the self-check printed after the import, the one "
        "'attribute' prints (err with the audit's statistic, LDS, the smallest epsilon these "
        f"scores pass); drawn apart from the calibration's subsets; 0 skips it "
        f"(default {DEFAULT_CHECK_SAMPLES})",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="root seed of the calibration's and the self-check's subsets and seeds",
    )
    parser.add_argument(
        "--chunk-size", type=int, default=DEFAULT_CHUNK_SIZE, help="models per training chunk"
    )
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="training progress bar (default: only on a terminal)",
    )


# ---------------------------------------------------------------- reading files


def _one_line(err: BaseException) -> str:
    text = str(err).strip()
    first = text.splitlines()[0] if text else type(err).__name__
    return first


def _select(
    arrays: dict[str, Any], key: str | None, where: str, option: str, what: str
) -> tuple[Any, str]:
    names = sorted(arrays)
    if key is not None:
        if key not in arrays:
            raise InvalidArgument(
                f"{where}: no {what} named {key!r} ({option}); it holds: "
                f"{', '.join(names) or 'none'}"
            )
        return arrays[key], key
    if len(names) != 1:
        raise InvalidArgument(
            f"{where}: holds {len(names)} {what}s ({', '.join(names) or 'none'}); "
            f"choose one with {option} NAME"
        )
    return arrays[names[0]], names[0]


def _read_npy(path: Path, where: str) -> NDArray[Any]:
    try:
        with path.open("rb") as fh:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                _, _, dtype = np.lib.format.read_array_header_1_0(fh)
            else:
                _, _, dtype = np.lib.format.read_array_header_2_0(fh)
    except (ValueError, OSError, EOFError) as err:
        raise InvalidArgument(f"{where}: not a readable .npy file ({_one_line(err)})") from None
    if dtype.hasobject:
        raise InvalidArgument(
            f"{where}: is an object array (pickled Python objects), not numbers; "
            "refusing to load it (save a numeric array)"
        )
    try:
        return np.asarray(np.load(path, allow_pickle=False))
    except (ValueError, OSError, EOFError) as err:
        raise InvalidArgument(f"{where}: not a readable .npy file ({_one_line(err)})") from None


def _read_npz(path: Path, key: str | None, where: str, option: str) -> tuple[NDArray[Any], str]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            names = list(npz.files)
            _, name = _select(dict.fromkeys(names), key, where, option, "array")
            try:
                arr = np.asarray(npz[name])
            except ValueError as err:
                if "allow_pickle" in str(err):
                    raise InvalidArgument(
                        f"{where}: array {name!r} is an object array (pickled Python objects), "
                        "not numbers; refusing to load it"
                    ) from None
                raise
    except InvalidArgument:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise InvalidArgument(f"{where}: not a readable .npz file ({_one_line(err)})") from None
    return arr, name


def _read_pt(
    path: Path, key: str | None, where: str, option: str
) -> tuple[NDArray[Any], str | None]:
    import pickle

    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, OSError, EOFError, ValueError) as err:
        raise InvalidArgument(
            f"{where}: not loadable with torch.load(weights_only=True) ({_one_line(err)})"
        ) from None
    name: str | None = None
    if isinstance(obj, dict):
        if not all(isinstance(k, str) for k in obj):
            raise InvalidArgument(f"{where}: a dict whose keys are not all strings")
        obj, name = _select(obj, key, where, option, "tensor")
    elif key is not None:
        raise InvalidArgument(f"{where}: holds a single tensor, not a dict; drop {option}")
    if not isinstance(obj, torch.Tensor):
        raise InvalidArgument(
            f"{where}: expected a tensor{f' under {name!r}' if name else ''}, "
            f"got {type(obj).__name__}"
        )
    if obj.is_complex():
        raise InvalidArgument(f"{where}: complex tensor ({obj.dtype}); scores must be real")
    if obj.dtype == torch.bool:
        raise InvalidArgument(f"{where}: boolean tensor; scores must be numbers")
    return obj.detach().to(device="cpu", dtype=torch.float64).numpy(), name


def _read_csv(path: Path, where: str) -> NDArray[Any]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise InvalidArgument(f"{where}: not a readable text file ({_one_line(err)})") from None
    rows: list[list[float]] = []
    lines = [(n, line) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
    for idx, (lineno, line) in enumerate(lines):
        fields = [f.strip().strip('"').strip() for f in line.split(",")]
        try:
            values = [float(f) for f in fields]
        except ValueError:
            if idx == 0:  # a header line: names, not numbers
                continue
            raise InvalidArgument(
                f"{where}: line {lineno} is not a row of comma-separated numbers: "
                f"{line.strip()[:60]!r}"
            ) from None
        if rows and len(values) != len(rows[0]):
            raise InvalidArgument(
                f"{where}: line {lineno} has {len(values)} values, earlier rows have {len(rows[0])}"
            )
        rows.append(values)
    if not rows:
        raise InvalidArgument(f"{where}: holds no rows of numbers")
    return np.array(rows, dtype=np.float64)


def load_matrix(
    path: Path, *, key: str | None = None, option: str = "--key"
) -> tuple[NDArray[np.float64], str | None]:
    """Read a numeric array from ``.npy``/``.npz``/``.pt``/``.csv`` as float64 (shape kept).

    Returns:
        The array and the name of the array read (``.npz`` key or ``.pt`` dict key), or None.

    Raises:
        InvalidArgument: unknown extension, unreadable file, object array, missing or
            ambiguous key, non-numeric dtype.
    """
    where = str(path)
    ext = path.suffix.lower()
    if ext not in FORMATS:
        raise InvalidArgument(
            f"{where}: unknown extension {path.suffix or '(none)'!r}; "
            f"expected one of {', '.join(FORMATS)}"
        )
    if not path.is_file():
        raise InvalidArgument(f"{where}: no such file")
    if key is not None and ext not in (".npz", ".pt"):
        raise InvalidArgument(f"{option} applies to .npz and .pt files only, not {ext}")
    name: str | None = None
    if ext == ".npy":
        arr = _read_npy(path, where)
    elif ext == ".npz":
        arr, name = _read_npz(path, key, where, option)
    elif ext == ".pt":
        arr, name = _read_pt(path, key, where, option)
    else:
        arr = _read_csv(path, where)
    if arr.dtype.kind not in "iuf":
        raise InvalidArgument(
            f"{where}{f' [{name}]' if name else ''}: dtype {arr.dtype} is not a real number type"
        )
    return np.asarray(arr, dtype=np.float64), name


def _intercepts(path: Path, key: str | None, n_outputs: int) -> NDArray[np.float64]:
    arr, _ = load_matrix(path, key=key, option="--intercept-key")
    where = f"{path} (--intercept)"
    flat = arr.reshape(-1)
    if arr.ndim > 2 or flat.shape[0] != n_outputs or (arr.ndim == 2 and 1 not in arr.shape):
        raise InvalidArgument(
            f"{where}: expected {n_outputs} intercept(s), shape ({n_outputs},), got {arr.shape}"
        )
    check_finite(flat, where)
    return flat


# ---------------------------------------------------------------- the command


def _log(msg: str) -> None:
    print(f"[import-scores] {msg}", file=sys.stderr, flush=True)


def _check_out(out: Path, force: bool) -> Path:
    if out.suffix != ".npz":
        raise InvalidArgument(f"--out must name a .npz file, got {str(out)!r}")
    if out.exists() and not force:
        raise InvalidArgument(f"{out} already exists; refusing to overwrite it (use --force)")
    if not out.parent.is_dir():
        raise InvalidArgument(f"cannot write {out}: directory {out.parent} does not exist")
    return out


def _mode(args: argparse.Namespace) -> str:
    chosen = [
        name
        for name, on in (
            ("--calibrate", args.calibrate is not None),
            ("--intercept", args.intercept is not None),
            ("--intercept-mean", args.intercept_mean),
            ("--intercept-zero", args.intercept_zero),
        )
        if on
    ]
    if len(chosen) != 1:
        raise InvalidArgument(
            "give exactly one of --calibrate K, --intercept FILE, --intercept-mean, "
            f"--intercept-zero (got {', '.join(chosen) if chosen else 'none'})"
        )
    if args.intercept_key is not None and args.intercept is None:
        raise InvalidArgument("--intercept-key needs --intercept FILE")
    if args.calibrate is not None and args.calibrate < 3:
        raise InvalidArgument(f"--calibrate K needs K >= 3 models, got {args.calibrate}")
    if args.intercept_samples is not None and not args.intercept_mean:
        raise InvalidArgument("--intercept-samples needs --intercept-mean")
    if args.intercept_mean:
        if args.intercept_samples is None:
            args.intercept_samples = DEFAULT_INTERCEPT_SAMPLES
        if args.intercept_samples < 2:
            raise InvalidArgument(f"--intercept-samples must be >= 2, got {args.intercept_samples}")
    if args.calibrate is not None or args.intercept_mean:
        Streams(args.seed)  # validates --seed before any stage line
    if args.chunk_size < 1:
        raise InvalidArgument(f"--chunk-size must be >= 1, got {args.chunk_size}")
    if args.check_samples < 0 or 0 < args.check_samples < 8:
        raise InvalidArgument(
            f"--check-samples must be 0 (no self-check) or >= 8, got {args.check_samples}"
        )
    if args.check_samples:
        Streams(args.seed)  # validates --seed before any stage line
    return chosen[0]


def _tool(args: argparse.Namespace) -> str:
    if args.tool is not None:
        if not _TOOL_RE.match(args.tool) or len(args.tool) > _MAX_METHOD - len(METHOD_PREFIX):
            raise InvalidArgument(
                f"--tool must be a name of letters, digits and '_.+-' (at most "
                f"{_MAX_METHOD - len(METHOD_PREFIX)}), got {args.tool!r}"
            )
        return str(args.tool)
    name = re.sub(r"[^A-Za-z0-9_.+-]", "_", args.input.stem).lstrip("_.+-") or "scores"
    return name[: _MAX_METHOD - len(METHOD_PREFIX)]


def run(args: argparse.Namespace) -> int:
    """Run the command; see the module docstring.  Ctrl-C: one line, exit 130."""
    try:
        return _run(args)
    except KeyboardInterrupt:
        print(
            "pacda-prover import-scores: interrupted; nothing was written",
            file=sys.stderr,
            flush=True,
        )
        return EXIT_INTERRUPTED


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return "sha256:" + h.hexdigest()


def _read(args: argparse.Namespace) -> tuple[NDArray[np.float64], str | None, Path]:
    """The score matrix, the key read and the file it came from (``--format``)."""
    if args.format == "kronfluence":
        arr, file, name = read_kronfluence(args.input, args.key)
        return arr, name, file
    if args.format == "trak":
        arr, file, name = read_trak(args.input, args.key)
        return arr, name, file
    if args.format == "dattri" and args.input.suffix.lower() != ".pt":
        raise InvalidArgument(f"--format dattri reads a .pt file, got {str(args.input)!r}")
    matrix, key = load_matrix(args.input, key=args.key)
    return matrix, key, args.input


def _library_defaults(args: argparse.Namespace) -> None:
    """``--format LIBRARY``: the library's layout, encoding and tool name unless given."""
    if args.format in LIBRARY_FORMATS:
        fmt = LIBRARY_FORMATS[args.format]
        args.layout = args.layout or fmt.layout
        args.encoding = args.encoding or fmt.encoding
        args.tool = args.tool or fmt.name
    elif args.encoding is None:
        raise InvalidArgument("--encoding mask|pm is required (unless --format names a library)")


def _run(args: argparse.Namespace) -> int:
    out = _check_out(args.out, args.force)
    _library_defaults(args)
    mode = _mode(args)
    tool = _tool(args)
    task = load_task(args.task)
    N, Z = task.n_items, task.n_outputs
    raw, key, source = _read(args)
    args.input = source
    where = str(source)
    check_finite(raw, where)
    orient(raw, n_items=N, n_outputs=Z, layout=args.layout, where=where)  # before any stage line
    intercept: Any = None
    if args.intercept is not None:
        intercept = _intercepts(args.intercept, args.intercept_key, Z)
    elif args.intercept_zero:
        intercept = "zero"
    elif args.intercept_mean:
        intercept = "mean"
    # Every input is valid: only now the stage lines (errors above stay one line).
    _log(f"task {args.task} ({task.digest}): N={N}, Z={Z}, p={task.p}")
    _log(f"read {args.input}{f' [{key}]' if key else ''}: {raw.shape}, {args.encoding} encoding")
    record: dict[str, Any] = {
        "file": args.input.name,
        "file_sha256": _file_digest(args.input),
        "key": key,
        "intercept_file": args.intercept.name if args.intercept is not None else None,
    }
    if mode == "--intercept":
        record["intercepts"] = "file"
    imported = import_scores(
        raw,
        task,
        layout=args.layout,
        encoding=args.encoding,
        calibrate=args.calibrate,
        intercept=intercept,
        intercept_samples=args.intercept_samples,
        seed=args.seed,
        check_samples=args.check_samples,
        tool=tool,
        chunk_size=args.chunk_size,
        progress=args.progress,
        log=_log,
        meta=record,
        where=where,
    )
    result = imported.scores
    mean = result.meta["import"].get("intercept_mean")
    if mean is not None:
        se = np.asarray(mean["standard_error"])
        _log(f"intercepts (mean of f - theta.x): {_fmt(result.theta0)}; std. error {_fmt(se)}")
    path = save_scores(out, result, overwrite=args.force)
    print(f"method             {result.method}")
    print(f"scores             {path}  (Z={Z}, N={N}, encoding={result.encoding})")
    # The digest the Prover commits to and the audit report records as attribution_digest.
    print(f"attribution digest {attribution_digest(result.theta0, result.theta)}")
    print(f"task digest        {result.task_digest}")
    if imported.calibration is not None:
        _print_calibration(imported.calibration, args.calibrate)
    print_self_check(imported.check)
    hint = budget_hint(imported.check, samples=0, method=result.method)
    if hint:
        print(hint)
    return 0


def _fmt(values: NDArray[np.float64]) -> str:
    return "[" + ", ".join(f"{v:.6g}" for v in values) + "]"


def _print_calibration(table: dict[str, NDArray[np.float64]], k: int) -> None:
    print(f"calibration on {k} retrainings: f_z ~ intercept + scale * (imported theta_z . x)")
    print(
        f"{'output':>6} {'scale':>12} {'intercept':>12} {'resid. MS':>12} {'Var(f)':>12} {'R^2':>8}"
    )
    for z in range(table["scale"].shape[0]):
        print(
            f"{z:>6} {table['scale'][z]:>12.6g} {table['intercept'][z]:>12.6g} "
            f"{table['residual_mean_square'][z]:>12.6g} {table['var_f'][z]:>12.6g} "
            f"{table['r2'][z]:>8.4f}"
        )
    negative = [z for z, s in enumerate(table["scale"]) if s < 0]
    if negative:
        print(
            f"note: negative scale for output(s) {negative}: the tool's scores have the opposite "
            "sign convention there"
        )
