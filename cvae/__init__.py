"""Conditional convolutional VAE: model, input pipeline, Horovod trainer, generation, evaluation."""
import os

# Keras 2 (tf-keras) is tf.keras for this package and for Horovod's Keras API: TensorFlow reads this when tf.keras is
# first resolved, so it is set before any cvae module imports TensorFlow (cvae.keras2 checks that it took effect).
os.environ["TF_USE_LEGACY_KERAS"] = "1"
