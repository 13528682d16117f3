"""The model's condition vector: numeric labels standardized with the training split's mean and std, categorical
columns (data.categories, stored as codes) one-hot. The same encoding in the input pipeline (TensorFlow) and in
generation (numpy)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from data_prep.categories import to_codes
from data_prep.common import UserError
from data_prep.manifest import Manifest


class Conditions:
    """Raw condition labels [n, len(names)] (categorical ones as codes) -> the model's input [n, width]."""

    def __init__(self, names: list[str], mean: list[float], std: list[float], categories: dict[str, list[str]]):
        self.names, self.categories = list(names), {k: list(v) for k, v in categories.items()}
        self.mean, self.std = np.array(mean, np.float32), np.array(std, np.float32)

    @classmethod
    def from_manifest(cls, manifest: Manifest, names: list[str]) -> "Conditions":
        known = list(manifest.labels) + list(manifest.categories)
        missing = [c for c in names if c not in known]
        if missing:
            raise UserError(f"model.conditions {missing} are not labels of this dataset (it has {sorted(known)}); "
                            "fix model.conditions, or re-run prep with them in data.labels or data.categories")
        numeric = {c: manifest.labels[c] for c in names if c in manifest.labels}
        return cls(names, [numeric[c].mean if c in numeric else 0.0 for c in names],
                   [numeric[c].std if c in numeric else 1.0 for c in names],
                   {c: list(manifest.categories[c]) for c in names if c in manifest.categories})

    @classmethod
    def from_meta(cls, meta: dict) -> "Conditions":
        return cls(meta["conditions"], meta["condition_mean"], meta["condition_std"],
                   meta.get("condition_categories") or {})

    def to_meta(self) -> dict:
        return {"conditions": self.names, "condition_mean": self.mean.tolist(), "condition_std": self.std.tolist(),
                "condition_categories": self.categories}

    def _widths(self) -> list[int]:
        return [len(self.categories[c]) if c in self.categories else 1 for c in self.names]

    @property
    def width(self) -> int:
        return sum(self._widths())

    def numeric_mask(self) -> np.ndarray:
        """1 for each input column of a numeric condition, 0 for the one-hot columns."""
        return np.concatenate([np.full(w, 0.0 if c in self.categories else 1.0, np.float32)
                               for c, w in zip(self.names, self._widths())])

    def column(self, name: str) -> int:
        """Where a numeric condition sits in the model's input."""
        return sum(self._widths()[:self.names.index(name)])

    def _encode(self, raw, concat, one_hot):
        parts = [one_hot(raw[:, j], len(self.categories[c])) if c in self.categories
                 else (raw[:, j:j + 1] - self.mean[j]) / self.std[j] for j, c in enumerate(self.names)]
        return concat(parts)

    def encode(self, raw: np.ndarray) -> np.ndarray:
        """numpy: raw labels [n, len(names)] -> model input [n, width]."""
        raw = np.asarray(raw, np.float32).reshape(len(raw), len(self.names))
        return self._encode(raw, lambda p: np.concatenate(p, axis=1).astype(np.float32),
                            lambda codes, k: np.eye(k, dtype=np.float32)[codes.astype(np.int64)])

    def encode_tf(self, raw):
        """TensorFlow: raw labels [n, len(names)] -> model input [n, width]."""
        import tensorflow as tf
        return self._encode(raw, lambda p: tf.concat(p, axis=1),
                            lambda codes, k: tf.one_hot(tf.cast(codes, tf.int32), k, dtype=tf.float32))

    def raw(self, labels: pd.DataFrame) -> np.ndarray:
        """Raw labels [n, len(names)] from a table holding categorical values as text (generate's labels)."""
        out = np.empty((len(labels), len(self.names)), np.float32)
        for j, c in enumerate(self.names):
            out[:, j] = to_codes(labels[c], self.categories[c]) if c in self.categories else labels[c]
        return out
