"""Online distillation: the student learns from labels and the teacher's soft targets."""

from __future__ import annotations

from collections.abc import Callable

from edgeped.train.losses import distillation_loss


def make_distiller(student, teacher, hard_loss: Callable, *, temperature: float, alpha: float):
    """Wraps a student (float or QAT) so fit() minimises alpha*KD + (1 - alpha)*hard loss.

    The teacher runs in inference mode on the same augmented batch the student
    sees. Validation reports the hard loss and AUC-PR of the student alone.
    Save `distiller.student`, never the wrapper.
    """
    from edgeped._keras import keras, tf

    kd = distillation_loss(temperature)

    class Distiller(keras.Model):
        def __init__(self):
            super().__init__(name=f"distill_{student.name}")
            self.student = student
            self.teacher = teacher
            self.loss_tracker = keras.metrics.Mean(name="loss")
            self.kd_tracker = keras.metrics.Mean(name="kd_loss")
            self.auc = keras.metrics.AUC(curve="PR", name="auc_pr")

        @property
        def metrics(self):
            return [self.loss_tracker, self.kd_tracker, self.auc]

        def call(self, inputs, training=False):
            return self.student(inputs, training=training)

        def train_step(self, data):
            x, y = data[0], data[1]
            soft = self.teacher(x, training=False)
            with tf.GradientTape() as tape:
                pred = self.student(x, training=True)
                kd_value = kd(soft, pred)
                loss = alpha * kd_value + (1.0 - alpha) * hard_loss(y, pred)
                loss += tf.add_n(self.student.losses) if self.student.losses else 0.0
                # Gradients are summed over replicas under tf.distribute: scale this
                # replica's batch-mean loss by the replica count (a no-op on one).
                scaled = tf.nn.compute_average_loss(tf.reshape(loss, [1]))
            variables = self.student.trainable_variables
            self.optimizer.apply_gradients(
                zip(tape.gradient(scaled, variables), variables, strict=True)
            )
            self.loss_tracker.update_state(loss)
            self.kd_tracker.update_state(kd_value)
            self.auc.update_state(y, pred)
            return {m.name: m.result() for m in self.metrics}

        def test_step(self, data):
            x, y = data[0], data[1]
            pred = self.student(x, training=False)
            self.loss_tracker.update_state(hard_loss(y, pred))
            self.auc.update_state(y, pred)
            return {"loss": self.loss_tracker.result(), "auc_pr": self.auc.result()}

    return Distiller()


def distillation_decision(val_auc_pr: dict[str, float], margin: float) -> dict:
    """Distil only when the teacher beats the labels-only student on val AUC-PR by `margin`.

    Without a labels-only student to compare against, distillation runs (as asked).
    """
    teacher, student = val_auc_pr.get("teacher"), val_auc_pr.get("student")
    if teacher is None or student is None:
        return {
            "distill": True,
            "reason": "no labels-only student on val to compare the teacher against",
            "teacher_val_auc_pr": teacher,
            "student_val_auc_pr": student,
        }
    distill = teacher > student + margin
    return {
        "distill": distill,
        "reason": (
            f"teacher val AUC-PR {teacher:.4f} "
            + ("beats" if distill else "does not beat")
            + f" the labels-only student's {student:.4f} by more than {margin}"
        ),
        "teacher_val_auc_pr": teacher,
        "student_val_auc_pr": student,
    }
