"""Horovod data-parallel training: init -> pin device -> data -> scaled LR -> wrapped optimizer ->
broadcast -> metric averaging -> rank-0 validation/early stop, checkpoints, TensorBoard -> export."""
from __future__ import annotations

import hashlib
import logging
import os
import time
from pathlib import Path

import horovod.tensorflow as hvd_tf
import horovod.tensorflow.keras as hvd
import numpy as np
import tensorflow as tf
from tensorflow import keras

from cvae import callbacks as cb
from cvae import run_dir as run_dir_contract
from cvae.data import condition_scaler, eval_dataset, rank_plan, train_dataset
from cvae.evaluate.features import noise_floor_sigma
from cvae.export import export_model
from cvae.latent_prior import fit_latent_prior
from cvae.model import CVAE
from data_prep.manifest import check_shards, load_manifest, write_json_atomic
from launch.config import Config
from launch.errors import UserError
from launch.horovod import launcher_world_size

log = logging.getLogger(__name__)
EXIT_PREEMPTED = 75   # checkpoint written after SIGTERM/SIGUSR1; rerun with --resume to continue
IMAGE_AGES = [20.0, 40.0, 60.0, 80.0]


def encode_training(model, data_dir, manifest: dict, conditions: list[str], rows: int,
                    seed: int) -> tuple[np.ndarray, np.ndarray]:
    """z ~ q(z | x, c) for the first `rows` training signals (shard order), with their standardized conditions."""
    rng = np.random.default_rng(seed)
    zs, cs, n = [], [], 0
    for signal, cond in eval_dataset(data_dir, manifest, "train", conditions, 1024):
        z_mean, z_log_var = (t.numpy() for t in model.encoder([signal, cond], training=False))
        zs.append(z_mean + np.exp(0.5 * z_log_var) * rng.standard_normal(z_mean.shape))
        cs.append(cond.numpy())
        n += len(z_mean)
        if n >= rows:
            break
    return np.concatenate(zs)[:rows], np.concatenate(cs)[:rows]


@keras.saving.register_keras_serializable(package="ppg_cvae")
class WarmupLR(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up from base/size to base*size over `warmup_steps`, then constant (Goyal et al. 2017)."""

    def __init__(self, start: float, target: float, warmup_steps: int):
        self.start, self.target, self.warmup_steps = start, target, warmup_steps

    def __call__(self, step):
        frac = tf.minimum(1.0, tf.cast(step, tf.float32) / float(max(self.warmup_steps, 1)))
        return self.start + (self.target - self.start) * frac

    def get_config(self):
        return {"start": self.start, "target": self.target, "warmup_steps": self.warmup_steps}


def image_encodings(data_dir, manifest: dict, conditions: list[str], pool: int = 1024):
    """For each of IMAGE_AGES: the validation signal (of the first `pool`) closest in age, its condition, the same
    condition with the requested age, and its true age; TensorBoard decodes their encodings at the requested
    age, the way generate draws z from encodings of real signals near the age."""
    mean, std = condition_scaler(manifest, conditions)
    col = conditions.index("age")
    signals, conds = [], []
    for s, c in eval_dataset(data_dir, manifest, "val", conditions, 256):
        signals.append(s.numpy())
        conds.append(c.numpy())
        if sum(len(x) for x in signals) >= pool:
            break
    signals, conds = np.concatenate(signals)[:pool], np.concatenate(conds)[:pool]
    ages = conds[:, col] * std[col] + mean[col]
    pick = [int(np.argmin(np.abs(ages - a))) for a in IMAGE_AGES]
    target = conds[pick].copy()
    target[:, col] = (np.array(IMAGE_AGES) - mean[col]) / std[col]
    return {"signal": signals[pick], "cond": conds[pick], "target": target.astype(np.float32),
            "ages": IMAGE_AGES, "source_ages": ages[pick]}


def restore_latest_readable(ckpt: tf.train.Checkpoint, manager: tf.train.CheckpointManager, rank: int) -> str:
    """Restore the newest checkpoint that reads back whole; a corrupt or truncated one is skipped with a warning."""
    for path in reversed(manager.checkpoints):
        try:
            ckpt.restore(path).assert_existing_objects_matched()
            return path
        except Exception as exc:   # TensorFlow's reader raises OpError, IndexError, ValueError... on damaged files
            if rank == 0:
                log.warning("checkpoint %s is unreadable (%s); falling back to the one before it", path,
                            str(exc).splitlines()[0][:200])
    raise UserError(f"no checkpoint in {manager.directory} reads back whole; resume is impossible: start a new "
                    "--run-dir")


def setup_devices(threads_per_rank: int) -> str:
    """One GPU per local rank with memory growth; on CPU, a fixed number of threads per rank."""
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        gpu = gpus[hvd.local_rank() % len(gpus)]
        tf.config.experimental.set_memory_growth(gpu, True)
        tf.config.set_visible_devices(gpu, "GPU")
        return f"GPU {hvd.local_rank() % len(gpus)}"
    if threads_per_rank:
        tf.config.threading.set_intra_op_parallelism_threads(threads_per_rank)
        tf.config.threading.set_inter_op_parallelism_threads(threads_per_rank)
    return f"CPU x{threads_per_rank or 'auto'} threads"


def weights_digest(model: keras.Model) -> str:
    """sha256 over the trainable weights: equal on every rank when gradients really were averaged."""
    digest = hashlib.sha256()
    for w in model.trainable_weights:
        digest.update(np.ascontiguousarray(w.numpy()).tobytes())
    return digest.hexdigest()


def _rank0_callbacks(cfg: Config, data_dir: Path, run_dir: Path, manifest: dict, size: int, steps: int,
                     lr: float, last, best, validation) -> list:
    """TensorBoard (with sample reconstructions and age-conditioned waveforms) and checkpoints."""
    conditions = cfg.model.conditions
    sample = next(iter(eval_dataset(data_dir, manifest, "val", conditions, 4)))
    age_draws = None
    if "age" in conditions:
        age_draws = image_encodings(data_dir, manifest, conditions)
    hparams = {"ranks": size, "batch_per_rank": cfg.train.batch_size, "lr_scaled": lr,
               "latent_dim": cfg.model.latent_dim, "beta": cfg.model.beta, "dense": str(cfg.model.dense_units),
               "filters": str(cfg.model.filters), "conditions": ",".join(conditions)}
    return [cb.TensorBoardLogger(str(run_dir / "tensorboard"), cfg.train.batch_size * size, steps, manifest["fs"],
                                 cfg.train.image_every, sample, age_draws, hparams),
            cb.Checkpointer(last, best, validation)]


def train(cfg: Config, data_dir: str | Path, run_dir: str | Path, resume: bool = False) -> int:
    """Train on every rank of the Horovod job; returns the process exit code (0 or EXIT_PREEMPTED)."""
    hvd.init()
    rank, size = hvd.rank(), hvd.size()
    started = launcher_world_size(dict(os.environ))
    if size == 1 and started > 1:
        raise UserError(f"the launcher started {started} processes but Horovod sees 1: its MPI/Gloo does not match "
                        "Horovod's build; use horovodrun, or srun --mpi=pmix / mpirun with the MPI Horovod was "
                        "built against (see 'ppg-cvae doctor')")
    device = setup_devices(cfg.train.threads_per_rank)
    data_dir, run_dir = Path(data_dir), Path(run_dir)
    manifest = load_manifest(data_dir)
    steps = rank_plan(manifest, rank, size, cfg.train.batch_size)[2]
    base = cfg.train.learning_rate * (size if cfg.train.scale_lr else 1)
    plan = {"ranks": size, "global_batch": cfg.train.batch_size * size, "learning_rate": base,
            "steps_per_epoch": steps}
    error, held = None, []   # rank 0 holds the run directory's lock until this process exits
    if rank == 0:
        try:
            check_shards(data_dir, manifest, full=cfg.train.verify_data == "sha256")
            held.append(run_dir_contract.prepare(cfg, data_dir, run_dir, manifest, resume, plan))
        except UserError as exc:
            error = exc
    # Nobody reads run_dir before rank 0 set it up, and a refusal on rank 0 stops every rank.
    if hvd_tf.allreduce(tf.constant(float(error is not None)), op=hvd_tf.Max, name="run_dir_ready").numpy() > 0:
        raise error or UserError("rank 0 refused the run directory (see its message)")

    tf.keras.utils.set_random_seed(cfg.train.seed + rank)
    if cfg.train.deterministic:
        tf.config.experimental.enable_op_determinism()
    if cfg.train.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    conditions = cfg.model.conditions
    model = CVAE(cfg.model, manifest["signal_length"], len(conditions), seed=cfg.train.seed * 1000 + rank,
                 stop_sync=lambda flags: hvd_tf.allreduce(flags, op=hvd_tf.Max, name="step_flags"),
                 jit_compile=cfg.train.xla)
    lr = WarmupLR(base / size if cfg.train.warmup_epochs else base, base, cfg.train.warmup_epochs * steps)
    optimizer = hvd.DistributedOptimizer(
        keras.optimizers.Adam(lr), backward_passes_per_step=cfg.train.backward_passes_per_step,
        compression=hvd.Compression.fp16 if cfg.train.fp16_allreduce else hvd.Compression.none)
    model.compile(optimizer=optimizer)
    model.build([(None, manifest["signal_length"]), (None, len(conditions))])

    state = cb.TrainState()
    ckpt = tf.train.Checkpoint(model=model, optimizer=model.optimizer, state=state)
    last = tf.train.CheckpointManager(ckpt, run_dir / "checkpoints", max_to_keep=cfg.train.keep_checkpoints)
    best = tf.train.CheckpointManager(ckpt, run_dir / "best", max_to_keep=1)
    model.optimizer.build(model.trainable_variables)   # slots exist before a restore, so they are restored too
    if resume and last.checkpoints:
        restored = restore_latest_readable(ckpt, last, rank)   # every rank restores; the broadcast keeps them equal
        if rank == 0:
            log.info("resumed from %s at epoch %d", restored, int(state.epoch.numpy()))
    elif resume and rank == 0:
        log.info("--resume: no checkpoint in %s yet, starting from scratch", run_dir)
    if resume and rank == 0:
        run_dir_contract.record(cfg, data_dir, run_dir, manifest, plan)   # the restore worked: this run continues
    model.stop_requested.assign(0.0)   # a preemption checkpoint carries the stop flags; this run starts afresh
    model.stop_agreed.assign(0.0)
    start_epoch = int(state.epoch.numpy())
    train_ds, steps = train_dataset(data_dir, manifest, conditions, cfg.train.batch_size, rank, size,
                                    cfg.train.shuffle_buffer, cfg.train.seed, start_epoch, cfg.train.epochs,
                                    cache=cfg.train.cache,
                                    input_threads=cfg.train.threads_per_rank if device.startswith("CPU") else 0)

    validation = cb.RankZeroValidation(
        eval_dataset(data_dir, manifest, "val", conditions, 256) if rank == 0 else None,
        state, cfg.train.patience, cfg.train.min_delta)
    preemption, timer, divergence = cb.Preemption(), cb.EpochTimer(), cb.DivergenceGuard()
    callbacks = [cb.StepWatchdog(cfg.train.step_timeout_s),
                 hvd.callbacks.BroadcastGlobalVariablesCallback(0), hvd.callbacks.MetricAverageCallback(),
                 cb.KLWarmup(cfg.model.beta, cfg.model.kl_warmup_epochs), preemption, divergence, validation, timer]
    if rank == 0:
        callbacks += _rank0_callbacks(cfg, data_dir, run_dir, manifest, size, steps, base, last, best, validation)
        log.info("training on %d rank(s) [%s], %d steps/epoch x %d per rank, lr %.2e, epochs %d..%d",
                 size, device, steps, cfg.train.batch_size, base, start_epoch + 1, cfg.train.epochs)

    t0 = time.time()
    epochs_run, history = 0, None
    if start_epoch < cfg.train.epochs and int(state.wait.numpy()) <= cfg.train.patience:
        history = model.fit(train_ds, epochs=cfg.train.epochs, initial_epoch=start_epoch, steps_per_epoch=steps,
                            callbacks=callbacks, verbose=2 if rank == 0 else 0)
        epochs_run = len(history.epoch)
    end_epoch = int(state.epoch.numpy())
    if divergence.where:
        epoch, step, global_step = divergence.where
        raise UserError(f"training diverged: the loss became non-finite at epoch {epoch}, step {step} of {steps} "
                        f"(global step {global_step}) on at least one rank; nothing after it was checkpointed or "
                        f"exported; last good checkpoint: {last.latest_checkpoint or 'none'}; lower "
                        "train.learning_rate (or raise train.warmup_epochs) and rerun with --resume")
    if preemption.preempted and rank == 0:
        # Mid-epoch stop: save weights/optimizer, keep `epoch` at the last completed one, so a resume redoes it.
        last.save(checkpoint_number=model.optimizer.iterations)
    (run_dir / "ranks").mkdir(exist_ok=True)
    write_json_atomic(run_dir / "ranks" / f"rank-{rank:03d}.json", {
        "rank": rank, "size": size, "device": device, "steps_per_epoch": steps, "epochs_run": epochs_run,
        "stop_epoch": end_epoch, "preempted": preemption.preempted, "weights_sha256": weights_digest(model),
        "val_loss_history": [float(v) for v in history.history.get("val_loss", [])] if epochs_run else [],
        "epoch_seconds": timer.seconds, "signals_per_epoch": steps * cfg.train.batch_size * size})
    if preemption.preempted:
        if rank == 0:
            log.warning("preempted: checkpoint at epoch %d written to %s; rerun with --resume (exit %d)",
                        end_epoch, run_dir / "checkpoints", EXIT_PREEMPTED)
        return EXIT_PREEMPTED
    if rank == 0:
        if best.latest_checkpoint:
            tf.train.Checkpoint(model=model).restore(best.latest_checkpoint).expect_partial()
        if not cb.weights_finite(model):
            raise UserError(f"the trained weights are not finite; nothing was exported from {run_dir}; lower "
                            "train.learning_rate and train again")
        val_signals = np.concatenate([s.numpy() for s, _ in validation.val_data.take(8)])
        prior = None
        if cfg.model.posterior_mixture:
            z, cond = encode_training(model, data_dir, manifest, conditions, cfg.model.posterior_mixture_rows,
                                      cfg.train.seed)
            t = time.time()
            prior = fit_latent_prior(z, cond, cfg.model.posterior_mixture, cfg.train.seed)
            log.info("latent prior: %d-component mixture fit to %d training encodings in %.1f s",
                     len(prior["weights"]), len(z), time.time() - t)
        export_model(model, cfg, manifest, run_dir, best_val_loss=float(state.best.numpy()),
                     noise_sigma=noise_floor_sigma(val_signals, manifest["fs"]), latent_prior=prior)
        log.info("trained %d epoch(s) on %d rank(s) in %.1f s; best val_loss %.4f; model in %s",
                 epochs_run, size, time.time() - t0, float(state.best.numpy()), run_dir / "model")
    return 0

