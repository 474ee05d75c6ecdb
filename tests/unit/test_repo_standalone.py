"""The repository stands alone: nothing in it points outside it for its design.

Every tracked text file must cite the design as ``docs/design.md §N`` (never a
design document or ``shared`` folder beside the checkout), and every section
number cited that way must exist as a heading in ``docs/design.md``.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DESIGN_DOC = ROOT / "docs" / "design.md"

#: Suffixes (and exact file names) of the tracked text files that are scanned.
TEXT_SUFFIXES = frozenset({".py", ".md", ".toml", ".proto", ".txt"})
TEXT_NAMES = frozenset({"Makefile"})

#: Files allowed to cite the external design document (none: the repository stands alone).
PENDING: frozenset[str] = frozenset()

# Built from pieces so that this file does not match its own patterns.
_OUTSIDE = re.compile(r"\.\./" + "shared" + r"|\bDESIGN(?:\s*§|\.md)")
_CITATION = re.compile(r"docs/design\.md\s+§(\d+(?:\.\d+)*)")
_HEADING = re.compile(r"^#+\s.*?§(\d+(?:\.\d+)*)(?![.\d])", re.MULTILINE)


def _tracked_text_files() -> list[str]:
    """Tracked files (relative paths) of the scanned kinds that exist in the work tree."""
    try:
        listing = subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    names = [n for n in listing.decode("utf-8").split("\0") if n]
    return sorted(
        n
        for n in names
        if (Path(n).suffix in TEXT_SUFFIXES or Path(n).name in TEXT_NAMES) and (ROOT / n).is_file()
    )


def _read(name: str) -> str:
    return (ROOT / name).read_text(encoding="utf-8", errors="replace")


def test_no_reference_outside_the_repository() -> None:
    offenders = []
    for name in _tracked_text_files():
        if name in PENDING:
            continue
        for lineno, line in enumerate(_read(name).splitlines(), start=1):
            if _OUTSIDE.search(line):
                offenders.append(f"{name}:{lineno}: {line.strip()}")
    assert offenders == [], "cite docs/design.md §N instead:\n" + "\n".join(offenders)


def test_pending_files_are_tracked() -> None:
    missing = sorted(PENDING - set(_tracked_text_files()))
    assert missing == [], f"PENDING names files that are not tracked: {missing}"


def test_design_doc_has_every_cited_section() -> None:
    assert DESIGN_DOC.is_file(), "docs/design.md is missing"
    headings = set(_HEADING.findall(DESIGN_DOC.read_text(encoding="utf-8")))
    cited: dict[str, list[str]] = {}
    for name in _tracked_text_files():
        for section in _CITATION.findall(_read(name)):
            cited.setdefault(section, []).append(name)
    assert cited, "no file cites docs/design.md §N"
    missing = {s: sorted(set(files)) for s, files in cited.items() if s not in headings}
    assert missing == {}, f"sections cited but not headed in docs/design.md: {missing}"
