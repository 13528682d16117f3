"""Conditional convolutional VAE: model, input pipeline, Horovod trainer, generation, evaluation."""
import os
import sys

# Keras 2 (tf-keras) is tf.keras for this package and for Horovod's Keras API: TensorFlow reads this when tf.keras is
# first resolved, so it is set before any cvae module imports TensorFlow (cvae.keras2 checks that it took effect).
os.environ["TF_USE_LEGACY_KERAS"] = "1"


def load_tensorflow_quietly() -> None:
    """Import TensorFlow with stderr closed while its native libraries load: they print notices (oneDNN, CUDA
    drivers, CPU features) before TF_CPP_MIN_LOG_LEVEL takes effect. TF_CPP_MIN_LOG_LEVEL=0 keeps them."""
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0" or "tensorflow" in sys.modules:
        return
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
