"""`ppg-cvae evaluate`: load real and synthetic signals, compute the metrics, write report.md + metrics.json + figures."""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np

from cvae.evaluate.features import spectral_features
from cvae.evaluate.metrics import conditioning_and_utility, discriminative_score
from data_prep.manifest import load_manifest, shard_paths, write_json_atomic
from data_prep.shards import read_arrays
from launch.errors import UserError

log = logging.getLogger(__name__)


def load_synthetic(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Signals and requested ages from a `ppg-cvae generate` .npz."""
    path = Path(path)
    try:
        with np.load(path) as npz:
            signals, labels, names = npz["signals"], npz["labels"], list(npz["label_names"])
    except (OSError, ValueError, KeyError) as exc:
        raise UserError(f"--synthetic {path}: not a ppg-cvae generate .npz ({exc}); pass the file generate wrote")
    if "age" not in names:
        raise UserError(f"--synthetic {path}: has no 'age' label; generate it with ppg-cvae generate")
    return signals, labels[:, names.index("age")]


def _age_figure(path: Path, ages: np.ndarray, predicted: np.ndarray, real_true: np.ndarray,
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


def evaluate(synthetic_path: str | Path, data_dir: str | Path, out: str | Path, seed: int = 0) -> dict:
    """Write REPORT_DIR/{report.md, metrics.json, age_conditioning.png}; returns the metrics."""
    manifest = load_manifest(data_dir)
    labels = list(manifest["labels"])
    if "age" not in labels:
        raise UserError(f"--data {data_dir}: the dataset has no age label to evaluate against")
    read = lambda split: read_arrays(shard_paths(data_dir, manifest, split), labels,  # noqa: E731
                                     manifest["signal_length"], manifest["compression"])
    (train_x, train_y), (test_x, test_y) = read("train"), read("test")
    syn_x, syn_age = load_synthetic(synthetic_path)
    if syn_x.shape[1] != manifest["signal_length"]:
        raise UserError(f"--synthetic signals have length {syn_x.shape[1]}, the dataset {manifest['signal_length']}")
    age = labels.index("age")
    f_train, f_test, f_syn = (spectral_features(x) for x in (train_x, test_x, syn_x))
    cond = conditioning_and_utility((f_train, train_y[:, age]), (f_test, test_y[:, age]), (f_syn, syn_age))
    disc = discriminative_score(f_test, f_syn, seed)
    metrics = {k: v for k, v in cond.items() if not k.startswith("predicted")}
    metrics.update(discriminative_score=disc["score"], discriminative_accuracy=disc["accuracy"],
                   counts={"real_train": len(train_x), "real_test": len(test_x), "synthetic": len(syn_x),
                           "discriminator_per_class": disc["n_per_class"], "discriminator_held_out": disc["held_out"]},
                   seed=seed, dataset_id=manifest["dataset_id"], synthetic=str(synthetic_path))

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _age_figure(out / "age_conditioning.png", syn_age, cond["predicted_age_synthetic"], test_y[:, age],
                cond["predicted_age_real"])
    write_json_atomic(out / "metrics.json", metrics)
    c = metrics["counts"]
    report = f"""# ppg-cvae fidelity report

Synthetic: `{synthetic_path}` ({c['synthetic']} signals). Real: dataset `{manifest['dataset_id']}` in `{data_dir}`
(train split {c['real_train']} signals for fitting, test split {c['real_test']} held-out signals). Seed {seed}.
Features: log magnitude spectrum 0-19.5 Hz of each signal (phase-invariant).

| metric | value | computed on |
|---|---|---|
| Spearman(requested age, predicted age), synthetic | {metrics['spearman_age_synthetic']:.3f} | ridge regressor fit on real train, applied to {c['synthetic']} synthetic |
| Spearman(true age, predicted age), real | {metrics['spearman_age_real']:.3f} | same regressor on {c['real_test']} real test signals |
| discriminative score abs(accuracy - 0.5) | {metrics['discriminative_score']:.3f} | logistic regression, {c['discriminator_per_class']} real test + {c['discriminator_per_class']} synthetic, scored on a held-out {c['discriminator_held_out']} |
| TSTR MAE (years) | {metrics['tstr_mae']:.2f} | regressor fit on synthetic, tested on real test |
| TRTR MAE (years) | {metrics['trtr_mae']:.2f} | regressor fit on real train, tested on real test |

![age conditioning](age_conditioning.png)
"""
    tmp = out / "report.md.tmp"
    tmp.write_text(report)
    os.replace(tmp, out / "report.md")
    log.info("evaluate: spearman synthetic %.3f vs real %.3f | discriminative %.3f | TSTR %.2f vs TRTR %.2f years "
             "-> %s", metrics["spearman_age_synthetic"], metrics["spearman_age_real"],
             metrics["discriminative_score"], metrics["tstr_mae"], metrics["trtr_mae"], out / "report.md")
    return metrics
