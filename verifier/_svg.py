"""SVG primitives of the HTML report: escaping, round ticks, linear axes, text and lines.

Private to :mod:`verifier.render_html` (which re-exports :func:`nice_ticks`)
and :mod:`verifier._plots`.  Pure: the standard library only.
"""

from __future__ import annotations

import html
import math

__all__ = [
    "ACCEPT",
    "AXIS",
    "EPS",
    "MUTED",
    "REJECT",
    "Axis",
    "decades",
    "escape",
    "line",
    "nice_ticks",
    "svg_open",
    "text",
]

ACCEPT, REJECT, EPS, AXIS, MUTED = "#070", "#b00", "#a00", "#222", "#777"


def escape(text: object) -> str:
    """``str(text)`` escaped for HTML text and attribute values (quotes included)."""
    return html.escape(str(text), quote=True)


def nice_ticks(lo: float, hi: float, target: int = 6) -> list[float]:
    """Round tick values (1, 2 or 5 times a power of ten) covering ``[lo, hi]``.

    Returns at least two ticks, the first <= ``lo`` and the last >= ``hi``;
    0 is a tick whenever the range contains it.
    """
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"ticks need a finite range, got [{lo}, {hi}]")
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / max(target - 1, 1)
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1.0, 2.0, 5.0, 10.0) if m * power >= raw * (1 - 1e-9))
    first = math.floor(lo / step + 1e-9)
    last = math.ceil(hi / step - 1e-9)
    ticks = [round(k * step, 12) for k in range(first, last + 1)]
    return ticks if len(ticks) >= 2 else [ticks[0], ticks[0] + step]


def decades(lo: float, hi: float) -> list[int]:
    """Decade exponents from ``lo`` to ``hi``, thinned to at most 8 labels."""
    first, last = math.floor(lo), math.ceil(hi)
    if last - first < 2:
        first, last = first - 1, last + 1
    every = max(1, math.ceil((last - first + 1) / 8))
    last += -(last - first) % every  # the top label at or above hi
    return list(range(first, last + 1, every))


class Axis:
    """A linear map from data ``[lo, hi]`` to pixels ``[a, b]``."""

    def __init__(self, lo: float, hi: float, a: float, b: float) -> None:
        self.lo, self.hi, self.a, self.b = lo, hi, a, b

    def __call__(self, v: float) -> float:
        span = self.hi - self.lo if self.hi > self.lo else 1.0
        return self.a + (v - self.lo) / span * (self.b - self.a)


def svg_open(width: int, height: int, label: str) -> str:
    """The opening ``<svg>`` tag of a ``width x height`` plot labelled for screen readers."""
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" font-size="13" role="img" '
        f'aria-label="{escape(label)}">'
    )


def text(x: float, y: float, content: str, cls: str, **attrs: str) -> str:
    """A ``<text>`` element; ``attrs`` names use ``_`` for ``-`` (``text_anchor``)."""
    extra = "".join(f' {k.replace("_", "-")}="{escape(v)}"' for k, v in attrs.items())
    return f'<text class="{cls}" x="{x:.1f}" y="{y:.1f}"{extra}>{escape(content)}</text>'


def line(x1: float, y1: float, x2: float, y2: float, colour: str, **attrs: str) -> str:
    """A ``<line>`` element; ``attrs`` names use ``_`` for ``-`` (``stroke_width``)."""
    extra = "".join(f' {k.replace("_", "-")}="{escape(v)}"' for k, v in attrs.items())
    return (
        f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{colour}"{extra}/>'
    )
