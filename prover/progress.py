"""Progress of long training runs: models done, models/s and ETA (tqdm).

The bar is drawn on stderr only when stderr is a terminal, so logs, CI and
pipes stay clean; pass ``enabled=False`` to force it off (``True`` forces it on).
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import TextIO

from tqdm import tqdm

__all__ = ["Progress", "progress_enabled"]


def progress_enabled(enabled: bool | None, stream: TextIO | None = None) -> bool:
    """Resolve the progress setting.

    Args:
        enabled: ``True``/``False`` force the bar on/off; ``None`` means "only
            if ``stream`` is a terminal".
        stream: where the bar would be drawn (default ``sys.stderr``).
    """
    if enabled is not None:
        return enabled
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    return bool(isatty is not None and isatty())


class Progress:
    """A models-done counter with rate and ETA; a no-op when disabled.

    Args:
        total: models the run needs in all.
        initial: models already available (e.g. found in the store).
        enabled: see :func:`progress_enabled`.
        desc: label in front of the bar.
        stream: output stream (default ``sys.stderr``).
    """

    def __init__(
        self,
        *,
        total: int,
        initial: int = 0,
        enabled: bool | None = None,
        desc: str = "training",
        stream: TextIO | None = None,
    ) -> None:
        self.done = initial
        self.total = total
        stream = sys.stderr if stream is None else stream
        self._bar: tqdm[object] | None = None
        if progress_enabled(enabled, stream):
            self._bar = tqdm(
                total=total,
                initial=initial,
                desc=desc,
                unit="model",
                file=stream,
                smoothing=0.05,
                mininterval=0.5,
                dynamic_ncols=True,
            )
            if initial:
                self._bar.set_postfix_str(f"{initial} from store", refresh=False)

    @property
    def enabled(self) -> bool:
        """Whether a bar is drawn."""
        return self._bar is not None

    def update(self, n: int) -> None:
        """Record ``n`` more models done."""
        self.done += n
        if self._bar is not None:
            self._bar.update(n)

    def close(self) -> None:
        """Finish the bar (idempotent)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
