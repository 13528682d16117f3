"""Conditional convolutional VAE: model, input pipeline, Horovod trainer, generation, evaluation."""
import ctypes
import os
import sys

# Keras 2 (tf-keras) is tf.keras for this package and for Horovod's Keras API: TensorFlow reads this when tf.keras is
# first resolved, so it is set before any cvae module imports TensorFlow (cvae.keras2 checks that it took effect).
os.environ["TF_USE_LEGACY_KERAS"] = "1"


def _nvidia_driver() -> bool:
    """True where the NVIDIA driver library loads (a GPU host)."""
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    return True


def load_tensorflow_quietly() -> None:
    """Import TensorFlow with stderr closed while its native libraries load: they print notices (oneDNN, CUDA
    drivers, CPU features) before TF_CPP_MIN_LOG_LEVEL takes effect. Where no NVIDIA driver is installed, TensorFlow's
    devices are listed in the same window: its CUDA platform calls cuInit then and logs the failure as an error line
    (cuda_platform.cc) that means only "no GPU". On a GPU host device errors stay visible. TF_CPP_MIN_LOG_LEVEL=0
    keeps every line."""
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0" or "tensorflow" in sys.modules:
        return
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow as tf
        if not _nvidia_driver():
            tf.config.list_physical_devices()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
