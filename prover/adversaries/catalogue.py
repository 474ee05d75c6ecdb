"""The catalogue of adversaries and the parser of ``NAME[:PARAMS]``.

Every adversary has a name, a family and typed positional parameters
separated by ``:`` (``boost:0.1:0.5``).  :func:`parse_adversary` validates a
text completely and raises :class:`~protocol.errors.InvalidArgument` naming
the adversary for an unknown name, a wrong parameter count or a value out of
range; the CLI turns that into exit status 2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from protocol.errors import InvalidArgument

__all__ = ["CATALOGUE", "Adversary", "Entry", "Family", "catalogue_help", "parse_adversary"]

Family = Literal["scores", "results", "commitment"]
ParamKind = Literal["factor", "fraction", "amount", "positive", "count", "natural"]


@dataclass(frozen=True, kw_only=True)
class Entry:
    """One adversary of the catalogue.

    Attributes:
        name: the name used on the command line.
        family: ``scores`` (alters the committed attributions), ``results``
            (a consistent liar: alters results before they are committed) or
            ``commitment`` (alters what is sent after the commitment).
        params: parameter names, in order (shown as ``name:P1:P2``).
        kinds: one kind per parameter (how it is parsed and checked).
        summary: one line for ``--help``.
    """

    name: str
    family: Family
    params: tuple[str, ...]
    kinds: tuple[ParamKind, ...]
    summary: str

    @property
    def usage(self) -> str:
        """``NAME`` or ``NAME:P1:P2``."""
        return ":".join((self.name, *self.params))


def _e(name: str, family: Family, params: str, kinds: str, summary: str) -> Entry:
    return Entry(
        name=name,
        family=family,
        params=tuple(params.split()) if params else (),
        kinds=tuple(kinds.split()) if kinds else (),  # type: ignore[arg-type]
        summary=summary,
    )


#: Every adversary, in the order of ``--help`` (name -> entry).
CATALOGUE: dict[str, Entry] = {
    e.name: e
    for e in (
        _e("scale", "scores", "F", "factor", "multiply every score theta_i by F"),
        _e(
            "boost",
            "scores",
            "FRACTION AMOUNT",
            "fraction amount",
            "add AMOUNT (pm units) to the scores of a random FRACTION of contributors",
        ),
        _e("noise", "scores", "SD", "positive", "add N(0, SD^2) noise to every score"),
        _e("permute", "scores", "", "", "permute the contributors' scores"),
        _e(
            "lazy",
            "scores",
            "SAMPLES",
            "count",
            "a datamodel fitted on only SAMPLES retrainings",
        ),
        _e("influence", "scores", "", "", "influence-function scores (logreg, mlp)"),
        _e("lie", "results", "FRACTION", "fraction", "random values on a FRACTION of results"),
        _e(
            "forge",
            "results",
            "FRACTION",
            "fraction",
            "g_a(x) + small noise on a FRACTION of results (the scores look optimal)",
        ),
        _e("reuse", "results", "", "", "one trained model's results for every challenge"),
        _e("ignore-seeds", "results", "", "", "train with its own seeds, not the Verifier's"),
        _e("wrong-subset", "results", "", "", "train on other subsets than the challenge's"),
        _e(
            "strategic",
            "results",
            "MULT COUNT CLIP",
            "positive natural positive",
            "lie on one point of about MULT*max(COUNT,1) pairs, each set to the product "
            "(clipped at CLIP) that lowers the gap statistic most",
        ),
        _e(
            "ustrategic",
            "results",
            "MULT COUNT CLIP",
            "positive natural positive",
            "lie on about MULT*max(COUNT,1) points, each set to the value (at the clip "
            "CLIP) that lowers the degree-1 U-statistic most, greedily",
        ),
        _e(
            "rewrite-after-root",
            "commitment",
            "",
            "",
            "commit forged results, open the honestly trained ones",
        ),
        _e("bad-proof", "commitment", "", "", "send invalid Merkle inclusion proofs"),
        _e(
            "replay",
            "commitment",
            "",
            "",
            "replay the first session's results, root and signature to later challenges",
        ),
    )
}


@dataclass(frozen=True, kw_only=True)
class Adversary:
    """A parsed adversary: a catalogue entry and its parameter values.

    Attributes:
        name: the catalogue name.
        family: its family.
        params: the parsed parameter values, in catalogue order.
    """

    name: str
    family: Family
    params: tuple[float, ...] = ()

    def __str__(self) -> str:
        return ":".join((self.name, *(f"{v:g}" for v in self.params)))


def _value(name: str, param: str, kind: ParamKind, text: str) -> float:
    """Parse and check one parameter; errors name the adversary and the parameter."""
    where = f"adversary {name!r}: {param}"
    if kind == "count":
        try:
            count = int(text)
        except ValueError:
            raise InvalidArgument(f"{where} must be an integer, got {text!r}") from None
        if count < 4:
            raise InvalidArgument(f"{where} must be >= 4, got {count}")
        return float(count)
    if kind == "natural":
        try:
            natural = int(text)
        except ValueError:
            raise InvalidArgument(f"{where} must be an integer, got {text!r}") from None
        if natural < 0:
            raise InvalidArgument(f"{where} must be >= 0, got {natural}")
        return float(natural)
    try:
        value = float(text)
    except ValueError:
        raise InvalidArgument(f"{where} must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise InvalidArgument(f"{where} must be finite, got {text!r}")
    if kind == "factor" and value == 1.0:
        raise InvalidArgument(f"{where} = 1 leaves the scores unchanged (not an attack)")
    if kind == "fraction" and not 0.0 < value <= 1.0:
        raise InvalidArgument(f"{where} must lie in (0, 1], got {value:g}")
    if kind == "amount" and value == 0.0:
        raise InvalidArgument(f"{where} must be non-zero")
    if kind == "positive" and not value > 0.0:
        raise InvalidArgument(f"{where} must be > 0, got {value:g}")
    return value


def parse_adversary(text: str) -> Adversary:
    """Parse ``NAME[:PARAMS]`` (e.g. ``scale:0.5``, ``boost:0.1:0.5``, ``permute``).

    Raises:
        InvalidArgument: an unknown name (the message lists the known ones), a
            wrong number of parameters or a value out of range (the message
            names the adversary and its usage).
    """
    name, *raw = text.strip().split(":")
    entry = CATALOGUE.get(name)
    if entry is None:
        raise InvalidArgument(
            f"unknown adversary {name[:40]!r}; known: "
            + ", ".join(e.usage for e in CATALOGUE.values())
        )
    if len(raw) != len(entry.params):
        raise InvalidArgument(
            f"adversary {name!r} takes {len(entry.params)} parameter(s) "
            f"(usage: {entry.usage}), got {len(raw)} in {text[:60]!r}"
        )
    values = tuple(
        _value(name, p, k, t) for p, k, t in zip(entry.params, entry.kinds, raw, strict=True)
    )
    return Adversary(name=name, family=entry.family, params=values)


def catalogue_help() -> str:
    """One ``usage (family): summary`` item per adversary, for ``--help``."""
    return "; ".join(f"{e.usage} ({e.family}): {e.summary}" for e in CATALOGUE.values())
