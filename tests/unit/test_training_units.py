"""The trainer's pieces in-process: how ranks split the data, the LR and KL warm-ups, the loss terms, step agreement,
run identity, Keras 2 only, LAMB."""
import signal

import numpy as np
import pytest
import tensorflow as tf

from conftest import SMOKE
from cvae.config import load_config
from cvae.model.network import CVAE
from cvae.model.schedules import KLWarmup, WarmupLR
from cvae.training.input_pipeline import rank_plan
from cvae.training.run_dir import identity
from cvae.training.step_agreement import StepAgreement
from data_prep.common import UserError
from data_prep.manifest import LabelStats, Manifest, Shard, Split


def manifest(train_counts):
    shards = [Shard(f"train-{i}", n, 4096 * n, "0" * 64) for i, n in enumerate(train_counts)]
    empty = Split(0, 0, [])
    return Manifest(1, "id", "now", 1024, 125.0, "maxabs", "none", {"age": LabelStats(50, 10, 20, 80)}, "l.csv",
                    {"train": Split(sum(train_counts), 10, shards), "val": empty, "test": empty}, {}, {}, 0)


def test_rank_plan_deals_files_when_there_are_enough():
    m = manifest([100, 90, 80, 70])
    plans = [rank_plan(m, r, 2, 16) for r in range(2)]
    assert [p[0] for p in plans] == ["files", "files"]
    assert plans[0][1] == [0, 2] and plans[1][1] == [1, 3]
    assert plans[0][2] == plans[1][2] == (90 + 70) // 16      # the smaller rank's full batches, on every rank


def test_rank_plan_shares_elements_when_files_are_fewer_than_ranks():
    m = manifest([101, 50])
    plans = [rank_plan(m, r, 4, 8) for r in range(4)]
    assert {p[0] for p in plans} == {"elements"} and all(p[1] == [0, 1] for p in plans)
    assert {p[2] for p in plans} == {151 // 4 // 8}              # 37 or 38 elements per rank -> 4 batches of 8
    with pytest.raises(UserError, match="fewer than one batch"):
        rank_plan(m, 0, 4, 64)


def test_warmup_lr_ramps_from_start_to_target_then_holds():
    lr = WarmupLR(0.001, 0.004, 10)
    assert [round(float(lr(s)), 6) for s in (0, 5, 10, 50)] == [0.001, 0.0025, 0.004, 0.004]
    assert float(WarmupLR(0.002, 0.002, 0)(0)) == pytest.approx(0.002)


def test_cosine_decay_falls_from_target_to_zero_after_the_warmup():
    lr = WarmupLR(1e-4, 1e-3, 10, 110)
    assert [round(float(lr(s)), 7) for s in (0, 10, 60, 110, 500)] == [1e-4, 1e-3, 5e-4, 0.0, 0.0]
    assert float(lr(35)) == pytest.approx(1e-3 * 0.5 * (1 + np.cos(np.pi / 4)), rel=1e-5)


def test_a_global_batch_warms_up_the_same_on_any_number_of_ranks():
    """By global batch the learning rate at every step is the config's, whatever the ranks; by per-rank batch the
    warm-up starts at the per-rank rate (lr / ranks)."""
    from types import SimpleNamespace

    from cvae.training.trainer import warmup_schedule
    by_global = load_config(SMOKE, ["train.global_batch_size=64", "train.warmup_epochs=2",
                                    "train.lr_decay=cosine", "train.epochs=10"]).train
    curves = [[float(warmup_schedule(by_global, SimpleNamespace(steps=5, lr=2e-3, ranks=SimpleNamespace(size=n)))(s))
               for s in range(51)] for n in (1, 2, 4)]
    assert curves[0] == curves[1] == curves[2]
    assert curves[0][0] == pytest.approx(2e-4) and max(curves[0]) == pytest.approx(2e-3) and curves[0][-1] == 0
    per_rank = load_config(SMOKE, ["train.warmup_epochs=2"]).train
    assert float(warmup_schedule(per_rank, SimpleNamespace(steps=5, lr=2e-3, ranks=SimpleNamespace(size=4)))(0)) \
        == pytest.approx(5e-4)


def test_kl_warmup_reaches_beta_after_its_epochs():
    assert [KLWarmup(2.0, 4).beta_at(e) for e in range(6)] == [0.5, 1.0, 1.5, 2.0, 2.0, 2.0]
    assert KLWarmup(0.7, 0).beta_at(0) == 0.7


@pytest.mark.parametrize("likelihood", ["sse", "gaussian", "calibrated"])
def test_loss_terms_have_their_closed_forms(likelihood):
    cfg = load_config(None, ["model.filters=[4]", "model.dense_units=[8]", "model.latent_dim=2",
                             f"model.likelihood={likelihood}"])
    model = CVAE(cfg.model, 64, 1)
    x, c = tf.random.stateless_normal([3, 64], seed=[1, 2]), tf.zeros([3, 1])
    rec, kl = (float(t) for t in model.losses_for(x, c))
    z_mean, z_log_var = (t.numpy() for t in model.encoder([x, c]))
    err = np.sum((x.numpy() - model.decoder([z_mean, c]).numpy()) ** 2, axis=1)
    learned = float(np.exp(model.log_sigma.numpy()))
    sigma = np.sqrt(err.mean() / 64) if likelihood == "calibrated" else learned   # calibrated: the batch's optimum
    expected = err.mean() if likelihood == "sse" else np.mean(0.5 * err / sigma ** 2 + 64 * np.log(sigma))
    assert rec == pytest.approx(expected, rel=1e-5)
    assert kl == pytest.approx(np.mean(-0.5 * np.sum(1 + z_log_var - z_mean ** 2 - np.exp(z_log_var), axis=1)),
                               rel=1e-5)
    assert model.log_sigma.trainable == (likelihood == "gaussian")
    model.losses_for(x, c, training=True)
    if likelihood == "calibrated":                # training records the batch's sigma (exported with the model)
        assert 0 < float(np.exp(model.log_sigma.numpy())) < 10


def test_step_agreement_flags_a_non_finite_loss_and_a_request():
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGUSR1)}
    agreement = StepAgreement()
    for sig, handler in handlers.items():   # this process is pytest: give its signals back
        signal.signal(sig, handler)
    agreement.hook(tf.constant(1.0))
    assert agreement.agreed.numpy().tolist() == [0.0, 0.0]
    agreement.hook(tf.constant(np.nan))
    assert agreement.agreed.numpy().tolist() == [0.0, 1.0]
    agreement.requested.assign(1.0)
    agreement.hook(tf.constant(2.0))
    assert agreement.agreed.numpy().tolist() == [1.0, 0.0]


def test_run_identity_keeps_shape_and_data_but_not_free_settings():
    m = manifest([10])
    base = identity(load_config(None), m)
    assert identity(load_config(None, ["model.beta=0.5", "train.learning_rate=0.1"]), m) == base
    assert identity(load_config(None, ["model.latent_dim=4"]), m) != base


def test_require_keras2_names_a_keras3_object_and_takes_tf_keras_ones():
    import keras as keras3  # Keras 3: installed beside tf-keras (TensorFlow requires it), never used by the trainer
    import tf_keras

    from cvae.keras2 import require_keras2
    assert keras3.__version__.startswith("3.")
    inputs = keras3.Input((4,))
    for name, obj in (("model", keras3.Model(inputs, keras3.layers.Dense(1)(inputs))),
                      ("optimizer", keras3.optimizers.Adam()), ("callbacks", [keras3.callbacks.History()])):
        with pytest.raises(TypeError, match=rf"^{name}: keras\.\S+ is not a Keras 2 \(tf-keras\) object"):
            require_keras2(**{name: obj})
    with pytest.raises(TypeError, match="lr_schedule: keras"):
        require_keras2(lr_schedule=keras3.optimizers.schedules.ExponentialDecay(1e-3, 10, 0.9))
    require_keras2(model=tf_keras.Sequential([tf_keras.layers.Dense(1)]), optimizer=tf_keras.optimizers.Adam(),
                   callbacks=[tf_keras.callbacks.History()])


def test_lamb_steps_follow_the_paper_and_scale_each_layer_by_its_trust_ratio():
    """Algorithm 2 of You et al. 2020 on two variables, checked against the formula written out in numpy."""
    from cvae.model.lamb import LAMB
    w0, g = np.array([3.0, -4.0], np.float32), np.array([0.5, 0.1], np.float32)
    w, bias = tf.Variable(w0), tf.Variable(np.zeros(2, np.float32))
    opt = LAMB(0.1, decay=0.01)
    m = v = np.zeros(2)
    expected = w0.astype(np.float64)
    for t in (1, 2, 3):
        opt.apply_gradients([(tf.constant(g), w), (tf.constant(g), bias)])
        m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g ** 2
        r = (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-6) + 0.01 * expected
        expected = expected - 0.1 * np.linalg.norm(expected) / np.linalg.norm(r) * r
    np.testing.assert_allclose(w.numpy(), expected, rtol=1e-5)
    # a zero-initialized bias takes Adam's step (trust ratio 1) at first: about the learning rate per element
    np.testing.assert_array_less(np.abs(bias.numpy()), 0.31)
    assert abs(np.linalg.norm(w.numpy() - w0) - 3 * 0.1 * 5.0) < 0.2   # ~lr x ||w|| per step, whatever |g| is
