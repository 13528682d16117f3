"""The evaluation's numbers: age-conditioning fidelity, discriminability, train-on-synthetic vs train-on-real."""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import spearmanr, theilslopes
from sklearn.linear_model import RidgeCV
from sklearn.metrics import mean_absolute_error
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from cvae.beats import decade_of


def age_regressor(features: np.ndarray, ages: np.ndarray):
    """Standardized ridge regression (alpha by leave-one-out CV) from waveform features to age."""
    return make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-2, 4, 13))).fit(features, ages)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    rho = spearmanr(a, b).statistic
    return 0.0 if np.isnan(rho) else float(rho)


def conditioning_and_utility(real_train: tuple, real_test: tuple, synthetic: tuple, on_real=None) -> dict:
    """Spearman(requested age, predicted age) on synthetic vs Spearman(true, predicted) on real test,
    with the regressor trained on real train (`on_real` when it is already fit); and test-on-real MAE of a
    regressor trained on synthetic (TSTR) vs trained on real (TRTR). Each tuple is (features, ages)."""
    on_real = age_regressor(*real_train) if on_real is None else on_real
    pred_syn = on_real.predict(synthetic[0])
    pred_real = on_real.predict(real_test[0])
    on_syn = age_regressor(*synthetic)
    return {
        "spearman_age_synthetic": spearman(synthetic[1], pred_syn),
        "spearman_age_real": spearman(real_test[1], pred_real),
        "trtr_mae": float(mean_absolute_error(real_test[1], pred_real)),
        "tstr_mae": float(mean_absolute_error(real_test[1], on_syn.predict(real_test[0]))),
        "predicted_age_synthetic": pred_syn,
        "predicted_age_real": pred_real,
    }


def feature_distances(real: pd.DataFrame, synthetic: pd.DataFrame, real_age: np.ndarray,
                      synthetic_age: np.ndarray) -> dict:
    """Wasserstein distance between real and synthetic distributions of each waveform feature, divided by
    the real feature's std (0 = identical; ~1 = shifted by a standard deviation), overall and per decade."""
    from scipy.stats import wasserstein_distance

    def dist(a, b):
        a, b = a[np.isfinite(a)], b[np.isfinite(b)]
        if len(a) < 5 or len(b) < 5:
            return None
        return float(wasserstein_distance(a, b) / (a.std() or 1.0))

    out = {"overall": {c: dist(real[c].to_numpy(), synthetic[c].to_numpy()) for c in real.columns}, "by_decade": {}}
    real_decade, synthetic_decade = decade_of(real_age), decade_of(synthetic_age)
    for d in sorted(set(synthetic_decade)):
        r, s = real_decade == d, synthetic_decade == d
        out["by_decade"][f"{d}s"] = {c: dist(real[c].to_numpy()[r], synthetic[c].to_numpy()[s]) for c in real.columns}
    return out


DIVERSITY_CAP = 2000   # signals per age decade and set in the pairwise diversity (a 2000 x 2000 distance matrix)


def diversity_and_copies(real_train: np.ndarray, real_test: np.ndarray, synthetic: np.ndarray,
                         real_test_age: np.ndarray, synthetic_age: np.ndarray, seed: int = 0) -> dict:
    """Diversity: mean pairwise distance within each age decade, synthetic vs real test (the same grouping on
    both sides; a ratio far below 1 is mode collapse). Copies: share of synthetic signals whose nearest training
    signal is closer than the 1st percentile of real-test-to-training nearest distances. Inputs are feature
    vectors; a decade with more than DIVERSITY_CAP signals is sampled (seeded)."""
    from sklearn.metrics import pairwise_distances
    from sklearn.neighbors import NearestNeighbors

    rng = np.random.default_rng([seed, 0xD1])

    def within_decades(x, ages):
        decades, means = decade_of(ages), []
        for d in np.unique(decades):
            rows = np.flatnonzero(decades == d)
            if len(rows) > DIVERSITY_CAP:
                rows = rng.choice(rows, DIVERSITY_CAP, replace=False)
            if (n := len(rows)) > 1:
                means.append(pairwise_distances(x[rows]).sum() / (n * (n - 1)))
        return float(np.mean(means)) if means else None

    syn_div, real_div = within_decades(synthetic, synthetic_age), within_decades(real_test, real_test_age)
    nn = NearestNeighbors(n_neighbors=1).fit(real_train)
    test_nn = nn.kneighbors(real_test)[0][:, 0]
    syn_nn = nn.kneighbors(synthetic)[0][:, 0]
    threshold = float(np.percentile(test_nn, 1))
    return {"diversity_synthetic": syn_div, "diversity_real": real_div,
            "diversity_ratio": syn_div / real_div if syn_div is not None and real_div else None,
            "copy_fraction": float(np.mean(syn_nn < threshold)), "copy_threshold": threshold,
            "nn_distance_synthetic_median": float(np.median(syn_nn)),
            "nn_distance_real_test_median": float(np.median(test_nn))}


def source_of(subject_ids: np.ndarray) -> np.ndarray:
    """The source of each signal: the subject id's prefix before ':' (e.g. 'mwppg:53' -> 'mwppg'), else 'all'."""
    return np.array([s.split(":", 1)[0] if ":" in s else "all" for s in subject_ids], dtype=object)


def within_source(real_train: tuple, real_test: tuple, synthetic: dict[str, tuple], min_signals: int = 20) -> list[dict]:
    """Age fidelity inside each source, where recordings from one device and site share their confounds: per source
    with at least `min_signals` train and test signals and ages spanning 2 years or more, a regressor fit on that
    source's train signals; Spearman on its test signals, and on each synthetic set's signals inside the source's
    training age range (of that source, when the set's sources are not None): a wider age span alone would raise a
    Spearman. Real tuples are
    (features, ages, sources); `synthetic` maps a set's name to (features, ages, sources or None)."""
    rows = []
    for src in sorted(set(real_test[2])):
        tr, te = real_train[2] == src, real_test[2] == src
        if tr.sum() < min_signals or te.sum() < min_signals or np.ptp(real_train[1][tr]) < 2:
            continue
        lo, hi = float(real_train[1][tr].min()), float(real_train[1][tr].max())
        model = age_regressor(real_train[0][tr], real_train[1][tr])
        row = {"source": src, "age_min": lo, "age_max": hi, "real_test": int(te.sum()),
               "spearman_real": spearman(real_test[1][te], model.predict(real_test[0][te])),
               "synthetic": {}, "spearman_synthetic": {}}
        for name, (features, ages, sources) in synthetic.items():
            inside = (ages >= lo) & (ages <= hi) & (True if sources is None else sources == src)
            row["synthetic"][name] = int(inside.sum())
            row["spearman_synthetic"][name] = spearman(ages[inside], model.predict(features[inside])) \
                if inside.sum() >= min_signals and np.ptp(ages[inside]) > 0 else None
        rows.append(row)
    return rows


def disjoint_sources(real_train: tuple) -> bool:
    """True when the age ranges (5th-95th percentile) of two sources do not overlap: across sources an age model
    can then tell the source instead of the physiology."""
    spans = [np.percentile(real_train[1][real_train[2] == s], [5, 95]) for s in set(real_train[2])]
    return any(a[1] < b[0] or b[1] < a[0] for i, a in enumerate(spans) for b in spans[i + 1:])


TREND_ROWS = 1500   # signals a feature's Theil-Sen slope is fit on at most (drawn at random): it compares every pair


def _trend(values: np.ndarray, ages: np.ndarray, rng: np.random.Generator) -> dict:
    """A feature's age trend: Theil-Sen slope per decade with its 95% interval (the median of pairwise slopes:
    outliers do not flip it, as they can a least-squares slope), Spearman rho, and in how many signals and at how
    many distinct ages the feature was found; slope None when found in under 20 signals or at ages under a year
    apart."""
    ok = np.flatnonzero(np.isfinite(values) & np.isfinite(ages))
    found = {"found": int(len(ok)), "signals": int(len(values)), "ages_found": int(len(np.unique(ages[ok]))),
             "ages": int(len(np.unique(ages[np.isfinite(ages)])))}
    if len(ok) < 20 or np.ptp(ages[ok]) < 1:
        return {"slope": None, "interval": None, "rho": 0.0, **found}
    rho = spearman(ages[ok], values[ok])
    if len(ok) > TREND_ROWS:
        ok = np.sort(rng.choice(ok, TREND_ROWS, replace=False))
    fit = theilslopes(values[ok], ages[ok])
    return {"slope": float(10 * fit.slope), "interval": [float(10 * fit.low_slope), float(10 * fit.high_slope)],
            "rho": rho, **found}


def feature_trends(real: pd.DataFrame, synthetic: pd.DataFrame, real_age: np.ndarray,
                   synthetic_age: np.ndarray, seed: int = 0) -> dict:
    """Each waveform feature's age trend in real test and in synthetic signals (Theil-Sen slope per decade with its
    95% interval, Spearman rho)."""
    rng = np.random.default_rng([seed, 0x7E4D])
    out = {}
    for col in real.columns:
        r, s = _trend(real[col].to_numpy(), real_age, rng), _trend(synthetic[col].to_numpy(), synthetic_age, rng)
        out[col] = {"slope_real": r["slope"], "interval_real": r["interval"], "rho_real": r["rho"],
                    "slope_synthetic": s["slope"], "interval_synthetic": s["interval"], "rho_synthetic": s["rho"],
                    "found_synthetic": [s["found"], s["signals"]], "ages_synthetic": [s["ages_found"], s["ages"]]}
    return out
