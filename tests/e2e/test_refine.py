"""The decoder's adversarial refinement under real 2-rank Horovod: data-parallel, checkpointed, resumable, exported."""
import json
import shutil

import numpy as np
import tensorflow as tf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import SMOKE, TRAINED_RUN_SETTINGS, horovodrun
from cvae.keras2 import keras


def reports(run):
    return [json.loads(p.read_text()) for p in sorted((run / "ranks").glob("rank-*.json"))]


def decoder_weights(run):
    return keras.models.load_model(run / "model" / "decoder.keras", compile=False).get_weights()


def train(data, run, *settings, resume=False):
    result = horovodrun(2, "train", "--config", str(SMOKE), "--data", str(data), "--run-dir", str(run),
                        *TRAINED_RUN_SETTINGS, *settings, *(["--resume"] if resume else []))
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    return result


def test_refinement_is_data_parallel_resumable_and_exported(smoke_data, trained_run, tmp_path):
    straight = tmp_path / "straight"
    out = train(smoke_data, straight, "train.refine.epochs=2").stderr
    assert "refining the decoder against a critic: epochs 1..2" in out and "refined the decoder 2" in out
    r0, r1 = reports(straight)
    assert r0["refine_epochs_run"] == r1["refine_epochs_run"] == 2
    assert r0["weights_sha256"] == r1["weights_sha256"] and r0["critic_sha256"] == r1["critic_sha256"]
    assert json.loads((straight / "model" / "meta.json").read_text())["refined_epochs"] == 2
    # the ELBO phase is trained_run's; the exported decoder is the refined one
    assert r0["val_loss_history"] == reports(trained_run)[0]["val_loss_history"]
    assert any(not np.array_equal(a, b) for a, b in zip(decoder_weights(straight), decoder_weights(trained_run)))

    # a finished ELBO run gets its refinement later, one epoch at a time: the same model, bit for bit
    later = tmp_path / "later"
    shutil.copytree(trained_run, later)
    shutil.rmtree(later / "model")
    train(smoke_data, later, "train.refine.epochs=1", resume=True)
    assert json.loads((later / "model" / "meta.json").read_text())["refined_epochs"] == 1
    # ... and exports the refinement epoch whose validation renderings' spectrum is closest to the windows'
    out = train(smoke_data, later, "train.refine.epochs=2", "train.refine.select=spectrum", resume=True).stderr
    assert "refining the decoder against a critic: epochs 2..2" in out
    assert reports(later)[0]["weights_sha256"] == r0["weights_sha256"]
    assert reports(later)[0]["critic_sha256"] == r0["critic_sha256"]

    tensors = {}
    for events in (straight / "tensorboard").glob("events.out.tfevents.*"):   # the ELBO phase's and the refinement's
        acc = EventAccumulator(str(events), size_guidance={"tensors": 0})
        acc.Reload()
        tensors |= {tag: acc.Tensors(tag) for tag in acc.Tags()["tensors"]}
    for tag in ("refine/adversarial", "refine/feature_matching", "refine/spectral", "refine/reconstruction",
                "refine/critic", "refine/val_spectral", "refine/val_spectrum_gap"):
        assert [e.step for e in tensors[tag]] == [4, 5], tag   # after the ELBO phase's 3 epochs
        assert all(np.isfinite(float(tf.make_ndarray(e.tensor_proto))) for e in tensors[tag])
    gaps = [float(tf.make_ndarray(e.tensor_proto)) for e in tensors["refine/val_spectrum_gap"]]
    closest = int(np.argmin(gaps)) + 1
    assert json.loads((later / "model" / "meta.json").read_text())["refined_epochs"] == closest
    assert f"exported: refinement epoch {closest})" in out
    exported = decoder_weights(later)
    assert all(np.array_equal(a, b) for a, b in zip(exported, decoder_weights(straight))) == (closest == 2)
