"""The run's training record: `config.json` and `train_log.json`.

`train_log.json` holds one entry per stage (history, best epoch, learning-rate
cuts, mined kinds, the decision behind it), the lineage of the checkpoints and the
distillation decision. Stages may run in separate `edgeped train` calls on one run
directory: a later call keeps the earlier entries of the same dataset and replaces
those it reruns.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeped.fileio import write_json_atomic
from edgeped.layout import CONFIG_FILE, TRAIN_LOG_FILE
from edgeped.provenance import stamp
from edgeped.train.config import STAGES, TrainConfig

if TYPE_CHECKING:
    from edgeped.data.shards import Dataset


@dataclass(frozen=True)
class StageResult:
    name: str
    checkpoint: str
    epochs: int
    seconds: float
    history: dict[str, list[float]] = field(default_factory=dict)
    best_val_auc_pr: float | None = None
    parent: str | None = None
    mined: list[dict] = field(default_factory=list)
    best_epoch: int | None = None
    max_epochs: int | None = None
    # Why a stage ran the way it did (e.g. distillation skipped), for train_log.json.
    decision: dict | None = None
    # Epochs after which the plateau schedule cut the learning rate.
    lr_cuts: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The stage's entry in train_log.json."""
        return asdict(self)


def _read_log(path: Path) -> dict:
    from edgeped.schemas import read_checked

    return read_checked(
        path,
        "edgeped.train_log",
        "train log",
        "the run's train_log.json is damaged: train into a new run directory, or --overwrite",
    )


def earlier_val_auc_pr(run: Path, manifest_sha256: str) -> dict[str, float]:
    """Best val AUC-PR per stage from an earlier train_log of the same dataset (else {})."""
    log = run / TRAIN_LOG_FILE
    if not log.is_file():
        return {}
    earlier = _read_log(log)
    if earlier.get("dataset_manifest_sha256") != manifest_sha256:
        return {}
    return {
        st["name"]: float(st["best_val_auc_pr"])
        for st in earlier.get("stages", [])
        if st.get("best_val_auc_pr") is not None
    }


def write_train_records(
    run: Path,
    config: TrainConfig,
    dataset: Dataset,
    pos_weight: float,
    results: list[StageResult],
) -> None:
    """Writes config.json and train_log.json (merged with an earlier log), each atomically."""
    from edgeped.train.run_dir import dataset_record

    log_path = run / TRAIN_LOG_FILE
    previous = {}
    if log_path.is_file():
        previous = {s["name"]: s for s in _read_log(log_path).get("stages", [])}
    previous.update({r.name: r.to_dict() for r in results})
    write_json_atomic(
        run / CONFIG_FILE,
        {
            **stamp("edgeped.train_config"),
            "config": config.to_dict(),
            "stages": [name for name in STAGES if name in previous],
            "dataset_manifest_sha256": dataset.manifest_sha256,
            "dataset": dataset_record(run, dataset.root, dataset.manifest_sha256),
        },
    )
    write_json_atomic(
        log_path,
        {
            **stamp("edgeped.train_log"),
            "dataset_manifest_sha256": dataset.manifest_sha256,
            "imbalance": config.imbalance,
            "positive_weight": pos_weight,
            "loss": config.loss,
            "stages": list(previous.values()),
            "parents": {v["checkpoint"]: v["parent"] for v in previous.values() if v.get("parent")},
            "distillation": next(
                (v["decision"] for v in previous.values() if v["name"] == "student_distilled"),
                None,
            ),
        },
    )
