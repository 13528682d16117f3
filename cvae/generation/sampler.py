"""The exported model, loaded for sampling without Horovod: every file checked before it is trusted (a .keras
file of builtin layers only, meta.json values in range, a latent prior of plain arrays), then the decoder with its
condition scaling, latent draws, spectral equalizer, sensor noise and the data's band limit."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
from scipy.signal import sosfiltfilt

from cvae.generation.equalizer import equalize, equalizer_fir, equalizer_problem
from cvae.generation.latent_prior import FILE as LATENT_PRIOR_FILE
from cvae.generation.latent_prior import LatentPrior
from cvae.model.conditions import Conditions
from data_prep.categories import MAX_LENGTH, MAX_VALUES
from data_prep.common import UserError
from data_prep.conditioning import band_limit_problem, lowpass_sos
from data_prep.normalize import normalize

# What an exported encoder/decoder may consist of: keras builtin layers and initializers, nothing custom.
KERAS_MEMBERS = {"config.json", "metadata.json", "model.weights.h5"}
KERAS_CLASSES = {("keras.layers", n) for n in ("InputLayer", "Dense", "Conv1D", "Conv1DTranspose", "Reshape",
                                                "Concatenate", "Flatten", "Add", "Dropout")} | {
    ("keras.initializers", n) for n in ("GlorotUniform", "Zeros")} | {
    ("tf_keras.src.engine.functional", "Functional"),   # written by tf-keras 2.21
    ("keras.src.engine.functional", "Functional")}      # written by Keras 2.15 (release 0.1.0)
ACTIVATIONS = {"relu", "tanh", "elu", "sigmoid", "linear"}


def _refused(node) -> str | None:
    """The first class or activation in a Keras config that is not on the lists above (None: all are)."""
    if isinstance(node, dict):
        if "class_name" in node and (node.get("module"), node["class_name"]) not in KERAS_CLASSES:
            return f"{node.get('module')}.{node['class_name']}"
        if "activation" in node and node["activation"] not in ACTIVATIONS:
            return f"activation {str(node['activation'])[:60]}"
        children = node.values()
    else:
        children = node if isinstance(node, list) else []
    return next((r for r in map(_refused, children) if r), None)


def load_keras_file(path: Path):
    """A .keras file of builtin layers only (checked in its config before Keras reads it), loaded in safe mode."""
    try:
        with zipfile.ZipFile(path) as zf:
            members = set(zf.namelist())
            config = json.loads(zf.read("config.json")) if members == KERAS_MEMBERS else None
    except (OSError, zipfile.BadZipFile, ValueError, KeyError) as exc:
        raise UserError(f"{path}: not a Keras model file ({exc}); re-export the run") from None
    if config is None:
        raise UserError(f"{path}: holds {sorted(members)}, a model file holds exactly {sorted(KERAS_MEMBERS)}")
    refused = _refused(config)
    if refused:
        raise UserError(f"{path}: refused to load {refused}; an exported ppg-cvae model holds builtin Keras "
                        "layers only")
    from cvae.keras2 import keras  # here, not at import: a request is checked before TensorFlow loads

    try:
        return keras.models.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:   # a damaged file: whatever Keras raises, the user gets one line
        raise UserError(f"{path}: unreadable Keras model ({type(exc).__name__}: {str(exc)[:200]}); re-export "
                        "the run") from None


def _meta_problem(meta: dict) -> str | None:
    """The first thing wrong in meta.json (None: sound)."""
    try:
        n = len(meta["conditions"])
        ok = (all(isinstance(c, str) for c in meta["conditions"]) and len(meta["condition_mean"]) == n
              and len(meta["condition_std"]) == n and all(np.isfinite(meta["condition_mean"]))
              and all(np.isfinite(s) and s > 0 for s in meta["condition_std"])
              and isinstance(meta["latent_dim"], int) and meta["latent_dim"] >= 1
              and isinstance(meta["signal_length"], int) and 16 <= meta["signal_length"] <= 1 << 20
              and 0 < meta["fs"] <= 100_000 and meta["normalization"] in ("maxabs", "zscore", "minmax")
              and (meta.get("noise_sigma") or 0) >= 0 and np.isfinite(meta.get("noise_sigma") or 0)
              and isinstance(meta["model_id"], str) and isinstance(meta["label_stats"], dict)
              and _categories_ok(meta) and _privacy_ok(meta.get("privacy")))
        return (band_limit_problem(meta.get("band_limit")) or equalizer_problem(meta.get("equalizer"), meta["fs"])) \
            if ok else "a value is missing, of the wrong type or out of range"
    except (KeyError, TypeError, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"


def _privacy_ok(p) -> bool:
    """A private run's guarantee: finite non-negative numbers and a whole number of steps (None: not private)."""
    return p is None or isinstance(p, dict) and isinstance(p.get("steps"), int) and all(
        isinstance(p.get(k), (int, float)) and not isinstance(p.get(k), bool) and np.isfinite(p[k]) and p[k] >= 0
        for k in ("epsilon", "delta", "noise_multiplier", "clip_norm", "sample_rate"))


def _categories_ok(meta: dict) -> bool:
    """The categorical columns: each with 1 to MAX_VALUES distinct short values and their training counts, and the
    categorical conditions' values in the same order."""
    counts, categories = meta.get("category_counts") or {}, meta.get("condition_categories") or {}
    return isinstance(counts, dict) and isinstance(categories, dict) and all(
        isinstance(values, dict) and 1 <= len(values) <= MAX_VALUES
        and all(isinstance(v, str) and 0 < len(v) <= MAX_LENGTH and isinstance(n, int) and n >= 0
                for v, n in values.items()) for values in counts.values()) and all(
        name in meta["conditions"] and name in counts and values == list(counts[name])
        for name, values in categories.items()) and all(c in categories for c in meta["conditions"] if c in counts)


def read_meta(run_dir: str | Path) -> dict:
    """The exported model's meta.json, checked (no TensorFlow needed)."""
    model_dir = Path(run_dir) / "model"
    if not (model_dir / "meta.json").is_file():
        raise UserError(f"{model_dir} holds no exported model; pass a finished training run "
                        "(ppg-cvae train ... --run-dir RUN) as --model")
    try:
        meta = json.loads((model_dir / "meta.json").read_text())
    except ValueError as exc:
        raise UserError(f"{model_dir / 'meta.json'} is not valid JSON ({exc}); re-export the run") from None
    problem = _meta_problem(meta) if isinstance(meta, dict) else "not a JSON object"
    if problem:
        raise UserError(f"{model_dir / 'meta.json'}: {problem}; re-export the run")
    return meta


class Generator:
    """The exported decoder and its condition scaling."""

    def __init__(self, run_dir: str | Path):
        self.model_dir = model_dir = Path(run_dir) / "model"
        self.meta = read_meta(run_dir)
        self.decoder = load_keras_file(model_dir / "decoder.keras")
        self.encoder = None   # loaded by `reconstruct`: sampling needs the decoder only
        self.conditions = Conditions.from_meta(self.meta)
        widths = [tuple(t.shape) for t in self.decoder.inputs]
        if widths != [(None, self.meta["latent_dim"]), (None, self.conditions.width)]:
            raise UserError(f"{model_dir / 'decoder.keras'} takes inputs {widths}, meta.json describes latent_dim "
                            f"{self.meta['latent_dim']} and a condition of width {self.conditions.width}; re-export "
                            "the run")
        limit = self.meta.get("band_limit")
        self.lowpass = lowpass_sos(limit, self.meta["fs"]) if limit else None
        eq = self.meta.get("equalizer")
        self.equalizer = equalizer_fir(eq, self.meta["fs"]) if eq else None
        try:
            self.prior = LatentPrior.load(model_dir)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            raise UserError(f"{model_dir / LATENT_PRIOR_FILE} is unreadable ({exc}); re-export the model with "
                            "ppg-cvae train ... --resume on its run directory") from None
        if self.prior is not None and self.prior.mean_c.shape[1] != self.conditions.width:
            raise UserError(f"{model_dir / LATENT_PRIOR_FILE} is fit to conditions of width {self.prior.mean_c.shape[1]}, "
                            f"the model's are {self.conditions.width} wide; re-export the model")
        if self.prior is None and "mixture" in self.meta.get("latent_prior", ""):
            raise UserError(f"{model_dir / LATENT_PRIOR_FILE} is missing although meta.json names it; re-export "
                            "the model with ppg-cvae train ... --resume on its run directory")

    def latent(self, labels: np.ndarray, rng: np.random.Generator, fitted: bool = True) -> np.ndarray:
        """z draws for raw condition labels [n, n_cond]: from the fitted mixture given the condition when the model
        has one and `fitted`, else from the N(0, I) prior."""
        if fitted and self.prior is not None:
            return self.prior.sample(self.scale(labels), rng)
        return rng.standard_normal((len(labels), self.meta["latent_dim"])).astype(np.float32)

    def draw(self, labels: np.ndarray, rng: np.random.Generator, fitted: bool = True,
             add_noise: bool = True) -> np.ndarray:
        """Signals for raw condition labels [n, n_cond]: latent draws (`latent`), then sensor noise when
        `add_noise`, both from `rng` in that order."""
        z = self.latent(labels, rng, fitted)
        return self(labels, z, rng.standard_normal((len(labels), self.meta["signal_length"])) if add_noise else None)

    def reconstruct(self, signals: np.ndarray, labels: np.ndarray, rng: np.random.Generator,
                    add_noise: bool = True) -> np.ndarray:
        """Each signal's reconstruction as generation would render it: the encoder's posterior mean at the
        signal's own raw condition labels, decoded at those labels, then sensor noise (from `rng`, when
        `add_noise`) and the rest of `__call__`. The encoder is loaded (and checked) on first use."""
        if self.encoder is None:
            self.encoder = load_keras_file(self.model_dir / "encoder.keras")
            widths = [tuple(t.shape) for t in self.encoder.inputs]
            if widths != [(None, self.meta["signal_length"]), (None, self.conditions.width)]:
                raise UserError(f"{self.model_dir / 'encoder.keras'} takes inputs {widths}, meta.json describes "
                                f"signals of {self.meta['signal_length']} and a condition of width "
                                f"{self.conditions.width}; re-export the run")
        out = []
        for start in range(0, len(signals), 1024):
            x, c = signals[start:start + 1024].astype(np.float32), labels[start:start + 1024]
            z = self.encoder.predict_on_batch([x, self.scale(c)])[0]
            out.append(self(c, z, rng.standard_normal(x.shape) if add_noise else None))
        return np.concatenate(out) if out else np.zeros((0, self.meta["signal_length"]), np.float32)

    def scale(self, labels: np.ndarray) -> np.ndarray:
        """Raw condition labels (categorical ones as codes) -> the condition vector the decoder was trained on."""
        return self.conditions.encode(labels)

    def __call__(self, labels: np.ndarray, z: np.ndarray, noise: np.ndarray | None = None) -> np.ndarray:
        """Signals for raw condition labels [n, n_cond] and latent draws [n, latent_dim]: the decoder mean, given
        the training data's spectrum by the equalizer (when the model has one); `noise` (standard
        normal, [n, L]) is scaled by the data's sensor-noise sigma and added; when prep
        band-passed the recordings, the signals pass the same filter's low-pass side (zero phase); the result is
        normalized per signal like the training data."""
        x = self.decoder.predict_on_batch([z.astype(np.float32), self.scale(labels)])
        if self.equalizer is not None:
            x = equalize(self.equalizer, x)
        if noise is not None and self.meta.get("noise_sigma"):
            x = x + self.meta["noise_sigma"] * noise
        if self.lowpass is not None:
            x = sosfiltfilt(self.lowpass, x, axis=1).astype(np.float32)
        # the same per-signal normalization the training data went through (e.g. max|x| = 1 for maxabs)
        return normalize(x, self.meta["normalization"])
