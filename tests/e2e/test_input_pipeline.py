"""The training input pipeline on real shards: held in memory or streamed, every epoch is a fresh order of the rank's
records, and a resumed start replays it."""
import numpy as np
import pytest

from cvae.training.input_pipeline import rank_rows, train_dataset
from data_prep.manifest import load_manifest, shard_paths
from data_prep.shards import read_arrays


def epochs_of(data, cache, start, epochs, rank=0, size=2, batch=16):
    manifest = load_manifest(data)
    ds, steps = train_dataset(data, manifest, ["age"], batch, rank, size, 256, 7, start, epochs, cache=cache,
                              input_threads=1)
    batches = [(x, c) for x, c in ds.as_numpy_iterator()]
    assert len(batches) == steps * (epochs - start)
    return [batches[i * steps:(i + 1) * steps] for i in range(epochs - start)], steps


def rows(epoch):
    return np.concatenate([x for x, _ in epoch]), np.concatenate([c for _, c in epoch])


@pytest.mark.parametrize("cache", [True, False])
def test_each_epoch_is_a_new_order_of_this_ranks_records_and_a_resumed_start_replays_it(smoke_data, cache):
    full, steps = epochs_of(smoke_data, cache, 0, 3)
    resumed, _ = epochs_of(smoke_data, cache, 1, 3)
    for a, b in zip(full[1:], resumed):      # bit-exact from the resumed epoch on
        for (xa, ca), (xb, cb) in zip(a, b):
            np.testing.assert_array_equal(xa, xb)
            np.testing.assert_array_equal(ca, cb)
    x0, c0 = rows(full[0])
    x1, _ = rows(full[1])
    assert not np.array_equal(x0, x1)                   # reshuffled
    assert len(np.unique(x0, axis=0)) == len(x0)        # no record twice within an epoch
    assert np.isfinite(c0).all() and abs(float(c0.mean())) < 1.5   # conditions scaled by the train statistics


def test_the_streamed_order_ignores_the_global_seed_even_zero(smoke_data):
    """Training sets TensorFlow's global seed to train.seed + rank: 0 on rank 0 with train.seed=0."""
    import tensorflow as tf

    orders = []
    for global_seed in (0, 5):
        tf.keras.utils.set_random_seed(global_seed)
        orders.append(rows(epochs_of(smoke_data, False, 0, 2)[0][1])[0])
    np.testing.assert_array_equal(*orders)


def test_in_memory_and_streamed_epochs_draw_from_this_ranks_records_only(smoke_data):
    manifest = load_manifest(smoke_data)
    mine, _ = read_arrays([shard_paths(smoke_data, manifest, "train")[1]], ["age"], manifest.signal_length, "none")
    assert len(mine) == rank_rows(manifest, 1, 2)          # 2 shards on 2 ranks: rank 1 reads the second
    mine = {row.tobytes() for row in mine}
    for cache in (True, False):
        epochs, steps = epochs_of(smoke_data, cache, 0, 2, rank=1)
        for e in epochs:
            seen = [row.tobytes() for row in rows(e)[0]]
            assert set(seen) <= mine and len(set(seen)) == steps * 16


@pytest.mark.parametrize("cache", [True, False])
def test_condition_noise_jitters_the_conditions_and_replays_on_resume(smoke_data, cache):
    manifest = load_manifest(smoke_data)

    def noisy(start, noise):
        ds, steps = train_dataset(smoke_data, manifest, ["age", "sex"], 16, 0, 2, 256, 7, start, 3, cache=cache,
                                  input_threads=1, condition_noise=noise)
        return [b for b in ds.as_numpy_iterator()], steps

    exact, steps = noisy(0, 0.0)
    jittered, _ = noisy(0, 0.3)
    resumed, _ = noisy(1, 0.3)
    signals = np.concatenate([x for x, _ in exact])
    np.testing.assert_array_equal(signals, np.concatenate([x for x, _ in jittered]))   # same records, same order
    shift = np.concatenate([c for _, c in jittered]) - np.concatenate([c for _, c in exact])
    assert (abs(shift.std(axis=0) - 0.3) < 0.05).all() and (abs(shift.mean(axis=0)) < 0.05).all()   # N(0, 0.3^2)
    assert abs(np.corrcoef(shift.T)[0, 1]) < 0.15                                       # drawn per column
    for (xa, ca), (xb, cb) in zip(jittered[steps:], resumed):                            # replayed from epoch 1 on
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ca, cb)


def test_a_subject_cap_bounds_each_subjects_windows_in_every_epoch(smoke_data):
    from cvae.training.input_pipeline import capped_rows
    manifest = load_manifest(smoke_data)
    paths = shard_paths(smoke_data, manifest, "train")
    x, _, ids = read_arrays(paths[0::2], ["age"], manifest.signal_length, manifest.compression, with_ids=True)
    owner = {row.tobytes(): s for row, s in zip(x, ids)}
    counts = np.unique(ids, return_counts=True)[1]
    assert counts.max() > 2                               # the cap has something to bound
    rows = capped_rows(smoke_data, manifest, 0, 2, 2)
    assert rows == np.minimum(counts, 2).sum() < len(x)
    steps = rows // 8
    ds, got = train_dataset(smoke_data, manifest, ["age"], 8, 0, 2, 256, 7, 0, 3, cache=True, subject_cap=2,
                            steps=steps)
    batches = list(ds.as_numpy_iterator())
    assert got == steps and len(batches) == 3 * steps
    epochs = [np.concatenate([b[0] for b in batches[e * steps:(e + 1) * steps]]) for e in range(3)]
    for epoch in epochs:
        per_subject = np.unique([owner[r.tobytes()] for r in epoch], return_counts=True)[1]
        assert per_subject.max() == 2 and len(np.unique(epoch, axis=0)) == len(epoch)
    assert {r.tobytes() for r in epochs[0]} != {r.tobytes() for r in epochs[1]}   # other windows each epoch


def test_augmented_epochs_replay_on_resume_and_differ_from_the_records(smoke_data):
    manifest = load_manifest(smoke_data)
    settings = {"amplitude": 0.2, "time_warp": 0.05, "noise": 0.02, "baseline": 0.0}

    def batches(start, augmentation):
        ds, steps = train_dataset(smoke_data, manifest, ["age"], 16, 0, 2, 256, 7, start, 2, cache=True,
                                  augmentation=augmentation)
        return [x for x, _ in ds.as_numpy_iterator()][-steps:]   # epoch 1
    augmented = batches(0, settings)
    for a, b in zip(augmented, batches(1, settings)):
        np.testing.assert_array_equal(a, b)
    plain = batches(0, None)
    assert all(not np.array_equal(a, b) for a, b in zip(augmented, plain))
    assert np.abs(np.concatenate(augmented)).max() < 1.2
