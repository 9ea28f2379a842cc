"""Weight averaging: the EMA follows its formula, validation and the saved checkpoint see the
average, and the live weights come back for the next epoch."""

import numpy as np
import pytest

from edgeped.train.averaging import averaging_callback
from edgeped.train.config import StageConfig


def _model(keras):
    inputs = keras.Input((4,))
    x = keras.layers.Dense(8, activation="relu")(inputs)
    x = keras.layers.BatchNormalization()(x)
    model = keras.Model(inputs, keras.layers.Dense(1)(x))
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    return model


def _data(n=64):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 4)).astype("float32")
    return x, (x @ np.array([1.0, -2.0, 0.5, 3.0], "float32"))[:, None]


def test_checkpoint_and_validation_see_the_average_and_live_weights_come_back():
    from edgeped._keras import keras

    keras.utils.set_random_seed(0)
    model = _model(keras)
    x, y = _data()
    momentum = 0.8
    seen: dict = {"batches": [], "epoch_end": [], "val_loss": []}

    class Record(keras.callbacks.Callback):  # stands where the checkpoint is saved
        def on_train_batch_end(self, batch, logs=None):
            seen["batches"].append([w.numpy().copy() for w in model.weights])

        def on_epoch_end(self, epoch, logs=None):
            seen["epoch_end"].append([w.numpy().copy() for w in model.weights])
            seen["val_loss"].append(logs["val_loss"])

    start = [w.numpy().copy() for w in model.weights]
    model.fit(
        x,
        y,
        batch_size=16,
        epochs=2,
        validation_data=(x, y),
        shuffle=False,
        verbose=0,
        callbacks=[Record(), averaging_callback(model, momentum)],
    )
    # The EMA by hand, with TensorFlow's warm-up d = min(m, (1 + t) / (10 + t)).
    shadow = [w.astype("float64") for w in start]
    expected_at_epoch_end = []
    for t, live in enumerate(seen["batches"], start=1):
        d = min(momentum, (1 + t) / (10 + t))
        shadow = [d * s + (1 - d) * w for s, w in zip(shadow, live, strict=True)]
        if t % 4 == 0:
            expected_at_epoch_end.append(shadow)
    for saved, expected, live in zip(
        seen["epoch_end"], expected_at_epoch_end, seen["batches"][3::4], strict=True
    ):
        for s, e in zip(saved, expected, strict=True):
            np.testing.assert_allclose(s, e, rtol=1e-4, atol=1e-5)
        assert not all(
            np.allclose(s, w) for s, w in zip(saved, live, strict=True)
        )  # not the live weights
    # After training the live weights of the last step are back.
    for w, live in zip(model.weights, seen["batches"][-1], strict=True):
        np.testing.assert_allclose(w.numpy(), live)
    # The val loss of epoch 2 is the averaged model's.
    for w, s in zip(model.weights, seen["epoch_end"][-1], strict=True):
        w.assign(s)
    assert model.evaluate(x, y, verbose=0) == pytest.approx(seen["val_loss"][-1], rel=1e-5)


def test_a_second_epoch_trains_from_the_live_weights_not_the_average():
    from edgeped._keras import keras

    keras.utils.set_random_seed(0)
    plain, averaged = _model(keras), _model(keras)
    averaged.set_weights(plain.get_weights())
    x, y = _data()
    plain.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0, validation_data=(x, y))
    averaged.fit(
        x,
        y,
        batch_size=16,
        epochs=2,
        shuffle=False,
        verbose=0,
        validation_data=(x, y),
        callbacks=[averaging_callback(averaged, 0.9)],
    )
    for a, b in zip(plain.get_weights(), averaged.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("value", [-0.1, 1.0, 1.5])
def test_bad_momentum_is_refused_naming_the_key(value):
    with pytest.raises(ValueError, match="ema must be in"):
        StageConfig(2, 1e-3, ema=value)
