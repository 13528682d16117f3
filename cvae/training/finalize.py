"""After training, on rank 0: the best weights, the data's sensor-noise floor, the decoder's spectral equalizer, the
latent prior fit to the training encodings, and the export; nothing non-finite leaves the run."""
from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

from cvae.config import Config
from cvae.generation import label_summary
from cvae.generation.equalizer import measure_equalizer
from cvae.generation.export import export_model
from cvae.generation.latent_prior import fit_latent_prior
from cvae.generation.noise import noise_floor_sigma
from cvae.training.callbacks import weights_finite
from cvae.training.input_pipeline import eval_dataset
from data_prep.common import UserError
from data_prep.manifest import Manifest

log = logging.getLogger(__name__)

EQUALIZER_ROWS = 4096   # training signals whose reconstructions measure the decoder's spectrum


def _encoded_training(model, data_dir, manifest: Manifest, conditions: list[str], rows: int):
    """(signals, conditions, subject ids, z_mean, z_log_var) batches of the training split in shard order, until
    `rows` signals have been passed (the last batch may run over)."""
    n = 0
    for signal, cond, ids in eval_dataset(data_dir, manifest, "train", conditions, 1024, with_ids=True):
        z_mean, z_log_var = model.encoder([signal, cond], training=False)
        yield signal, cond, ids, z_mean, z_log_var
        n += len(signal)
        if n >= rows:
            return


def encode_training(model, data_dir, manifest: Manifest, conditions: list[str], rows: int,
                    seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """z ~ q(z | x, c) for the first `rows` training signals (shard order), with their standardized conditions and
    subject ids."""
    rng = np.random.default_rng(seed)
    zs, cs, subjects = [], [], []
    for _, cond, ids, z_mean, z_log_var in _encoded_training(model, data_dir, manifest, conditions, rows):
        z_mean, z_log_var = z_mean.numpy(), z_log_var.numpy()
        zs.append(z_mean + np.exp(0.5 * z_log_var) * rng.standard_normal(z_mean.shape))
        cs.append(cond.numpy())
        subjects.append([s.decode("utf-8") for s in ids.numpy()])
    return np.concatenate(zs)[:rows], np.concatenate(cs)[:rows], np.concatenate(subjects)[:rows].astype(str)


def reconstruct_training(model, data_dir, manifest: Manifest, conditions: list[str],
                         rows: int) -> tuple[np.ndarray, np.ndarray]:
    """The first `rows` training signals (shard order) and their reconstructions from z_mean."""
    signals, recons = [], []
    for signal, cond, _, z_mean, _ in _encoded_training(model, data_dir, manifest, conditions, rows):
        signals.append(signal.numpy())
        recons.append(model.decoder([z_mean, cond], training=False).numpy())
    return np.concatenate(signals)[:rows], np.concatenate(recons)[:rows]


def finalize(model, cfg: Config, data_dir: Path, run_dir: Path, manifest: Manifest, best_checkpoint: str | None,
             best_val_loss: float, val_data, privacy: dict | None = None, refined_epochs: int = 0) -> Path:
    """Restore the best weights (`best_checkpoint`; None keeps the weights in memory: a refinement's last epoch),
    refuse non-finite ones, measure the equalizer, fit the latent prior, summarize the training labels, export
    RUN/model (`refined_epochs` into its meta.json). A private run (`privacy`: its guarantee, cvae.training.privacy)
    reads no training data here: no equalizer, no latent prior (z ~ N(0, I)), no label summary; the noise floor comes
    from validation signals either way."""
    if best_checkpoint:
        tf.train.Checkpoint(model=model).restore(best_checkpoint).expect_partial()
    if not weights_finite(model):
        raise UserError(f"the trained weights are not finite; nothing was exported from {run_dir}; lower "
                        "train.learning_rate and train again")
    val_signals = np.concatenate([s.numpy() for s, _ in val_data.take(8)])
    noise_sigma = noise_floor_sigma(val_signals, manifest.fs)
    if privacy is not None:
        log.info("private run: no equalizer, latent prior or label summary (each would read training data)")
        return export_model(model, cfg, manifest, run_dir, best_val_loss=best_val_loss, noise_sigma=noise_sigma,
                            labels=None, privacy=privacy)
    equalizer = measure_equalizer(*reconstruct_training(model, data_dir, manifest, cfg.model.conditions,
                                                        EQUALIZER_ROWS), manifest.fs, noise_sigma)
    corrected = [(h, g) for h, g in zip(equalizer["hz"], equalizer["gain"]) if g != 1.0]
    log.info("equalizer: amplitude gain %s", f"{min(g for _, g in corrected):.2f}-{max(g for _, g in corrected):.2f} "
             f"at {corrected[0][0]:g}-{corrected[-1][0]:g} Hz" if corrected else "1 (reconstructions match the data)")
    prior = None
    if cfg.model.posterior_mixture:
        z, cond, subjects = encode_training(model, data_dir, manifest, cfg.model.conditions,
                                            cfg.model.posterior_mixture_rows, cfg.train.seed)
        t = time.time()
        prior = fit_latent_prior(z, cond, subjects, cfg.model.posterior_mixture, cfg.train.seed,
                                 cfg.model.posterior_mixture_min_subjects)
        if prior is None:
            log.warning("latent prior: the training encodings come from fewer than model.posterior_mixture_"
                        "min_subjects=%d subjects; generation draws z from N(0, I)",
                        cfg.model.posterior_mixture_min_subjects)
        else:
            log.info("latent prior: %d-component mixture fit to %d training encodings of %d subjects, at least %d "
                     "subjects per component, in %.1f s", len(prior["weights"]), len(z), int(prior["all_subjects"]),
                     prior["subjects"].min(), time.time() - t)
    return export_model(model, cfg, manifest, run_dir, best_val_loss=best_val_loss, noise_sigma=noise_sigma,
                        labels=label_summary.from_dataset(data_dir, manifest, cfg.model.conditions),
                        equalizer=equalizer, latent_prior=prior, refined_epochs=refined_epochs)
