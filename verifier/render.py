"""Render an :class:`~protocol.report.AuditReport` as text or a self-contained HTML page.

Pure: imports only :mod:`protocol` and the standard library (usable with no
torch or grpc installed).  The wording and rounding live in
:mod:`verifier.render_text` (the plain-text rendering and every shared
sentence and number); :mod:`verifier.render_html` lays them out as a page with
inline SVG plots.
"""

from __future__ import annotations

from verifier.render_html import render_html
from verifier.render_text import render_text, verdict_sentence

__all__ = ["render_html", "render_text", "verdict_sentence"]
