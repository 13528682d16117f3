"""Export of the trained model: RUN/model holds plain Keras files, meta.json and the latent prior
(cvae.generation.sampler loads them without Horovod)."""
from __future__ import annotations

import hashlib
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np

from cvae.config import Config
from cvae.generation import label_summary
from cvae.generation.latent_prior import FILE as LATENT_PRIOR_FILE
from cvae.model.conditions import Conditions
from data_prep.manifest import Manifest, write_json_atomic


def export_model(model, cfg: Config, manifest: Manifest, run_dir: Path, best_val_loss: float, noise_sigma: float,
                 labels: dict | None, equalizer: dict | None = None, latent_prior: dict | None = None,
                 privacy: dict | None = None, refined_epochs: int = 0) -> Path:
    """Write RUN/model/{decoder.keras, encoder.keras, meta.json, label_summary.json[, latent_prior.npz]}; the
    directory appears complete or not at all. `noise_sigma` is the white-noise level that generation adds to the
    decoder mean (0 = none); `labels` the summary generation draws open labels from
    (cvae.generation.label_summary; None: none, a private run); `privacy` a private run's guarantee
    (cvae.training.privacy.PrivacyLedger.record); `equalizer` the decoder's spectral gain generation applies
    (cvae.generation.equalizer; None: none); `latent_prior` the mixture generation draws z from (None: N(0, I));
    `refined_epochs` the epochs of adversarial refinement the decoder had after the ELBO phase."""
    final, tmp = run_dir / "model", Path(tempfile.mkdtemp(prefix=".model.", dir=run_dir))
    model.decoder.save(tmp / "decoder.keras")
    model.encoder.save(tmp / "encoder.keras")
    meta = {
        "model_id": hashlib.sha256((tmp / "decoder.keras").read_bytes()).hexdigest()[:16],
        "dataset_id": manifest.dataset_id,
        **Conditions.from_manifest(manifest, cfg.model.conditions).to_meta(),
        "label_stats": {k: asdict(v) for k, v in manifest.labels.items()},
        "category_counts": manifest.categories,   # categorical column -> {value: training signals}
        "latent_dim": cfg.model.latent_dim,
        "signal_length": manifest.signal_length,
        "fs": manifest.fs,
        "normalization": manifest.normalization,
        "best_val_loss": best_val_loss,   # of the ELBO phase
        "refined_epochs": refined_epochs,
        "likelihood": cfg.model.likelihood,
        "likelihood_sigma": float(np.exp(model.log_sigma.numpy())) if cfg.model.likelihood != "sse" else None,
        "noise_sigma": noise_sigma,   # white sensor noise of the validation signals, added when sampling
        # the recordings' band-pass upper side: generated signals pass the same low-pass (None: not filtered)
        "band_limit": manifest.band_limit,
        "equalizer": equalizer,
        "latent_prior": f"{len(latent_prior['weights'])}-component mixture fit to {int(latent_prior['rows'])} "
                        f"training encodings of {int(latent_prior['all_subjects'])} subjects, at least "
                        f"{int(latent_prior['subjects'].min())} subjects per component" if latent_prior is not None
        else "standard normal",
        "privacy": privacy,
    }
    if latent_prior is not None:
        np.savez(tmp / LATENT_PRIOR_FILE, **latent_prior)
    if labels is not None:
        label_summary.save(labels, tmp)
    write_json_atomic(tmp / "meta.json", meta)
    old = Path(tempfile.mkdtemp(prefix=".model-old.", dir=run_dir))
    if final.exists():
        final.rename(old / "model")
    tmp.rename(final)
    shutil.rmtree(old)
    return final
