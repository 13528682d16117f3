"""The run directory's contract: one run, one configuration (identity in run.json), one trainer at a time."""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict
from pathlib import Path

from cvae.config import Config, save_config
from data_prep.common import UserError, lock_directory
from data_prep.manifest import Manifest, write_json_atomic

log = logging.getLogger(__name__)
RUN_JSON = "run.json"
PLAN_KEYS = ("ranks", "global_batch", "learning_rate", "steps_per_epoch")
LOCK = ".train.lock"
# model keys a checkpoint cannot continue under once changed (beta, warm-up and the mixture fit may change)
FREE_MODEL_KEYS = {"beta", "kl_warmup_epochs", "posterior_mixture", "posterior_mixture_rows",
                   "posterior_mixture_min_subjects"}


def identity(cfg: Config, manifest: Manifest) -> dict:
    """What must not change within one run: the model's shape and conditions, the data set and its normalization,
    the global batch, the privacy settings (a private run resumed without them would spend an unaccounted
    budget), the refinement critic's shape, and the epochs of a private run whose noise was calibrated to them
    (train.privacy.target_epsilon)."""
    fixed = {f"model.{k}": v for k, v in asdict(cfg.model).items() if k not in FREE_MODEL_KEYS}
    p = cfg.train.privacy
    calibrated = {"train.epochs": cfg.train.epochs} if p.enabled and p.target_epsilon else {}
    return {"dataset_id": manifest.dataset_id, "data.normalization": manifest.normalization,
            "data.signal_length": manifest.signal_length, "data.fs": manifest.fs,
            "train.global_batch_size": cfg.train.global_batch_size, "train.privacy": asdict(cfg.train.privacy),
            "train.refine.critic": [cfg.train.refine.critic_width, cfg.train.refine.critic_scales],
            **fixed, **calibrated}


def digest(ident: dict) -> str:
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]


def prepare(cfg: Config, data_dir: Path, run_dir: Path, manifest: Manifest, resume: bool, plan: dict) -> object:
    """Rank 0: refuse a foreign or busy run and check a resume's identity; a new run is recorded at once.

    `plan` holds this launch's ranks, global batch, learning rate and steps per epoch; a resume on another number
    of ranks is logged with what that changes. Returns the held lock."""
    if run_dir.exists() and any(p.name != LOCK for p in run_dir.iterdir()) and not resume:
        raise UserError(f"{run_dir} already holds a run; pass --resume to continue it or choose a new --run-dir")
    run_dir.mkdir(parents=True, exist_ok=True)
    held = lock_directory(run_dir, LOCK, "ppg-cvae train (--run-dir)")
    ident = identity(cfg, manifest)
    old = _read_run_json(run_dir) if resume else None
    if old is not None:
        # keys the old run did not record (added to ppg-cvae since) are not compared
        differ = [k for k in sorted(old["identity"]) if ident.get(k) != old["identity"][k]]
        if differ:
            k = differ[0]
            raise UserError(f"{run_dir} was trained with {k}={old['identity'].get(k)!r}, this run has "
                            f"{k}={ident.get(k)!r}; a checkpoint cannot continue under another model, data set, "
                            f"normalization or privacy budget: resume with {run_dir / 'config.yaml'} and its "
                            "--data, or choose a new --run-dir")
        if old["plan"]["ranks"] != plan["ranks"] and old["plan"]["global_batch"] == plan["global_batch"]:
            log.warning("resuming a run trained on %d rank(s) on %d: global batch %d kept (%d per rank), learning "
                        "rate %.2e, steps per epoch %d -> %d; each rank reads other shards, so the data order differs "
                        "from an uninterrupted run", old["plan"]["ranks"], plan["ranks"], plan["global_batch"],
                        plan["global_batch"] // plan["ranks"], plan["learning_rate"],
                        old["plan"]["steps_per_epoch"], plan["steps_per_epoch"])
        elif old["plan"]["ranks"] != plan["ranks"]:
            was, now = old["plan"], plan
            log.warning("resuming a run trained on %d rank(s) on %d: global batch %d -> %d, learning rate %.2e -> "
                        "%.2e, steps per epoch %d -> %d; each rank reads other shards, so the data order differs "
                        "from an uninterrupted run", was["ranks"], now["ranks"], was["global_batch"],
                        now["global_batch"], was["learning_rate"], now["learning_rate"], was["steps_per_epoch"],
                        now["steps_per_epoch"])
    if old is None:
        record(cfg, data_dir, run_dir, manifest, plan)
    return held


def record(cfg: Config, data_dir: Path, run_dir: Path, manifest: Manifest, plan: dict) -> None:
    """Write the run's config, identity and launch plan (a new run, or a resumed one once its checkpoint has been
    restored: a refused or failed resume leaves the run directory as it was)."""
    save_config(cfg, run_dir / "config.yaml")
    ident = identity(cfg, manifest)
    write_json_atomic(run_dir / RUN_JSON, {
        "identity": ident, "digest": digest(ident), "plan": plan, "data_dir": str(data_dir.resolve()),
        "manifest_sha256": hashlib.sha256((data_dir / "manifest.json").read_bytes()).hexdigest()})


def _read_run_json(run_dir: Path) -> dict | None:
    path = run_dir / RUN_JSON
    if not path.is_file():
        return None
    try:
        old = json.loads(path.read_text())
        if not isinstance(old, dict) or not isinstance(old.get("identity"), dict) \
                or not isinstance(old.get("plan"), dict) \
                or not all(isinstance(old["plan"].get(k), (int, float)) for k in PLAN_KEYS):
            raise ValueError("no identity and launch plan in it")
        return old
    except ValueError as exc:
        raise UserError(f"{path} is unreadable ({exc}); it records what this run was trained with, so the run "
                        "cannot be resumed safely: choose a new --run-dir") from None
