"""Losses for a rare positive class, and teacher-to-student distillation.

All work on probabilities (our models end in a sigmoid); logits are recovered
with clipping where temperature scaling needs them.
"""

from __future__ import annotations

from collections.abc import Callable

from edgeped.registry import Registry

EPS = 1e-7
LOSSES: Registry[Callable[..., Callable]] = Registry("loss")
register = LOSSES.register


def _tf():
    from edgeped._keras import tf

    return tf


@register("bce")
def weighted_bce(pos_weight: float = 1.0, **_) -> Callable:
    """-(w_pos * y * log p + (1 - y) * log(1 - p)), averaged over the batch."""
    tf = _tf()

    def loss(y_true, y_pred):
        y = tf.cast(tf.reshape(y_true, [-1]), tf.float32)
        p = tf.clip_by_value(tf.cast(tf.reshape(y_pred, [-1]), tf.float32), EPS, 1.0 - EPS)
        return -tf.reduce_mean(pos_weight * y * tf.math.log(p) + (1.0 - y) * tf.math.log(1.0 - p))

    return loss


@register("focal")
def focal(gamma: float = 2.0, alpha: float = 0.25, **_) -> Callable:
    """Focal loss (Lin et al. 2017): -alpha_t (1 - p_t)^gamma log(p_t)."""
    tf = _tf()

    def loss(y_true, y_pred):
        y = tf.cast(tf.reshape(y_true, [-1]), tf.float32)
        p = tf.clip_by_value(tf.cast(tf.reshape(y_pred, [-1]), tf.float32), EPS, 1.0 - EPS)
        p_t = y * p + (1.0 - y) * (1.0 - p)
        alpha_t = y * alpha + (1.0 - y) * (1.0 - alpha)
        return -tf.reduce_mean(alpha_t * tf.pow(1.0 - p_t, gamma) * tf.math.log(p_t))

    return loss


def make_loss(name: str, **params) -> Callable:
    if name not in LOSSES:
        raise ValueError(f"loss must be one of {sorted(LOSSES)}, got {name!r}")
    return LOSSES[name](**params)


def logit(p):
    tf = _tf()
    p = tf.clip_by_value(p, EPS, 1.0 - EPS)
    return tf.math.log(p) - tf.math.log(1.0 - p)


def distillation_loss(temperature: float) -> Callable:
    """T^2 * BCE(sigmoid(z_t / T), sigmoid(z_s / T)): Hinton et al.'s soft targets for one logit."""
    tf = _tf()

    def loss(teacher_prob, student_prob):
        teacher_prob = tf.cast(teacher_prob, tf.float32)
        student_prob = tf.cast(student_prob, tf.float32)
        soft_t = tf.sigmoid(logit(tf.reshape(teacher_prob, [-1])) / temperature)
        soft_s = tf.clip_by_value(
            tf.sigmoid(logit(tf.reshape(student_prob, [-1])) / temperature), EPS, 1.0 - EPS
        )
        bce = -(soft_t * tf.math.log(soft_s) + (1.0 - soft_t) * tf.math.log(1.0 - soft_s))
        return temperature**2 * tf.reduce_mean(bce)

    return loss


def jensen_shannon(p1, p2):
    """The Jensen-Shannon divergence between two Bernoulli scores, averaged over the batch:
    0.5 KL(p1 || m) + 0.5 KL(p2 || m), m = (p1 + p2) / 2, in nats (at most ln 2)."""
    tf = _tf()
    p1 = tf.clip_by_value(tf.cast(tf.reshape(p1, [-1]), tf.float32), EPS, 1.0 - EPS)
    p2 = tf.clip_by_value(tf.cast(tf.reshape(p2, [-1]), tf.float32), EPS, 1.0 - EPS)
    m = 0.5 * (p1 + p2)

    def kl(p):
        return p * tf.math.log(p / m) + (1.0 - p) * tf.math.log((1.0 - p) / (1.0 - m))

    return tf.reduce_mean(0.5 * (kl(p1) + kl(p2)))
