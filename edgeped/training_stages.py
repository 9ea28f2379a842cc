"""The training stages, one declaration each, in the order `edgeped train` runs them.

A declaration is the one place that names a stage's config key (its epochs and learning
rate), its checkpoint, the models `edgeped convert` makes from it, the stages it is built
on and its help text. The run layout (`edgeped.layout`), the training config, the training
loop, the resume rules (`edgeped.train.run_dir`) and the CLI help all read it; the code
that trains a stage is registered under the same name in `edgeped.train.stage_runners`.
numpy- and TensorFlow-free: the gate and the CLI import it at start-up.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgeped.errors import EdgepedError
from edgeped.registry import Registry

SCHEDULES = ("cosine", "plateau")
# The modes edgeped.convert.converter registers (a test keeps the two equal).
CONVERSION_MODES = ("float32", "ptq-int8", "qat-int8")


@dataclass(frozen=True)
class StageConfig:
    """One training stage: at most `epochs` epochs, stopped early on validation.

    `schedule` "cosine": the learning rate decays over `epochs` (the planned length);
    "plateau": it stays at `learning_rate` and is cut x0.3 whenever val AUC-PR has
    not improved for `patience` // 2 epochs (at least 1), so the low-rate epochs come
    when the stage actually stalls, however long it runs. With `patience` > 0, the
    stage stops once val AUC-PR has not improved for that many epochs (0 runs every
    epoch); the checkpoint is the best val AUC-PR epoch. `steps_per_epoch` caps an
    epoch (quick runs); None = one pass over train. `ema` > 0 validates and
    checkpoints an exponential moving average of the weights with that momentum per
    step (see edgeped.train.averaging); 0 = the live weights.
    """

    epochs: int
    learning_rate: float
    steps_per_epoch: int | None = None
    patience: int = 0
    schedule: str = "cosine"
    ema: float = 0.0

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.epochs < 0:
            raise ValueError(f"epochs must be >= 0, got {self.epochs}")
        if self.patience < 0:
            raise ValueError(f"patience must be >= 0 (0 = no early stop), got {self.patience}")
        if not 0 < self.learning_rate < 1:
            raise ValueError(f"learning_rate must be in (0, 1), got {self.learning_rate}")
        if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
            raise ValueError(f"steps_per_epoch must be >= 1 or None, got {self.steps_per_epoch}")
        if not 0.0 <= self.ema < 1.0:
            raise ValueError(
                f"ema must be in [0, 1) (0 = off; e.g. 0.99 averages ~100 steps), got {self.ema}"
            )


@dataclass(frozen=True)
class StageOutput:
    """One .tflite model `edgeped convert` makes from a stage's checkpoint."""

    model: str  # the model's name: RUN/<model>.tflite
    mode: str  # one of CONVERSION_MODES
    # The stages whose checkpoint it converts, the first found wins; () = the declaring stage.
    start_from: tuple[str, ...] = ()


@dataclass(frozen=True)
class TrainingStage:
    """One training stage: what it reads, what it writes, what it is built on.

    Attributes:
        name: the stage's name (`--stage NAME`); it writes `<name>.h5`.
        config_key: the train-config table with its epochs and learning rate; stages may
            share one (student and student_distilled read `student_stage`).
        schedule: the default of `config_key`, given by the first stage that names the key.
        help: words `edgeped train --help` shows after the name ("" = the name alone).
        default: run when neither the config nor `--stage` names the stages.
        parents: the stages whose checkpoint this one starts from (the best on val wins,
            the first listed on a tie); a change to them makes this one's checkpoint stale.
        own_keys: config keys only this stage reads: `--resume` may change them when the
            stage runs again.
        outputs: the models `edgeped convert` makes from it.
    """

    name: str
    config_key: str
    schedule: StageConfig | None = None
    help: str = ""
    default: bool = False
    parents: tuple[str, ...] = ()
    own_keys: tuple[str, ...] = ()
    outputs: tuple[StageOutput, ...] = ()

    @property
    def checkpoint(self) -> str:
        """The checkpoint file in the run directory."""
        return f"{self.name}.h5"


TRAINING_STAGES: Registry[TrainingStage] = Registry("training stage")


def declare(stage: TrainingStage) -> TrainingStage:
    """Adds `stage` after the ones declared before it (pipeline order).

    Raises:
        ValueError: the declaration contradicts the earlier ones (a bug, found at import).
    """
    known = set(TRAINING_STAGES)
    keys = {s.config_key for s in TRAINING_STAGES.values()}
    if (stage.schedule is None) == (stage.config_key not in keys):
        raise ValueError(
            f"training stage {stage.name!r}: the first stage naming {stage.config_key!r} "
            "gives its default schedule, later ones share it"
        )
    starts = [s for out in stage.outputs for s in out.start_from]
    undeclared = sorted((set(stage.parents) - known) | (set(starts) - known - {stage.name}))
    if undeclared:
        raise ValueError(f"training stage {stage.name!r} names undeclared stage(s) {undeclared}")
    models = {out.model for s in TRAINING_STAGES.values() for out in s.outputs}
    for out in stage.outputs:
        if out.mode not in CONVERSION_MODES or out.model in models:
            raise ValueError(
                f"training stage {stage.name!r}: output {out.model!r} needs a new name and a "
                f"mode of {CONVERSION_MODES}, got {out.mode!r}"
            )
    return TRAINING_STAGES.register(stage.name)(stage)


declare(
    TrainingStage(
        "teacher",
        config_key="teacher_stage",
        schedule=StageConfig(30, 2e-3, patience=6, schedule="plateau"),
        own_keys=("teacher", "teacher_stage"),
        outputs=(StageOutput("teacher_float32", "float32"),),
    )
)
declare(
    TrainingStage(
        "student",
        config_key="student_stage",
        schedule=StageConfig(40, 3e-3, patience=8, schedule="plateau"),
        help="labels only",
        default=True,
        outputs=(StageOutput("student_float32", "float32"),),
    )
)
declare(
    TrainingStage(
        "student_distilled",
        config_key="student_stage",
        parents=("teacher",),
        own_keys=("distill",),
        outputs=(StageOutput("student_distilled_float32", "float32"),),
    )
)
declare(
    TrainingStage(
        "student_qat",
        config_key="qat_stage",
        schedule=StageConfig(8, 3e-4, patience=3, schedule="plateau"),
        default=True,
        parents=("student", "student_distilled"),
        own_keys=("qat_stage",),
        outputs=(
            # The int8 baseline QAT must beat: PTQ of the same float student QAT started
            # from (distilled if present).
            StageOutput("student_ptq_int8", "ptq-int8", ("student_distilled", "student")),
            StageOutput("student_qat_int8", "qat-int8"),
        ),
    )
)
declare(
    TrainingStage(
        "student_pruned",
        config_key="prune_stage",
        schedule=StageConfig(2, 5e-4),
        parents=("student", "student_distilled"),
        own_keys=("prune_stage", "prune_final_sparsity"),
        outputs=(
            StageOutput("student_pruned_float32", "float32"),
            StageOutput("student_pruned_ptq_int8", "ptq-int8"),
        ),
    )
)


def stage_names() -> tuple[str, ...]:
    """Every stage, in pipeline order."""
    return tuple(TRAINING_STAGES)


def default_stages() -> tuple[str, ...]:
    """The stages a config runs unless it names others."""
    return tuple(s.name for s in TRAINING_STAGES.values() if s.default)


def schedule_defaults() -> dict[str, StageConfig]:
    """Config key -> its default StageConfig, in pipeline order (one per key)."""
    return {s.config_key: s.schedule for s in TRAINING_STAGES.values() if s.schedule is not None}


def built_on(name: str) -> tuple[str, ...]:
    """The stages whose checkpoint is built on `name`'s, directly or not (pipeline order)."""
    found = {name}
    for stage in TRAINING_STAGES.values():
        if found & set(stage.parents):
            found.add(stage.name)
    return tuple(s for s in TRAINING_STAGES if s in found and s != name)


def check_stage_names(stages: tuple[str, ...]) -> None:
    """Refuses a stage name that is not declared.

    Raises:
        EdgepedError: naming the unknown stage(s) and the declared ones.
    """
    unknown = sorted(set(stages) - set(TRAINING_STAGES))
    if unknown:
        raise EdgepedError(
            f"unknown stage(s) {unknown}", f"use some of {', '.join(TRAINING_STAGES)}"
        )
