"""Live progress within each training epoch: steps, rate, ETA and the current loss.

On a terminal it is a rich progress bar that redraws in place and disappears when the
epoch ends (the epoch summary line stays). When stderr is not a terminal (CI, a log
file) it prints plain one-line records at most every ``interval_s`` seconds, short
enough never to wrap, e.g.::

    teacher epoch 1/3: step 120/181 66% 4.1 steps/s ETA 15 s loss 0.4134

`EpochMeter` holds the arithmetic (pure, tested without TensorFlow); `progress_callback`
wraps it in a Keras callback for `fit()`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

Emit = Callable[[str], None]


def _duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}:{secs:02d} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d} h"


@dataclass
class EpochMeter:
    """Step counting for one epoch: rate (steps/s), ETA and the latest loss.

    Args:
        stage: the stage name shown first (e.g. ``teacher``).
        epoch: 1-based epoch number.
        epochs: epochs in the stage.
        total_steps: steps in the epoch, or None when Keras does not know it yet.
        clock: a monotonic clock in seconds (injectable for tests).
    """

    stage: str
    epoch: int
    epochs: int
    total_steps: int | None
    clock: Callable[[], float] = time.monotonic
    start: float = field(init=False)
    steps: int = field(init=False, default=0)
    loss: float | None = field(init=False, default=None)
    # The rate is measured from the end of the first step: that step also traces and
    # compiles the graph, and counting it made the first ETA ten times too long.
    first_step_at: float | None = field(init=False, default=None)
    first_steps: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.start = self.clock()

    def update(self, steps_done: int, loss: float | None) -> None:
        if self.first_step_at is None:
            self.first_step_at, self.first_steps = self.clock(), steps_done
        self.steps = steps_done
        if loss is not None:
            self.loss = float(loss)

    @property
    def elapsed_s(self) -> float:
        return self.clock() - self.start

    @property
    def rate(self) -> float | None:
        """Steps per second after the first step, None until a second step has finished."""
        if self.first_step_at is None or self.steps <= self.first_steps:
            return None
        elapsed = self.clock() - self.first_step_at
        return (self.steps - self.first_steps) / elapsed if elapsed > 0 else None

    @property
    def eta_s(self) -> float | None:
        rate = self.rate
        if rate is None or self.total_steps is None:
            return None
        return max(0, self.total_steps - self.steps) / rate

    @property
    def label(self) -> str:
        return f"{self.stage} epoch {self.epoch}/{self.epochs}"

    def line(self) -> str:
        """The one-line record printed when stderr is not a terminal."""
        parts = [f"{self.label}: step {self.steps}"]
        if self.total_steps:
            parts[0] += f"/{self.total_steps} {100 * self.steps / self.total_steps:.0f}%"
        rate = self.rate
        if rate is not None:
            parts.append(f"{rate:.1f} steps/s")
        eta = self.eta_s
        if eta is not None:
            parts.append(f"ETA {_duration(eta)}")
        if self.loss is not None:
            parts.append(f"loss {self.loss:.4f}")
        return " ".join(parts)


class PlainRecords:
    """Prints an epoch's meter as a plain line at most every ``interval_s`` seconds."""

    def __init__(self, emit: Emit, interval_s: float = 15.0) -> None:
        self.emit, self.interval_s = emit, interval_s
        self.last = 0.0

    def start(self, meter: EpochMeter) -> None:
        self.last = meter.clock()

    def update(self, meter: EpochMeter) -> None:
        now = meter.clock()
        if now - self.last >= self.interval_s:
            self.last = now
            self.emit(meter.line())

    def stop(self, meter: EpochMeter) -> None:
        """Nothing: the epoch summary line the loop prints says how it ended."""


class LiveBar:
    """A transient rich progress bar on stderr for one epoch at a time."""

    def __init__(self, console=None) -> None:
        from rich.console import Console

        self.console = console or Console(stderr=True)
        self.progress = None
        self.task = None

    def start(self, meter: EpochMeter) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[loss]}"),
            console=self.console,
            transient=True,
        )
        self.progress.start()
        self.task = self.progress.add_task(meter.label, total=meter.total_steps, rate="", loss="")

    def update(self, meter: EpochMeter) -> None:
        rate = meter.rate
        self.progress.update(
            self.task,
            completed=meter.steps,
            total=meter.total_steps,
            rate="" if rate is None else f"{rate:.1f} steps/s",
            loss="" if meter.loss is None else f"loss {meter.loss:.4f}",
        )

    def stop(self, meter: EpochMeter) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


def default_display(emit: Emit, interval_s: float = 15.0):
    """A live bar when stderr is a terminal, plain one-line records otherwise."""
    stream = sys.stderr
    if hasattr(stream, "isatty") and stream.isatty():
        return LiveBar()
    return PlainRecords(emit, interval_s)


def progress_callback(
    stage: str, epochs: int, display, clock: Callable[[], float] = time.monotonic
):
    """A Keras callback that drives ``display`` (LiveBar or PlainRecords) during ``fit``.

    Args:
        stage: the stage name, e.g. ``student_qat``.
        epochs: epochs in the stage (for "epoch 2/6").
        display: where the meter goes, see `default_display`.
        clock: monotonic seconds (tests pass a fake clock).
    """
    from edgeped._keras import keras

    class TrainingProgress(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.meter: EpochMeter | None = None

        def on_epoch_begin(self, epoch, logs=None):
            total = (self.params or {}).get("steps")
            self.meter = EpochMeter(stage, epoch + 1, epochs, total, clock=clock)
            display.start(self.meter)

        def on_train_batch_end(self, batch, logs=None):
            if self.meter is None:
                return
            loss = (logs or {}).get("loss")
            self.meter.update(batch + 1, None if loss is None else float(loss))
            display.update(self.meter)

        def on_epoch_end(self, epoch, logs=None):
            if self.meter is not None:
                display.stop(self.meter)

        def on_train_end(self, logs=None):
            if self.meter is not None:
                display.stop(self.meter)
                self.meter = None

    return TrainingProgress()


__all__ = ["EpochMeter", "LiveBar", "PlainRecords", "default_display", "progress_callback"]
