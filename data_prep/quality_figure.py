"""prep's quality figure: example windows that were kept and that were quarantined, one row per reason."""
from __future__ import annotations

import io

import numpy as np
import pandas as pd

FIGURE = "quality.png"
EXAMPLES = 3


def quality_figure(source, rows: pd.DataFrame, quarantine: pd.DataFrame, fs: float, seed: int = 0) -> bytes:
    """PNG bytes: for 'kept' and each quarantine reason, up to EXAMPLES windows (source and subject in titles)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(seed)
    groups = {"kept": rows[~rows["row"].isin(quarantine["row"])]}
    for reason, q in quarantine.groupby("reason"):
        groups[str(reason)] = rows[rows["row"].isin(q["row"])]
    fig, axes = plt.subplots(len(groups), EXAMPLES, figsize=(4 * EXAMPLES, 1.7 * len(groups)), squeeze=False)
    for r, (name, group) in enumerate(groups.items()):
        pick = group.iloc[np.sort(rng.choice(len(group), min(EXAMPLES, len(group)), replace=False))] \
            if len(group) else group
        signals = source.signals(pick) if len(pick) else np.zeros((0, 1))
        for c in range(EXAMPLES):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(pick):
                ax.axis("off")
                continue
            ax.plot(np.arange(signals.shape[1]) / fs, signals[c], lw=0.7,
                    color="tab:blue" if name == "kept" else "tab:red")
            row = pick.iloc[c]
            ax.set_title(f"{name} ({len(group)}): {row['_source'].split('/')[-1]} {row['subject_id']}"[:70], fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return buf.getvalue()
