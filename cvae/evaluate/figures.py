"""The fidelity report's figures: predicted vs requested age, and mean beats per age group."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from cvae.beats import BEAT_AFTER, BEAT_BEFORE, beat_templates, decade_of


def age_figure(path: Path, ages: np.ndarray, predicted: np.ndarray, real_true: np.ndarray,
                real_pred: np.ndarray) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4))
    levels = np.unique(ages)
    ax.plot(levels, [predicted[ages == a].mean() for a in levels], "o-", label="synthetic: mean predicted age")
    ax.scatter(real_true, real_pred, s=4, alpha=0.3, color="grey", label="real test signals")
    lim = [min(levels.min(), real_true.min()), max(levels.max(), real_true.max())]
    ax.plot(lim, lim, "k--", lw=0.8, label="identity")
    ax.set_xlabel("requested / true age")
    ax.set_ylabel("age predicted by the real-data regressor")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def beats_by_age_figure(real: np.ndarray, real_age: np.ndarray, synthetic: np.ndarray, synthetic_age: np.ndarray,
                        fs: float, limit: int = 300) -> bytes:
    """PNG: per age decade present in both, the mean +/- sd peak-aligned beat of real test and synthetic signals."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    decades = sorted(set(decade_of(real_age)) & set(decade_of(synthetic_age)))
    if not decades:
        decades = sorted(set(decade_of(synthetic_age)))
    fig, axes = plt.subplots(1, len(decades), figsize=(3 * len(decades), 2.8), squeeze=False, sharey=True)
    t = (np.arange(int(round((BEAT_BEFORE + BEAT_AFTER) * fs))) / fs) - BEAT_BEFORE
    for ax, d in zip(axes[0], decades):
        for x, ages, name, color in ((real, real_age, "real", "tab:blue"), (synthetic, synthetic_age, "synthetic",
                                                                              "tab:orange")):
            beats = beat_templates(x[decade_of(ages) == d][:limit], fs)
            beats = beats[~np.isnan(beats[:, 0])]
            if len(beats):
                m, sd = beats.mean(axis=0), beats.std(axis=0)
                ax.plot(t, m, color=color, label=f"{name} ({len(beats)})")
                ax.fill_between(t, m - sd, m + sd, color=color, alpha=0.2, lw=0)
        ax.set_title(f"ages {d}-{d + 9}", fontsize=9)
        ax.set_xlabel("s from systolic peak", fontsize=8)
        ax.legend(fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()
