"""LAMB (You et al. 2020, "Large batch optimization for deep learning: training BERT in 76 minutes", Algorithm 2),
a Keras 2 optimizer: Adam's bias-corrected direction plus decoupled weight decay, each variable's step scaled by
the trust ratio ||w|| / ||direction|| so that every layer moves by about the learning rate relative to its own
size, whatever the batch. No maintained Keras 2 implementation exists (TensorFlow Addons has ended)."""
from __future__ import annotations

import tensorflow as tf

from cvae.keras2 import keras


class LAMB(keras.optimizers.Optimizer):
    """Layer-wise adaptive moments. A variable whose norm or whose direction's norm is zero (fresh biases) takes
    the plain Adam-with-decay step (trust ratio 1)."""

    def __init__(self, learning_rate=1e-3, beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-6,
                 decay: float = 0.0, name: str = "LAMB", **kwargs):
        super().__init__(name=name, **kwargs)
        self._learning_rate = self._build_learning_rate(learning_rate)
        self.beta_1, self.beta_2, self.epsilon, self.decay = beta_1, beta_2, epsilon, decay

    def build(self, var_list):
        super().build(var_list)
        if getattr(self, "_built", False):
            return
        self._built = True
        self._m = [self.add_variable_from_reference(model_variable=v, variable_name="m") for v in var_list]
        self._v = [self.add_variable_from_reference(model_variable=v, variable_name="v") for v in var_list]

    def update_step(self, gradient, variable):
        dtype = variable.dtype
        step = tf.cast(self.iterations + 1, dtype)
        index = self._index_dict[self._var_key(variable)]
        m, v = self._m[index], self._v[index]
        m.assign(self.beta_1 * m + (1 - self.beta_1) * gradient)
        v.assign(self.beta_2 * v + (1 - self.beta_2) * tf.square(gradient))
        m_hat = m / (1 - tf.pow(tf.cast(self.beta_1, dtype), step))
        v_hat = v / (1 - tf.pow(tf.cast(self.beta_2, dtype), step))
        direction = m_hat / (tf.sqrt(v_hat) + self.epsilon) + self.decay * variable
        w_norm, d_norm = tf.norm(variable), tf.norm(direction)
        trust = tf.where((w_norm > 0) & (d_norm > 0), w_norm / tf.maximum(d_norm, 1e-30), tf.ones_like(w_norm))
        variable.assign_sub(tf.cast(self.learning_rate, dtype) * trust * direction)

    def get_config(self):
        return super().get_config() | {"learning_rate": self._serialize_hyperparameter(self._learning_rate),
                                       "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon,
                                       "decay": self.decay}
