"""Waveform figures as PNG bytes, for TensorBoard images and generate's figure (matplotlib, no TensorFlow)."""
from __future__ import annotations

import io

import numpy as np


def waveform_figure(signals: np.ndarray, titles: list[str], fs: float, spread: np.ndarray | None = None,
                    seconds: float | None = None) -> bytes:
    """PNG bytes of stacked waveforms (the first `seconds` of each, default all), optionally with a +/- spread
    band (TensorBoard images, reports)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if seconds is not None:
        signals = signals[:, :int(seconds * fs)]
        spread = None if spread is None else spread[:, :int(seconds * fs)]
    fig, axes = plt.subplots(len(signals), 1, figsize=(6, 1.5 * len(signals)), sharex=True, squeeze=False)
    t = np.arange(signals.shape[1]) / fs
    for i, (ax, sig, title) in enumerate(zip(axes[:, 0], signals, titles)):
        ax.plot(t, sig, lw=1.2)
        if spread is not None:
            ax.fill_between(t, sig - spread[i], sig + spread[i], alpha=0.3, lw=0)
        ax.set_title(title, fontsize=9)
    axes[-1, 0].set_xlabel("s")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()
