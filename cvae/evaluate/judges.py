"""Post-hoc discriminators ("judges"): how well a classifier tells two sets of signals apart, cross-validated with
each subject's signals held out together. Two judges: a logistic regression on phase-invariant spectra, and a small
1D CNN on the raw windows, which sees the shape of the beat (the post-hoc discriminative score of TimeGAN, Yoon et
al. 2019)."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

FOLDS = 5
CNN_CAP = 2000        # signals per set the CNN judge trains and tests on (drawn at random)
CNN_STEPS = 600       # updates (batch 64) per fold, whatever the set size: a small set gets more epochs

Classify = Callable[[np.ndarray, np.ndarray, np.ndarray, int], np.ndarray]


def linear(x_fit: np.ndarray, y_fit: np.ndarray, x_held: np.ndarray, seed: int) -> np.ndarray:
    """Standardized logistic regression (C = 0.1, balanced classes): predicted classes of `x_held`."""
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, class_weight="balanced", max_iter=2000))
    return clf.fit(x_fit, y_fit).predict(x_held)


def cnn(x_fit: np.ndarray, y_fit: np.ndarray, x_held: np.ndarray, seed: int) -> np.ndarray:
    """A three-layer 1D CNN (16/32/32 filters of 9, global average pooling), Adam, CNN_STEPS updates of 64 signals,
    classes weighted to balance: predicted classes of `x_held`. Seeded; TensorFlow ops deterministic."""
    import tensorflow as tf

    from cvae.keras2 import keras
    tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(seed)
    layers = keras.layers
    model = keras.Sequential([
        keras.Input((x_fit.shape[1], 1)),
        layers.Conv1D(16, 9, strides=2, activation="relu"), layers.MaxPooling1D(2),
        layers.Conv1D(32, 9, strides=2, activation="relu"), layers.MaxPooling1D(2),
        layers.Conv1D(32, 9, activation="relu"), layers.GlobalAveragePooling1D(),
        layers.Dense(1, activation="sigmoid")])
    model.compile(keras.optimizers.Adam(1e-3), "binary_crossentropy")
    share = np.bincount(y_fit.astype(int), minlength=2) / len(y_fit)
    model.fit(_standardized(x_fit)[..., None], y_fit.astype(np.float32), batch_size=64,
              epochs=int(np.ceil(CNN_STEPS / np.ceil(len(x_fit) / 64))), verbose=0, shuffle=True,
              class_weight={k: 0.5 / max(share[k], 1e-9) for k in (0, 1)})
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


def discriminative_score(first: tuple, second: tuple, seed: int, classify: Classify = linear,
                         cap: int | None = None, folds: int = FOLDS) -> dict | None:
    """|balanced accuracy - 0.5| of `classify` told the two sets apart, cross-validated over `folds` splits that
    keep each subject's signals on one side: a classifier that saw some windows of a subject would recognize that
    subject's other windows, not tell the sets apart. Each set is (inputs, subject ids), ids None when every signal
    is independent (synthetic draws); at most `cap` signals of each are used (drawn with `seed`). None when a set
    has fewer than 2 subjects."""
    rng = np.random.default_rng([seed, 0x7D6E])
    sets = [_capped(np.asarray(x), np.arange(len(x)).astype(str) if ids is None else np.asarray(ids, dtype=str),
                    cap, rng) for x, ids in (first, second)]
    subjects = [len(np.unique(ids)) for _, ids in sets]
    if min(subjects) < 2:
        return None
    x = np.concatenate([f for f, _ in sets])
    y = np.repeat([0, 1], [len(f) for f, _ in sets])
    groups = np.concatenate([np.char.add(f"{k}:", ids) for k, (_, ids) in enumerate(sets)])
    folds = min(folds, *subjects)
    correct = np.zeros(len(y), dtype=bool)
    for k, (fit, held) in enumerate(StratifiedGroupKFold(folds, shuffle=True, random_state=seed).split(x, y, groups)):
        correct[held] = classify(x[fit], y[fit], x[held], seed + k) == y[held]
    acc = float(np.mean([correct[y == k].mean() for k in (0, 1)]))
    return {"score": abs(acc - 0.5), "balanced_accuracy": acc, "folds": int(folds),
            "signals": [int(len(f)) for f, _ in sets], "subjects": subjects}
