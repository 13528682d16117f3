"""The judges' panel: both judges score the floor (real train vs real test), each synthetic set, and the decoder's
reconstructions against real test, each repeated over seeds when the test split is small."""
from __future__ import annotations

from cvae.evaluate import judges

SMALL_TEST_SUBJECTS = 200   # with fewer test subjects than this a judge moves by up to 0.1 with its seed ...
REPEATS = 3                 # ... so it runs this many times (other capped rows, other folds) and the mean decides
REPEAT_FOLDS = 3            # folds of each repeat (judges.FOLDS when a judge runs once)
JUDGES = (("linear", judges.linear, 1, None), ("cnn", judges.cnn, 0, judges.CNN_CAP))   # name, classify, input, cap


def repeats_for(test_subjects: int) -> int:
    """How many times each judge runs on a test split of `test_subjects` subjects."""
    return REPEATS if test_subjects < SMALL_TEST_SUBJECTS else 1


def folds_for(repeats: int) -> int:
    """Folds of each cross-validation: judges.FOLDS once, REPEAT_FOLDS each when repeated."""
    return judges.FOLDS if repeats == 1 else REPEAT_FOLDS


def judge_pairs(pairs: dict[str, tuple[tuple, tuple]], seed: int, repeats: int) -> dict:
    """{judge: {set: judges.summary's dict, None with too few subjects}}. Each pair is (real side, other side), each
    side (signals, spectral features, subject ids or None for independent draws); the linear judge reads the
    features, the CNN the signals. Repeat r runs with seed + judges.REPEAT_SEED_STRIDE * r; every fit of a judge,
    over all sets and repeats, goes through one judges.fit_all."""
    out = {}
    for name, classify, part, cap in JUDGES:
        seeds = [seed + judges.REPEAT_SEED_STRIDE * r for r in range(repeats)]
        splits = {(k, s): judges.split((a[part], a[2]), (b[part], b[2]), s, cap, folds_for(repeats))
                  for k, (a, b) in pairs.items() for s in seeds}
        done = [(key, sp) for key, sp in splits.items() if sp is not None]
        keys = [key for key, sp in done for _ in sp.folds]
        tasks = [(sp.x[fit], sp.y[fit], sp.x[held], key[1] + f) for key, sp in done
                 for f, (fit, held) in enumerate(sp.folds)]
        by_split = {}
        for key, predicted in zip(keys, judges.fit_all(classify, tasks)):
            by_split.setdefault(key, []).append(predicted)
        out[name] = {k: None if splits[(k, seeds[0])] is None else judges.summary(
            [judges.score(splits[(k, s)], by_split[(k, s)]) for s in seeds]) for k in pairs}
    return out


def scores(judged: dict) -> dict:
    """judge_pairs' results as mean scores (None: too few subjects): metrics.json's `judges`."""
    return {j: {k: r and r["score"] for k, r in results.items()} for j, results in judged.items()}


def runs(judged: dict) -> dict:
    """Every repeat's score and balanced accuracy, with their means: metrics.json's `judge_runs`."""
    keep = ("scores", "balanced_accuracy", "balanced_accuracies")
    return {j: {k: r and {f: r[f] for f in keep} for k, r in results.items()} for j, results in judged.items()}
