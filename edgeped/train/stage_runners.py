"""How each training stage trains, registered under the name its declaration has
(edgeped.training_stages):

- teacher: the float teacher on labels.
- student: the float student on labels only (the "no distillation" baseline).
- student_distilled: the float student on labels + the teacher's soft targets.
- student_qat: quantization-aware training (tfmot) of the best float student
  (distilled if present), distilled again when a teacher is there.
- student_pruned: magnitude pruning of the same float student (tfmot).
Students optionally run rounds of hard-negative mining after their main epochs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from edgeped.layout import CHECKPOINTS
from edgeped.registry import Registry
from edgeped.train.checkpoints import fix_input_ranges, load_checkpoint, save_h5
from edgeped.train.distill import distillation_decision
from edgeped.train.session import Session
from edgeped.train.train_log import StageResult
from edgeped.training_stages import TRAINING_STAGES

STAGE_RUNNERS: Registry[Callable[[Session], StageResult]] = Registry("training stage")
_stage = STAGE_RUNNERS.register


@_stage("teacher")
def _teacher(s: Session) -> StageResult:
    from edgeped.models import build_model

    model = build_model(s.config.teacher)
    return s.fit(model, model, "teacher", s.stage_config("teacher"), s.run / CHECKPOINTS["teacher"])


def _train_student(s: Session, name: str, distilled: bool) -> StageResult:
    from edgeped.models import build_model
    from edgeped.train.distill import make_distiller

    student = build_model(s.config.student)
    trainee = student
    if distilled:
        d = s.config.distill
        trainee = make_distiller(
            student, s.teacher(), s.hard_loss, temperature=d.temperature, alpha=d.alpha
        )
    out, best = s.run / CHECKPOINTS[name], {"value": -1.0}
    result = s.fit(trainee, student, name, s.stage_config(name), out, best=best)
    if s.config.mining.rounds:
        student.set_weights(load_checkpoint(out).get_weights())  # continue from the best epoch
        mined = s.mine_rounds(student, trainee, name, out, best)
        result = replace(result, mined=mined, best_val_auc_pr=best["value"])
    return result


@_stage("student")
def _student(s: Session) -> StageResult:
    return _train_student(s, "student", distilled=False)


@_stage("student_distilled")
def _student_distilled(s: Session) -> StageResult:
    decision = distillation_decision(s.val_auc_pr, s.config.distill.min_teacher_gain)
    if not decision["distill"]:
        s.progress(f"student_distilled: skipped: {decision['reason']}")
        # A checkpoint left by an earlier run would otherwise be taken for this one's.
        (s.run / CHECKPOINTS["student_distilled"]).unlink(missing_ok=True)
        return StageResult("student_distilled", "", 0, 0.0, max_epochs=0, decision=decision)
    result = _train_student(s, "student_distilled", distilled=True)
    return replace(result, decision=decision)


@_stage("student_qat")
def _student_qat(s: Session) -> StageResult:
    from edgeped._keras import tfmot
    from edgeped.train.distill import make_distiller

    mot = tfmot()
    scope = mot.quantization.keras.quantize_scope
    parent = s.best_parent("student_qat")
    qat_model = mot.quantization.keras.quantize_model(load_checkpoint(s.run / parent))
    fix_input_ranges(qat_model, s.metadata_range, s.image_range)
    trainee = qat_model
    if parent == CHECKPOINTS["student_distilled"]:
        d = s.config.distill
        trainee = make_distiller(
            qat_model, s.teacher(), s.hard_loss, temperature=d.temperature, alpha=d.alpha
        )
    out = s.run / CHECKPOINTS["student_qat"]
    result = s.fit(
        trainee, qat_model, "student_qat", s.stage_config("student_qat"), out, scope=scope
    )
    # Re-pin the input range on the best checkpoint and store that as the QAT model.
    best = load_checkpoint(out)
    fix_input_ranges(best, s.metadata_range, s.image_range)
    save_h5(best, out, scope)
    parent_stage = parent.removesuffix(".h5")
    decision = {
        "parent": parent,
        "reason": "the float student with the best val AUC-PR",
        "candidates_val_auc_pr": {
            n: s.val_auc_pr[n] for n in TRAINING_STAGES["student_qat"].parents if n in s.val_auc_pr
        },
        "parent_val_auc_pr": s.val_auc_pr.get(parent_stage),
    }
    return replace(result, parent=parent, decision=decision)


@_stage("student_pruned")
def _student_pruned(s: Session) -> StageResult:
    from edgeped._keras import tfmot

    sparsity = tfmot().sparsity.keras
    parent = s.best_parent("student_pruned")
    stage = s.stage_config("student_pruned")
    steps = (stage.steps_per_epoch or s.epoch_steps) * max(stage.epochs, 1)
    end = max(1, int(steps * 0.8))
    # tfmot updates masks every `frequency` steps (100 by default); short schedules need it finer.
    schedule = sparsity.PolynomialDecay(
        0.0, s.config.prune_final_sparsity, begin_step=0, end_step=end, frequency=max(1, end // 10)
    )
    pruned = sparsity.prune_low_magnitude(
        load_checkpoint(s.run / parent), pruning_schedule=schedule
    )
    tmp_out = s.run / ".student_pruned_wrapped.h5"
    result = s.fit(
        pruned,
        pruned,
        "student_pruned",
        replace(stage, steps_per_epoch=stage.steps_per_epoch or s.epoch_steps),
        tmp_out,
        scope=sparsity.prune_scope,
        callbacks=[sparsity.UpdatePruningStep()],
    )
    tmp_out.unlink(missing_ok=True)
    # The final epoch reaches the target sparsity; keep it rather than an earlier, denser best.
    save_h5(sparsity.strip_pruning(pruned), s.run / CHECKPOINTS["student_pruned"])
    return replace(result, checkpoint=CHECKPOINTS["student_pruned"], parent=parent)
