"""A refit's progress: one bar on a terminal, one log line per fold model otherwise, with an ETA.

    refit |██████▍     | 5/12 epochs · model 2/3 (trial 4 fold 1) · 1:40 · ETA 2:20

- ``5/12 epochs``: epochs trained against the epochs of every model this refit will train;
- ``model 2/3``: the model training now, of those to train;
- ``1:40``: time since the refit started; ``ETA``: the epochs left at the pace of the epochs done so
  far (before the first epoch ends, at the trials' own pace: the estimate the budget used).

The bar is drawn on stderr when it is a terminal (log lines print above it); elsewhere each model
that ends logs one INFO line with the same figures. Models train without runners.fit's own bars.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Callable, Iterator
from typing import TextIO

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from search.engine.progress import clock_text, is_terminal

log = logging.getLogger(__name__)


class RefitProgress:
    """Counts the epochs of the models a refit trains; a bar (``bar=True``) or log lines."""

    def __init__(
        self,
        models: int,
        epochs: int,
        expected_s: float = 0.0,
        bar: bool = False,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.models = models  # models to train
        self.epochs = epochs  # their epochs, all together
        self.expected_s = expected_s  # the whole refit at the trials' pace: the ETA before an epoch ends
        self.clock = clock
        self.started = clock()
        self.model = 0  # models started
        self.done_epochs = 0
        self.name = ""
        self.wants_bar = bar
        self.stream = stream
        self._bar: tqdm | None = None  # type: ignore[type-arg]

    def eta(self) -> float | None:
        """Seconds left at the pace of the epochs done (at the expected pace before any)."""
        left = self.epochs - self.done_epochs
        if self.done_epochs:
            return left * (self.clock() - self.started) / self.done_epochs
        if self.expected_s > 0 and self.epochs:
            return self.expected_s * left / self.epochs
        return None

    def text(self) -> str:
        eta = self.eta()
        where = f" ({self.name})" if self.name else ""
        return (
            f"{self.done_epochs}/{self.epochs} epochs · model {max(self.model, 1)}/{self.models}{where} · "
            f"{clock_text(self.clock() - self.started)} · ETA {'-' if eta is None else clock_text(eta)}"
        )

    def model_started(self, name: str) -> None:
        self.model += 1
        self.name = name
        self._draw()

    def epoch_done(self) -> None:
        self.done_epochs += 1
        self._draw()

    def model_done(self, name: str, trained: bool, cut_at: int | None = None, epochs: int | None = None) -> None:
        """One model ended: trained, or stopped at the time budget (its epochs are not coming back),
        kept after epoch ``cut_at`` of ``epochs`` when given."""
        if not trained and cut_at is not None and epochs is not None:
            self.skipped(epochs - cut_at)
        if not self.wants_bar:
            what = "done" if trained else "stopped at the time budget"
            if not trained and cut_at is not None:
                what += f" after epoch {cut_at} of {epochs}, kept (a later run with the time trains it again)"
            log.info("refit: %s %s | %s", name, what, self.text())

    def skipped(self, epochs: int) -> None:
        """Epochs that will not be trained after all (their model did not fit in the time left)."""
        self.epochs = max(self.done_epochs, self.epochs - epochs)
        self._draw()

    def _draw(self) -> None:
        if self._bar is not None:
            self._bar.total = max(self.epochs, 1)
            self._bar.n = self.done_epochs
            self._bar.set_postfix_str(self.text(), refresh=True)

    @contextlib.contextmanager
    def showing(self) -> Iterator[RefitProgress]:
        """The bar while the refit runs (log lines print above it)."""
        if not self.wants_bar:
            yield self
            return
        stream = self.stream or sys.stderr
        with logging_redirect_tqdm([logging.getLogger()]):
            self._bar = tqdm(total=max(self.epochs, 1), file=stream, desc="refit", leave=True,
                             bar_format="{desc} |{bar:20}| {postfix}", mininterval=0)
            try:
                self._draw()
                yield self
            finally:
                self._bar.close()
                self._bar = None


def refit_progress(
    models: int, epochs: int, expected_s: float = 0.0, stream: TextIO | None = None
) -> RefitProgress:
    """A bar when ``stream`` (stderr) is a terminal, log lines otherwise."""
    stream = stream or sys.stderr
    return RefitProgress(models, epochs, expected_s, bar=is_terminal(stream), stream=stream)
