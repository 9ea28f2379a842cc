"""The single place that sets up TensorFlow with Keras 2 (tf_keras) for tfmot.

tfmot 0.8 works only with Keras 2 objects; a Keras 3 model handed to it fails
with confusing errors. Every module that needs TensorFlow or Keras imports them
from here, inside the function that needs them, so `edgeped --help`, evaluation
and gating never pay for a TensorFlow import. The import is also where the
libraries' start-up chatter is kept out of the user's log (`edgeped.quiet`).
"""

from __future__ import annotations

import os

from edgeped import quiet

os.environ["TF_USE_LEGACY_KERAS"] = "1"
quiet.configure_environment()

with quiet.filtered_stderr():
    import tensorflow as tf  # noqa: E402
    import tf_keras as keras  # noqa: E402

quiet.quiet_python_loggers()


def tfmot():
    """Imports tensorflow_model_optimization after the Keras 2 switch is in place."""
    import tensorflow_model_optimization as mot

    return mot


__all__ = ["keras", "tf", "tfmot"]
