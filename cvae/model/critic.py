"""The refinement phase's critic: a multi-scale convolutional discriminator of single windows (its own network,
trained on training windows only; never one of the report's judges)."""
from __future__ import annotations

from cvae.keras2 import keras

layers = keras.layers


def build_critic(length: int, scales: int = 3, width: int = 32) -> keras.Model:
    """One strided Conv1D stack per scale (the window, then average-pooled by 2, 4, ...). Outputs, per scale, its
    feature maps and, last, its per-position logits: [scale 0 features..., scale 0 logits, scale 1 ...]."""
    signal = keras.Input((length,), name="signal")
    x = layers.Reshape((length, 1))(signal)
    outputs = []
    for s in range(scales):
        h = x if s == 0 else layers.AveragePooling1D(2 ** s, padding="same")(x)
        for i, (filters, kernel, stride) in enumerate(((width, 15, 1), (2 * width, 21, 4), (4 * width, 21, 4),
                                                       (4 * width, 5, 1))):
            h = layers.LeakyReLU(0.2)(layers.Conv1D(filters, kernel, strides=stride, padding="same",
                                                    name=f"critic_{s}_{i}")(h))
            outputs.append(h)
        outputs.append(layers.Conv1D(1, 3, padding="same", dtype="float32", name=f"critic_{s}_logits")(h))
    return keras.Model(signal, outputs, name="critic")


def split_outputs(outputs: list, scales: int) -> list[tuple[list, object]]:
    """The critic's flat output list as (features, logits) per scale."""
    per = len(outputs) // scales
    return [(outputs[s * per:(s + 1) * per - 1], outputs[(s + 1) * per - 1]) for s in range(scales)]
