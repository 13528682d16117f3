"""Keras 2 (tf-keras) for everything the trainer builds, and the check that no Keras 3 object reaches it."""
from __future__ import annotations

import tensorflow as tf
import tf_keras as keras

if tf.keras.Model is not keras.Model:   # tf.keras was resolved (to Keras 3) before cvae set TF_USE_LEGACY_KERAS=1
    raise ImportError("tf.keras is Keras 3 in this process: set TF_USE_LEGACY_KERAS=1 before TensorFlow is "
                      "imported (or import cvae first)")

KERAS2_TYPES = (keras.layers.Layer, keras.optimizers.Optimizer, keras.optimizers.legacy.Optimizer,
                keras.optimizers.schedules.LearningRateSchedule, keras.callbacks.Callback)


def require_keras2(**objects) -> None:
    """Raise TypeError naming the first object that is not a Keras 2 (tf-keras) model, layer, optimizer, learning-rate
    schedule or callback (a Keras 3 one would mix two Keras runtimes in one training step)."""
    for name, obj in objects.items():
        items = obj if isinstance(obj, (list, tuple)) else [obj]
        for item in items:
            if not isinstance(item, KERAS2_TYPES):
                raise TypeError(f"{name}: {type(item).__module__}.{type(item).__qualname__} is not a Keras 2 "
                                "(tf-keras) object; the trainer takes tf-keras objects only")
