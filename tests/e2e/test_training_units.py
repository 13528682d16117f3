"""The trainer builds Keras 2 objects only, and cvae refuses a tf.keras that resolves to Keras 3
(fresh interpreters)."""
import json
import os
import subprocess
import sys

from conftest import REPO, SMOKE

TRAINER_OBJECTS = """
import json, sys
from pathlib import Path
import keras as keras3
import tf_keras
from cvae.training import trainer as train
from cvae.config import load_config
job, _ = train.setup(load_config(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), resume=False, prepare=False)
model, agreement = train.build(job)
state, last, best = train.restore(job, model, resume=False)
items, _ = train.callbacks(job, agreement, state, last, best)
objects = [model, *model.submodules, model.optimizer, model.lr_schedule, *items]
keras3_types = (keras3.layers.Layer, keras3.optimizers.Optimizer, keras3.callbacks.Callback,
                keras3.optimizers.schedules.LearningRateSchedule)
print(json.dumps({"keras3": [type(o).__name__ for o in objects if isinstance(o, keras3_types)],
                  "model": isinstance(model, tf_keras.Model),
                  "optimizer": isinstance(model.optimizer, tf_keras.optimizers.Optimizer),
                  "optimizer_module": type(model.optimizer).__module__,
                  "callbacks": [isinstance(c, tf_keras.callbacks.Callback) for c in items]}))
"""


def test_trainer_builds_only_keras2_objects(smoke_data, tmp_path):
    """The real trainer's model, layers, wrapped optimizer, schedule and callbacks, built as one rank in a fresh
    process (Horovod and TensorFlow's thread settings are once per process)."""
    result = subprocess.run([sys.executable, "-c", TRAINER_OBJECTS, str(SMOKE), str(smoke_data), str(tmp_path / "run")],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["keras3"] == [] and found["model"] and found["optimizer"]
    assert len(found["callbacks"]) >= 5 and all(found["callbacks"])
    assert found["optimizer_module"].startswith("horovod")   # wrapped by hvd.DistributedOptimizer


def test_cvae_refuses_to_run_on_a_tf_keras_resolved_to_keras3():
    code = "import tensorflow as tf; tf.keras.Model; import cvae.keras2"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, TF_USE_LEGACY_KERAS="0"))
    assert result.returncode != 0
    assert "ImportError: tf.keras is Keras 3 in this process: set TF_USE_LEGACY_KERAS=1" in result.stderr
