"""Weight averaging for a training stage: an exponential moving average (EMA) of the weights.

With `ema = m` in a stage's table, every training step updates a shadow copy of the
model's floating-point weights, shadow <- d * shadow + (1 - d) * weights, with
d = min(m, (1 + t) / (10 + t)) at step t (the warm-up of TensorFlow's
ExponentialMovingAverage, so the first epochs are not dominated by the initial
weights). Each epoch's validation runs on the averaged weights, so early stopping,
the plateau cuts and the best-epoch checkpoint all judge (and keep) the average; the
optimizer keeps stepping the live weights, which are put back after the epoch.

The average covers every floating-point weight, batch-norm statistics and QAT
quantiser ranges included (a pinned range stays pinned: its average is itself);
integer counters are left alone.
"""

from __future__ import annotations


def averaging_callback(model, momentum: float):
    """A Keras callback that keeps and validates an EMA of `model`'s weights.

    `model` is the network the stage checkpoints (for a distilled stage, the student
    inside the distiller, not the distiller). Place it after the callback that saves
    the checkpoint at epoch end: the averaged weights stay in the model until this
    callback's own `on_epoch_end` puts the live ones back.
    """
    import tensorflow as tf

    from edgeped._keras import keras

    if not 0.0 < momentum < 1.0:
        raise ValueError(f"ema momentum must be in (0, 1), got {momentum}")

    class WeightAverage(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.weights = [w for w in model.weights if w.dtype.is_floating]
            self.shadow: list = []
            self.live: list = []
            self.steps = 0
            self.swapped = False
            self._update = None

        def on_train_begin(self, logs=None):
            with self.model.distribute_strategy.scope():
                self.shadow = [
                    tf.Variable(w.read_value(), trainable=False, name="ema") for w in self.weights
                ]
                self.live = [
                    tf.Variable(w.read_value(), trainable=False, name="live") for w in self.weights
                ]
            self.steps = 0
            weights, shadow = self.weights, self.shadow

            @tf.function
            def update(step):
                decay = tf.minimum(tf.constant(momentum, tf.float32), (1.0 + step) / (10.0 + step))
                for s, w in zip(shadow, weights, strict=True):
                    d = tf.cast(decay, s.dtype)
                    s.assign(d * s + (1.0 - d) * tf.cast(w, s.dtype))

            self._update = update

        def on_train_batch_end(self, batch, logs=None):
            self.steps += 1
            self._update(tf.constant(float(self.steps), tf.float32))

        def on_test_begin(self, logs=None):
            if self.swapped or not self.shadow:
                return
            for w, live, s in zip(self.weights, self.live, self.shadow, strict=True):
                live.assign(w)
                w.assign(s)
            self.swapped = True

        def on_epoch_end(self, epoch, logs=None):
            self.restore()

        def on_train_end(self, logs=None):
            self.restore()

        def restore(self) -> None:
            if self.swapped:
                for w, live in zip(self.weights, self.live, strict=True):
                    w.assign(live)
                self.swapped = False

    return WeightAverage()
