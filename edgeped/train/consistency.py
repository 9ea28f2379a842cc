"""Consistency training (AugMix's Jensen-Shannon term): the model scores two views of each
crop and is pulled towards the same score on both, so that what the augmentations change
stops moving the score. The views are two independent augmented draws (the label teaches the
first), or, anchored to the clean crop, one augmented draw and the crop unaugmented (the label
teaches both; the term moves only the augmented score)."""

from __future__ import annotations

from collections.abc import Callable

from edgeped.data.augment import CONSISTENCY_ANCHORS
from edgeped.data.pipeline import VIEW2_KEY
from edgeped.train.losses import jensen_shannon


def make_consistent(model, hard_loss: Callable, *, weight: float, anchor: str = "augmented"):
    """Wraps a model (float or QAT) so fit() minimises hard loss + weight * JS(view 1, view 2).

    anchor "augmented": hard loss on view 1, JS through both views. anchor "clean" (view 2
    is the crop unaugmented): the mean hard loss of both views, JS against the clean score
    held fixed, so the clean view learns only from its label.

    Training batches carry the second view under VIEW2_KEY (PipelineOptions.second_view);
    both views go through the model as one batch (batch norm sees both). Validation reports
    the hard loss and AUC-PR of the model alone. Save `wrapper.model_`, never the wrapper.
    """
    from edgeped._keras import keras, tf

    if anchor not in CONSISTENCY_ANCHORS:
        raise ValueError(f"anchor must be one of {CONSISTENCY_ANCHORS}, got {anchor!r}")
    clean = anchor == "clean"

    class Consistent(keras.Model):
        def __init__(self):
            super().__init__(name=f"consistent_{model.name}")
            self.model_ = model
            self.loss_tracker = keras.metrics.Mean(name="loss")
            self.js_tracker = keras.metrics.Mean(name="js_loss")
            self.auc = keras.metrics.AUC(curve="PR", name="auc_pr")

        @property
        def metrics(self):
            return [self.loss_tracker, self.js_tracker, self.auc]

        def call(self, inputs, training=False):
            return self.model_(inputs, training=training)

        def train_step(self, data):
            x, y = data[0], data[1]
            first = {k: v for k, v in x.items() if k != VIEW2_KEY}
            both = {
                k: tf.concat([v, x[VIEW2_KEY] if k == "image" else v], 0) for k, v in first.items()
            }
            with tf.GradientTape() as tape:
                p1, p2 = tf.split(self.model_(both, training=True), 2)
                if clean:
                    js = jensen_shannon(p1, tf.stop_gradient(p2))
                    loss = 0.5 * (hard_loss(y, p1) + hard_loss(y, p2)) + weight * js
                else:
                    js = jensen_shannon(p1, p2)
                    loss = hard_loss(y, p1) + weight * js
                loss += tf.add_n(self.model_.losses) if self.model_.losses else 0.0
                # Summed over replicas under tf.distribute: scale by the replica count.
                scaled = tf.nn.compute_average_loss(tf.reshape(loss, [1]))
            variables = self.model_.trainable_variables
            self.optimizer.apply_gradients(
                zip(tape.gradient(scaled, variables), variables, strict=True)
            )
            self.loss_tracker.update_state(loss)
            self.js_tracker.update_state(js)
            self.auc.update_state(y, p1)
            return {m.name: m.result() for m in self.metrics}

        def test_step(self, data):
            x, y = data[0], data[1]
            pred = self.model_(x, training=False)
            self.loss_tracker.update_state(hard_loss(y, pred))
            self.auc.update_state(y, pred)
            return {"loss": self.loss_tracker.result(), "auc_pr": self.auc.result()}

    return Consistent()
