"""The consistency wrapper's training step: which views the label and the Jensen-Shannon term
teach, checked against the gradient of the loss written out by hand."""

import numpy as np
import pytest

from edgeped.data.pipeline import VIEW2_KEY
from edgeped.train.consistency import make_consistent
from edgeped.train.losses import jensen_shannon

WEIGHT = 3.0
LR = 0.5


def _setup():
    from edgeped._keras import keras, tf

    keras.utils.set_random_seed(0)
    image = keras.Input((5,), name="image")
    model = keras.Model({"image": image}, keras.layers.Dense(1, activation="sigmoid")(image))

    def hard_loss(y, p):
        return tf.reduce_mean(keras.losses.binary_crossentropy(y, p))

    rng = np.random.default_rng(1)
    x = {
        "image": rng.normal(size=(6, 5)).astype("float32"),
        VIEW2_KEY: rng.normal(size=(6, 5)).astype("float32"),
    }
    y = np.array([[1], [0], [1], [1], [0], [0]], "float32")
    return keras, tf, model, hard_loss, x, y


def _expected_step(tf, model, hard_loss, x, y, anchor):
    """The weights after one SGD step on the loss the wrapper documents."""
    with tf.GradientTape() as tape:
        p1 = model({"image": x["image"]}, training=True)
        p2 = model({"image": x[VIEW2_KEY]}, training=True)
        if anchor == "clean":
            loss = 0.5 * (hard_loss(y, p1) + hard_loss(y, p2)) + WEIGHT * jensen_shannon(
                p1, tf.stop_gradient(p2)
            )
        else:
            loss = hard_loss(y, p1) + WEIGHT * jensen_shannon(p1, p2)
    grads = tape.gradient(loss, model.trainable_variables)
    return [
        v.numpy() - LR * g.numpy() for v, g in zip(model.trainable_variables, grads, strict=True)
    ]


@pytest.mark.parametrize("anchor", ["augmented", "clean"])
def test_train_step_follows_the_documented_loss(anchor):
    keras, tf, model, hard_loss, x, y = _setup()
    want = _expected_step(tf, model, hard_loss, x, y, anchor)
    wrapper = make_consistent(model, hard_loss, weight=WEIGHT, anchor=anchor)
    wrapper.compile(optimizer=keras.optimizers.SGD(LR))
    logs = wrapper.train_step(({k: tf.constant(v) for k, v in x.items()}, tf.constant(y)))
    assert float(logs["js_loss"]) > 0
    for got, expected in zip(model.get_weights(), want, strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_the_two_anchors_teach_differently():
    """Guards the test above: the two losses' steps are not the same step."""
    keras, tf, model, hard_loss, x, y = _setup()
    clean = _expected_step(tf, model, hard_loss, x, y, "clean")
    augmented = _expected_step(tf, model, hard_loss, x, y, "augmented")
    assert not np.allclose(clean[0], augmented[0], atol=1e-4)


def test_unknown_anchor_is_refused():
    _, _, model, hard_loss, _, _ = _setup()
    with pytest.raises(ValueError, match="anchor must be one of"):
        make_consistent(model, hard_loss, weight=1.0, anchor="teacher")
