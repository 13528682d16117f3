"""Post-hoc discriminators ("judges"): how well a classifier tells two sets of signals apart, cross-validated with
each subject's signals held out together. Two judges: a logistic regression on phase-invariant spectra, and a small
1D CNN on the raw windows, which sees the shape of the beat (the post-hoc discriminative score of TimeGAN, Yoon et
al. 2019)."""
from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

FOLDS = 5
REPEAT_SEED_STRIDE = 1000   # repeat r of a judge runs with seed + r * this: other capped rows, other folds
CNN_CAP = 2000        # signals per set the CNN judge trains and tests on (drawn at random)
CNN_WORKERS = 8       # worker processes for the CNN's fits at most (each holds its own TensorFlow, about 0.9 GB)
CNN_STEPS = 400       # updates (batch 64) per fold, whatever the set size: a small set gets more epochs

Classify = Callable[[np.ndarray, np.ndarray, np.ndarray, int], np.ndarray]


def linear(x_fit: np.ndarray, y_fit: np.ndarray, x_held: np.ndarray, seed: int) -> np.ndarray:
    """Standardized logistic regression (C = 0.1, balanced classes): predicted classes of `x_held`."""
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, class_weight="balanced", max_iter=2000))
    return clf.fit(x_fit, y_fit).predict(x_held)


def cnn_model(length: int):
    """The CNN judge's network: three 1D convolutions (16/32/32 filters of 9, strides 2/2/1, max-pooling), global
    average pooling, a sigmoid."""
    from cvae.keras2 import keras
    layers = keras.layers
    return keras.Sequential([
        keras.Input((length, 1)),
        layers.Conv1D(16, 9, strides=2, activation="relu"), layers.MaxPooling1D(2),
        layers.Conv1D(32, 9, strides=2, activation="relu"), layers.MaxPooling1D(2),
        layers.Conv1D(32, 9, activation="relu"), layers.GlobalAveragePooling1D(),
        layers.Dense(1, activation="sigmoid")])


def cnn(x_fit: np.ndarray, y_fit: np.ndarray, x_held: np.ndarray, seed: int) -> np.ndarray:
    """The CNN judge (cnn_model) trained with Adam, whole passes over the fit set
    in batches of 64 (shuffled, seeded) until CNN_STEPS updates, classes weighted to balance: predicted classes of
    `x_held`. One compiled step, no input pipeline; seeded, TensorFlow ops deterministic."""
    import tensorflow as tf

    from cvae.keras2 import keras
    tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(seed)
    model = cnn_model(x_fit.shape[1])
    optimizer, loss = keras.optimizers.Adam(1e-3), keras.losses.BinaryCrossentropy()

    @tf.function(reduce_retracing=True)
    def step(x, y, w):
        with tf.GradientTape() as tape:
            value = loss(y, model(x, training=True), sample_weight=w)
        optimizer.apply_gradients(zip(tape.gradient(value, model.trainable_variables), model.trainable_variables))

    x, y = _standardized(x_fit)[..., None], y_fit.astype(np.float32)[:, None]
    share = np.bincount(y_fit.astype(int), minlength=2) / len(y_fit)
    w = (0.5 / np.maximum(share, 1e-9))[y_fit.astype(int)].astype(np.float32)
    rng, batches = np.random.default_rng(seed), int(np.ceil(len(x) / 64))
    for _ in range(int(np.ceil(CNN_STEPS / batches))):
        order = rng.permutation(len(x))
        for rows in np.array_split(order, batches):
            step(x[rows], y[rows], w[rows])
    held = np.concatenate([model(_standardized(x_held[i:i + 1024])[..., None], training=False).numpy()[:, 0]
                           for i in range(0, len(x_held), 1024)])
    keras.backend.clear_session()
    return (held > 0.5).astype(int)


def _standardized(x: np.ndarray) -> np.ndarray:
    """Each signal to zero mean, unit standard deviation (the judge sees shape, not scale)."""
    x = x - x.mean(axis=1, keepdims=True)
    return (x / np.maximum(x.std(axis=1, keepdims=True), 1e-8)).astype(np.float32)


def _capped(x: np.ndarray, ids: np.ndarray, cap: int | None, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    if cap is None or len(x) <= cap:
        return x, ids
    keep = np.sort(rng.choice(len(x), cap, replace=False))
    return x[keep], ids[keep]


@dataclass(frozen=True)
class Split:
    """Two sets as one labelled array (0: first, 1: second) and its cross-validation folds, each (fit, held) rows
    that keep every subject's signals on one side."""
    x: np.ndarray
    y: np.ndarray
    folds: list
    signals: list
    subjects: list


def split(first: tuple, second: tuple, seed: int, cap: int | None = None, folds: int = FOLDS) -> Split | None:
    """The folds of discriminative_score: each set is (inputs, subject ids), ids None when every signal is
    independent (synthetic draws); at most `cap` signals of each (drawn with `seed`). None when a set has fewer
    than 2 subjects."""
    rng = np.random.default_rng([seed, 0x7D6E])
    sets = [_capped(np.asarray(x), np.arange(len(x)).astype(str) if ids is None else np.asarray(ids, dtype=str),
                    cap, rng) for x, ids in (first, second)]
    subjects = [len(np.unique(ids)) for _, ids in sets]
    if min(subjects) < 2:
        return None
    x = np.concatenate([f for f, _ in sets])
    y = np.repeat([0, 1], [len(f) for f, _ in sets])
    groups = np.concatenate([np.char.add(f"{k}:", ids) for k, (_, ids) in enumerate(sets)])
    k = min(folds, *subjects)
    return Split(x, y, list(StratifiedGroupKFold(k, shuffle=True, random_state=seed).split(x, y, groups)),
                 [int(len(f)) for f, _ in sets], subjects)


def score(s: Split, predictions: list[np.ndarray]) -> dict:
    """|balanced accuracy - 0.5| of the held-out predictions of every fold of `s`."""
    correct = np.zeros(len(s.y), dtype=bool)
    for (_, held), predicted in zip(s.folds, predictions):
        correct[held] = predicted == s.y[held]
    acc = float(np.mean([correct[s.y == k].mean() for k in (0, 1)]))
    return {"score": abs(acc - 0.5), "balanced_accuracy": acc, "folds": len(s.folds), "signals": s.signals,
            "subjects": s.subjects}


def fit_all(classify: Classify, tasks: list[tuple]) -> list[np.ndarray]:
    """classify(*task) for every (x_fit, y_fit, x_held, seed): the CNN's fits in one single-threaded worker process
    per core, at most CNN_WORKERS (a fit this small does not use a second thread; two processes do twice the
    work), the rest here."""
    workers = min(len(tasks), len(os.sched_getaffinity(0)), CNN_WORKERS)
    if classify is not cnn or workers < 2:
        return [classify(*t) for t in tasks]
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_single_threaded) as pool:
        return list(pool.map(cnn, *zip(*tasks)))


def _single_threaded() -> None:
    """A CNN worker: one TensorFlow thread, Keras 2, TensorFlow's start-up notices off."""
    from cvae import load_tensorflow_quietly
    load_tensorflow_quietly()
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)


def discriminative_score(first: tuple, second: tuple, seed: int, classify: Classify = linear,
                         cap: int | None = None, folds: int = FOLDS) -> dict | None:
    """|balanced accuracy - 0.5| of `classify` told the two sets apart, cross-validated over `folds` splits that
    keep each subject's signals on one side: a classifier that saw some windows of a subject would recognize that
    subject's other windows, not tell the sets apart. Each set is (inputs, subject ids), ids None when every signal
    is independent (synthetic draws); at most `cap` signals of each are used (drawn with `seed`). None when a set
    has fewer than 2 subjects."""
    s = split(first, second, seed, cap, folds)
    if s is None:
        return None
    return score(s, fit_all(classify, [(s.x[fit], s.y[fit], s.x[held], seed + k)
                                       for k, (fit, held) in enumerate(s.folds)]))


def summary(results: list[dict]) -> dict:
    """Repeats of one judge on one pair (score's dicts): the mean score and balanced accuracy, and every repeat's,
    so that a verdict rests on the mean and a reader sees the spread."""
    scores, accuracies = [r["score"] for r in results], [r["balanced_accuracy"] for r in results]
    return {"score": float(np.mean(scores)), "scores": scores, "balanced_accuracy": float(np.mean(accuracies)),
            "balanced_accuracies": accuracies, "folds": results[0]["folds"], "signals": results[0]["signals"],
            "subjects": results[0]["subjects"]}
