"""When a training stage keeps a checkpoint, cuts its learning rate and stops.

One rule for every stage, from the validation AUC-PR at each epoch's end:
- keep: the epoch beats the best so far (the best is shared across a student's
  main epochs and its mining rounds, so a round is kept only if it helps);
- stop: `patience` epochs in a row without a gain (patience 0 never stops early);
- cut (plateau schedule): `cut_after` epochs without a gain, and at least
  `cut_after` epochs since the last cut, multiply the rate by PLATEAU_FACTOR. A
  stage that stops at this epoch is not cut.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Verdict:
    keep: bool
    cut: bool
    stop: bool


@dataclass
class EpochPolicy:
    patience: int
    cut_after: int = 0  # 0: no plateau cuts (a fixed schedule)
    best: dict = field(default_factory=lambda: {"value": -1.0})
    best_epoch: int | None = None
    since_best: int = 0
    epochs: int = 0
    lr_cuts: list[int] = field(default_factory=list)

    @classmethod
    def for_stage(cls, patience: int, schedule: str, best: dict | None = None) -> EpochPolicy:
        """The plateau schedule cuts after half the patience (at least 1) without a gain."""
        cut_after = max(1, patience // 2) if schedule == "plateau" else 0
        return cls(patience, cut_after, best if best is not None else {"value": -1.0})

    def step(self, epoch: int, value: float) -> Verdict:
        """Records epoch `epoch` (1-based) with val AUC-PR `value` and says what to do."""
        self.epochs = epoch
        keep = value > self.best["value"]
        if keep:
            self.best["value"] = value
            self.best_epoch, self.since_best = epoch, 0
        else:
            self.since_best += 1
        stop = self.patience > 0 and self.since_best >= self.patience
        last_cut = self.lr_cuts[-1] if self.lr_cuts else 0
        cut = bool(
            self.cut_after
            and not stop
            and self.since_best >= self.cut_after
            and epoch - last_cut >= self.cut_after
        )
        if cut:
            self.lr_cuts.append(epoch)
        return Verdict(keep, cut, stop)
