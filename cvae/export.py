"""The trained model as plain Keras files + metadata: loads and generates without Horovod."""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
from tensorflow import keras

from cvae.latent_prior import FILE as LATENT_PRIOR_FILE, LatentPrior
from data_prep.manifest import write_json_atomic
from data_prep.normalize import normalize
from launch.config import Config
from launch.errors import UserError


def export_model(model, cfg: Config, manifest: dict, run_dir: Path, best_val_loss: float,
                 noise_sigma: float, latent_prior: dict | None = None) -> Path:
    """Write RUN/model/{decoder.keras, encoder.keras, meta.json[, latent_prior.npz]}; the directory appears
    complete or not at all. `noise_sigma` is the white-noise level that generation adds to the decoder mean
    (0 = none); `latent_prior` the mixture generation draws z from (None: N(0, I))."""
    final, tmp = run_dir / "model", run_dir / "model.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.decoder.save(tmp / "decoder.keras")
    model.encoder.save(tmp / "encoder.keras")
    conditions = cfg.model.conditions
    meta = {
        "model_id": hashlib.sha256((tmp / "decoder.keras").read_bytes()).hexdigest()[:16],
        "dataset_id": manifest["dataset_id"],
        "conditions": conditions,
        "condition_mean": [manifest["labels"][c]["mean"] for c in conditions],
        "condition_std": [manifest["labels"][c]["std"] for c in conditions],
        "label_stats": manifest["labels"],
        "latent_dim": cfg.model.latent_dim,
        "signal_length": manifest["signal_length"],
        "fs": manifest["fs"],
        "normalization": manifest["normalization"],
        "best_val_loss": best_val_loss,
        "likelihood": cfg.model.likelihood,
        "likelihood_sigma": float(np.exp(model.log_sigma.numpy())) if cfg.model.likelihood == "gaussian" else None,
        "noise_sigma": noise_sigma,   # white sensor noise of the validation signals, added when sampling
        "latent_prior": f"{len(latent_prior['weights'])}-component mixture fit to {int(latent_prior['rows'])} "
                        "training encodings" if latent_prior is not None else "standard normal",
    }
    if latent_prior is not None:
        np.savez(tmp / LATENT_PRIOR_FILE, **latent_prior)
    write_json_atomic(tmp / "meta.json", meta)
    old = run_dir / "model.old"
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    return final


class Generator:
    """The exported decoder and its condition scaling."""

    def __init__(self, run_dir: str | Path):
        model_dir = Path(run_dir) / "model"
        if not (model_dir / "meta.json").is_file():
            raise UserError(f"{model_dir} holds no exported model; pass a finished training run "
                            "(ppg-cvae train ... --run-dir RUN) as --model")
        self.meta = json.loads((model_dir / "meta.json").read_text())
        self.decoder = keras.models.load_model(model_dir / "decoder.keras", compile=False)
        self.mean = np.array(self.meta["condition_mean"], np.float32)
        self.std = np.array(self.meta["condition_std"], np.float32)
        try:
            self.prior = LatentPrior.load(model_dir)
        except (OSError, ValueError, KeyError) as exc:
            raise UserError(f"{model_dir / LATENT_PRIOR_FILE} is unreadable ({exc}); re-export the model with "
                            "ppg-cvae train ... --resume on its run directory") from None
        if self.prior is None and "mixture" in self.meta.get("latent_prior", ""):
            raise UserError(f"{model_dir / LATENT_PRIOR_FILE} is missing although meta.json names it; re-export "
                            "the model with ppg-cvae train ... --resume on its run directory")

    def latent(self, labels: np.ndarray, rng: np.random.Generator, fitted: bool = True) -> np.ndarray:
        """z draws for raw condition labels [n, n_cond]: from the fitted mixture given the condition when the model
        has one and `fitted`, else from the N(0, I) prior."""
        if fitted and self.prior is not None:
            return self.prior.sample(self.scale(labels), rng)
        return rng.standard_normal((len(labels), self.meta["latent_dim"])).astype(np.float32)

    def scale(self, labels: np.ndarray) -> np.ndarray:
        """Raw condition labels -> the standardized values the decoder was trained on."""
        return ((labels - self.mean) / self.std).astype(np.float32)

    def __call__(self, labels: np.ndarray, z: np.ndarray, noise: np.ndarray | None = None) -> np.ndarray:
        """Signals for raw condition labels [n, n_cond] and latent draws [n, latent_dim]; `noise` (standard
        normal, [n, L]) is scaled by the data's sensor-noise sigma and added to the decoder mean; the result is
        normalized per signal like the training data."""
        x = self.decoder.predict_on_batch([z.astype(np.float32), self.scale(labels)])
        if noise is not None and self.meta.get("noise_sigma"):
            x = x + self.meta["noise_sigma"] * noise
        # the same per-signal normalization the training data went through (e.g. max|x| = 1 for maxabs)
        return normalize(x, self.meta["normalization"])
