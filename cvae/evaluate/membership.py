"""Subject-level membership-inference audit of a synthetic set.

The attacker holds the synthetic signals and a reference sample of the population (the validation split) and
wants to know whether a person was in the training data. Members are the training subjects, non-members the test
subjects. Each attack scores every window of a candidate (higher: more likely a member); a subject's score is the
mean over its windows. Attacks work on the log spectra (features.spectral_features) projected on the reference's
first principal components, whitened:

- dcr: distance to the closest synthetic window (negated log distance): a model that reproduces its training
  windows places synthetic signals next to its members;
- domias: the density ratio of van Breugel et al. 2023, log p_synthetic(x) - log p_reference(x), both Gaussian
  kernel density estimates: a model that overfits puts more synthetic mass near its members than the population
  has there.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

ATTACKS = ("dcr", "domias")
COMPONENTS = 30          # principal components of the reference's log spectra the attacks work in
KDE_POINTS = 5_000       # most points each density is fitted on (drawn at random)
SUBJECTS = 2_000         # most member and most non-member subjects scored (drawn at random)
BOOTSTRAP = 200          # resamples of the subjects for the intervals
FPRS = {"tpr_at_1pct_fpr": 0.01, "tpr_at_10pct_fpr": 0.10}


def components(reference: np.ndarray, synthetic: np.ndarray) -> int:
    """How many principal components the attacks use: COMPONENTS, fewer when the reference or the synthetic set
    has under 4 points per dimension (a density needs more points than dimensions)."""
    return min(COMPONENTS, reference.shape[1], len(reference) // 4, len(synthetic) // 4)


def _projection(reference: np.ndarray, n: int, seed: int):
    """The reference's first n principal components, whitened (unscaled log spectra keep the pulse harmonics'
    weight: standardizing would lift the noise-only bins to the same variance)."""
    from sklearn.decomposition import PCA

    return PCA(n, whiten=True, random_state=seed).fit(reference)


def _kde(points: np.ndarray, rng: np.random.Generator):
    from scipy.stats import gaussian_kde

    if len(points) > KDE_POINTS:
        points = points[rng.choice(len(points), KDE_POINTS, replace=False)]
    return gaussian_kde(points.T)


def window_scores(candidates: np.ndarray, synthetic: np.ndarray, reference: np.ndarray, seed: int) -> dict:
    """Each attack's score of each candidate window (features), from the synthetic and reference features."""
    from sklearn.neighbors import NearestNeighbors

    space = _projection(reference, components(reference, synthetic), seed)
    cand, syn, ref = (space.transform(x) for x in (candidates, synthetic, reference))
    distance = NearestNeighbors(n_neighbors=1).fit(syn).kneighbors(cand)[0][:, 0]
    rng = np.random.default_rng([seed, 0xD0])
    return {"dcr": -np.log(distance + 1e-9),
            "domias": _kde(syn, rng).logpdf(cand.T) - _kde(ref, rng).logpdf(cand.T)}


def roc_numbers(members: np.ndarray, non_members: np.ndarray) -> dict:
    """AUC and the true-positive rate at each false-positive rate of FPRS (members are the positives)."""
    from sklearn.metrics import roc_auc_score, roc_curve

    y = np.r_[np.ones(len(members)), np.zeros(len(non_members))]
    s = np.r_[members, non_members]
    fpr, tpr, _ = roc_curve(y, s)
    out = {"auc": float(roc_auc_score(y, s))}
    out.update({k: float(tpr[np.searchsorted(fpr, f, side="right") - 1]) for k, f in FPRS.items()})
    return out


def subject_scores(scores: np.ndarray, subjects: np.ndarray) -> np.ndarray:
    """The mean window score of each subject."""
    return pd.Series(scores).groupby(np.asarray(subjects)).mean().to_numpy()


def _some_subjects(features: np.ndarray, subjects: np.ndarray, rng: np.random.Generator) -> tuple:
    """The windows of at most SUBJECTS subjects, drawn at random."""
    names = np.unique(subjects)
    if len(names) <= SUBJECTS:
        return features, subjects
    keep = np.isin(subjects, rng.choice(names, SUBJECTS, replace=False))
    return features[keep], subjects[keep]


def audit(members: tuple, non_members: tuple, synthetic: np.ndarray, reference: np.ndarray, seed: int) -> dict | None:
    """Each attack's AUC and true-positive rates at 1% and 10% false positives over subjects, with 95% bootstrap
    intervals (subjects resampled); members and non_members are (features, subject ids), at most SUBJECTS of each
    scored. None when either side has
    fewer than 2 subjects, or the reference or the synthetic set fewer than 8 windows."""
    rng = np.random.default_rng([seed, 0xB007])
    members, non_members = _some_subjects(*members, rng), _some_subjects(*non_members, rng)
    n_in, n_out = len(set(members[1])), len(set(non_members[1]))
    if min(n_in, n_out) < 2 or components(reference, synthetic) < 2:
        return None
    windows = window_scores(np.concatenate([members[0], non_members[0]]), synthetic, reference, seed)
    out = {"members": n_in, "non_members": n_out, "reference_windows": len(reference),
           "synthetic_windows": len(synthetic), "components": components(reference, synthetic), "attacks": {}}
    for attack, scores in windows.items():
        s_in = subject_scores(scores[:len(members[0])], members[1])
        s_out = subject_scores(scores[len(members[0]):], non_members[1])
        point = roc_numbers(s_in, s_out)
        draws = [roc_numbers(rng.choice(s_in, len(s_in)), rng.choice(s_out, len(s_out))) for _ in range(BOOTSTRAP)]
        out["attacks"][attack] = {k: {"value": v, "ci95": [float(np.percentile([d[k] for d in draws], q))
                                                            for q in (2.5, 97.5)]} for k, v in point.items()}
    return out
