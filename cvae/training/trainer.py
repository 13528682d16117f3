"""Horovod data-parallel training, in the order of Horovod's Keras example: init and pin a device -> the rank's
data -> LR scaled by the ranks and warmed up -> DistributedOptimizer -> broadcast of rank 0's variables and metric
averaging -> rank-0 validation, early stopping, checkpoints and TensorBoard -> on rank 0, finalize and export."""
from __future__ import annotations

import logging
import secrets
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import horovod.tensorflow as hvd_tf
import horovod.tensorflow.keras as hvd
import tensorflow as tf

from cvae.config import Config
from cvae.keras2 import keras, require_keras2
from cvae.model.conditions import Conditions
from cvae.model.lamb import LAMB
from cvae.model.network import CVAE
from cvae.model.schedules import KLWarmup, WarmupLR
from cvae.training import callbacks as cb
from cvae.training import distributed
from cvae.training import run_dir as run_dir_contract
from cvae.training import tensorboard_inputs
from cvae.training.finalize import finalize
from cvae.training.input_pipeline import capped_rows, eval_dataset, rank_plan, train_dataset
from cvae.training.privacy import PrivacyLedger, PrivateStep, noise_for_epsilon, public_view, sampling
from cvae.training.refine import RefineEpochs, Refiner, build_refiner, checkpoint_objects, start_from_best
from cvae.training.step_agreement import EXIT_PREEMPTED, StepAgreement
from data_prep.common import UserError
from data_prep.manifest import Manifest, check_shards, load_manifest, write_json_atomic

log = logging.getLogger(__name__)


@dataclass
class Job:
    """What every step of a training run needs to know."""
    cfg: Config
    data_dir: Path
    run_dir: Path
    manifest: Manifest
    ranks: distributed.Ranks
    steps: int               # per epoch, the same on every rank
    lr: float                # the target learning rate (scaled by the number of ranks when train.scale_lr)
    batch: int = 0           # per rank
    sample_rate: float = 0.0  # private training: the share of training subjects in a global batch
    noise_multiplier: float = 0.0  # private training: train.privacy's, or calibrated to its target_epsilon

    def replan(self, ranks: distributed.Ranks) -> None:
        """Per-rank batch, steps per epoch and learning rate for this set of ranks (at start, and after an elastic
        reset). With train.global_batch_size the global batch and the learning rate stay what the config says."""
        train, self.ranks = self.cfg.train, ranks
        self.batch = per_rank_batch(train.batch_size, train.global_batch_size, ranks.size)
        self.steps = rank_plan(self.manifest, ranks.rank, ranks.size, self.batch, train.privacy.enabled)[2]
        if train.max_windows_per_subject:   # the ranks' common steps over the windows each subject may give
            rows = distributed.min_allreduce(capped_rows(self.data_dir, self.manifest, ranks.rank, ranks.size,
                                                         train.max_windows_per_subject))
            if rows < self.batch:
                raise UserError(f"with train.max_windows_per_subject={train.max_windows_per_subject} a rank has only "
                                f"{rows} training windows, fewer than one batch of {self.batch}; raise it or lower "
                                "train.batch_size")
            self.steps = rows // self.batch
        scaled = train.scale_lr and not train.global_batch_size
        self.lr = train.learning_rate * (ranks.size if scaled else 1)
        if train.privacy.enabled:
            subjects, global_batch = self.manifest.splits["train"].subjects, self.batch * ranks.size
            self.sample_rate = sampling(global_batch, subjects, train.privacy.delta)
            self.noise_multiplier = self.noise_multiplier or private_noise(train, subjects, global_batch, ranks.rank)

    @property
    def plan(self) -> dict:
        return {"ranks": self.ranks.size, "global_batch": self.batch * self.ranks.size,
                "learning_rate": self.lr, "steps_per_epoch": self.steps}


def private_noise(train, subjects: int, global_batch: int, rank: int) -> float:
    """The noise multiplier of a private run: train.privacy.noise_multiplier, or with target_epsilon the smallest
    that keeps train.epochs x (subjects // global batch) updates within it: as many as one rank makes, at least as
    many as any number of ranks makes (each runs its smallest rank's full batches), so the noise is the same on
    any number of ranks and the run never spends more than the target."""
    p = train.privacy
    if not p.target_epsilon:
        return p.noise_multiplier
    steps = train.epochs * (subjects // global_batch)
    sigma = noise_for_epsilon(p.target_epsilon, global_batch / subjects, steps, p.delta)
    if rank == 0:
        log.info("privacy: noise multiplier %.4f keeps %d steps of %d of %d subjects within epsilon %g at delta %g",
                 sigma, steps, global_batch, subjects, p.target_epsilon, p.delta)
    return sigma


def per_rank_batch(batch_size: int, global_batch_size: int, ranks: int) -> int:
    """Each rank's batch: train.global_batch_size / ranks when it is set (refused unless it divides), else
    train.batch_size."""
    if not global_batch_size:
        return batch_size
    if global_batch_size % ranks:
        raise UserError(f"train.global_batch_size {global_batch_size} does not divide over {ranks} ranks; choose a "
                        f"multiple of {ranks} (e.g. {global_batch_size // ranks * ranks or ranks}) or another number "
                        "of ranks")
    return global_batch_size // ranks


def warmup_schedule(train, job: Job) -> WarmupLR:
    """The learning rate by step. Warm-up over train.warmup_epochs: from the per-rank rate to the rate scaled by the
    ranks, or with train.global_batch_size from target / warm-up steps (the same on any number of ranks); then
    constant, or with train.lr_decay=cosine down to 0 at the end of train.epochs."""
    warmup = train.warmup_epochs * job.steps
    start = job.lr / (max(warmup, 1) if train.global_batch_size else job.ranks.size) if warmup else job.lr
    return WarmupLR(start, job.lr, warmup, train.epochs * job.steps if train.lr_decay == "cosine" else 0)


def setup(cfg: Config, data_dir: Path, run_dir: Path, resume: bool, prepare: bool = True) -> tuple[Job, list]:
    """Horovod, the device, the manifest and this rank's plan; with `prepare`, `prepare_run`."""
    ranks = distributed.init(cfg.train.threads_per_rank)
    manifest = load_manifest(data_dir)
    if cfg.train.privacy.enabled:   # condition scaling and ranges that read no training data
        manifest = public_view(manifest)
    job = Job(cfg, data_dir, run_dir, manifest, ranks, 0, 0.0)
    job.replan(ranks)
    return job, prepare_run(job, resume) if prepare else []


def prepare_run(job: Job, resume: bool) -> list:
    """Rank 0 checks the shards and claims the run directory (its lock is returned and held until the process
    exits). A refusal on rank 0 stops every rank."""
    cfg, data_dir, run_dir, manifest, ranks = job.cfg, job.data_dir, job.run_dir, job.manifest, job.ranks
    error, held = None, []
    if ranks.rank == 0:
        try:
            check_shards(data_dir, manifest, full=cfg.train.verify_data == "sha256")
            held.append(run_dir_contract.prepare(cfg, data_dir, run_dir, manifest, resume, job.plan))
        except UserError as exc:
            error = exc
    distributed.stop_all_if(error, "run_dir_ready")
    return held


def build(job: Job) -> tuple[CVAE, StepAgreement]:
    """Seeds and precision, the model with its step agreement hook, the warmed-up LR and DistributedOptimizer."""
    cfg, rank, size = job.cfg, job.ranks.rank, job.ranks.size
    keras.utils.set_random_seed(cfg.train.seed + rank)
    if cfg.train.deterministic:
        tf.config.experimental.enable_op_determinism()
    if cfg.train.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    agreement = StepAgreement(distributed.max_allreduce)
    length, n_cond = job.manifest.signal_length, Conditions.from_manifest(job.manifest, cfg.model.conditions).width
    across = cfg.model.likelihood == "calibrated"   # also on one rank: an elastic run may grow
    if across and cfg.train.xla and size > 1 and rank == 0:
        log.warning("train.xla with model.likelihood=calibrated: the noise sigma is each rank's own batch optimum "
                    "(no collective inside an XLA-compiled loss), so the result depends slightly on the number of "
                    "ranks; use train.xla=false for a rank-independent result")
    p = cfg.train.privacy
    private = PrivateStep(p.clip_norm, job.noise_multiplier, job.batch * size, size, secrets.randbits(62),
                          distributed.grouped_mean_allreduce) if p.enabled else None
    model = CVAE(cfg.model, length, n_cond, seed=cfg.train.seed * 1000 + rank, step_hooks=[agreement.hook],
                 jit_compile=cfg.train.xla, rank_mean=distributed.mean_allreduce if across and not cfg.train.xla
                 else None, private=private)
    model.lr_schedule = warmup_schedule(cfg.train, job)
    model.compile(optimizer=hvd.DistributedOptimizer(
        (LAMB(model.lr_schedule, decay=cfg.train.weight_decay) if cfg.train.optimizer == "lamb"
         else keras.optimizers.AdamW(model.lr_schedule, weight_decay=cfg.train.weight_decay)
         if cfg.train.weight_decay else keras.optimizers.Adam(model.lr_schedule)),
        backward_passes_per_step=cfg.train.backward_passes_per_step,
        compression=hvd.Compression.fp16 if cfg.train.fp16_allreduce else hvd.Compression.none))
    model.build([(None, length), (None, n_cond)])
    model.optimizer.build(model.trainable_variables)   # slots exist before a restore, so they are restored too
    require_keras2(model=model, optimizer=model.optimizer, lr_schedule=model.lr_schedule)
    return model, agreement


def build_refinement(job: Job, model: CVAE, agreement: StepAgreement) -> Refiner | None:
    """The decoder's refinement phase (train.refine.epochs > 0), its learning rate scaled like the ELBO phase's."""
    refine = job.cfg.train.refine
    if not refine.epochs:
        return None
    lr = refine.learning_rate * job.lr / job.cfg.train.learning_rate
    return build_refiner(model, refine, job.manifest.signal_length, lr, step_hooks=[agreement.hook])


def restore(job: Job, model: CVAE, resume: bool) -> tuple[cb.TrainState, tf.train.CheckpointManager,
                                                           tf.train.CheckpointManager]:
    """Checkpoint managers (last K, best); on --resume every rank restores the newest readable checkpoint."""
    state = cb.TrainState()
    ckpt = tf.train.Checkpoint(model=model, optimizer=model.optimizer, state=state)
    last = tf.train.CheckpointManager(ckpt, job.run_dir / "checkpoints", max_to_keep=job.cfg.train.keep_checkpoints)
    best = tf.train.CheckpointManager(ckpt, job.run_dir / "best", max_to_keep=1)
    if resume:
        resume_latest(job, last, state)
    return state, last, best


def resume_latest(job: Job, last: tf.train.CheckpointManager, state: cb.TrainState) -> None:
    """Restore the newest readable checkpoint of the run (if any) and record that the run goes on under this
    configuration."""
    if last.checkpoints:
        restored = restore_latest_readable(last.checkpoint, last, job.ranks.rank)
        if job.ranks.rank == 0:
            log.info("resumed from %s at epoch %d", restored, int(state.epoch.numpy()))
    elif job.ranks.rank == 0:
        log.info("--resume: no checkpoint in %s yet, starting from scratch", job.run_dir)
    if job.ranks.rank == 0:   # the restore worked: this run continues under this configuration
        run_dir_contract.record(job.cfg, job.data_dir, job.run_dir, job.manifest, job.plan)


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


def callbacks(job: Job, agreement: StepAgreement, state, last, best, elastic: bool = False) -> tuple[list, dict]:
    """The callback list, in the order it must run at each epoch end: the agreement decides before validation,
    validation before the checkpointer (which saves `best` when validation improved), the timer before the
    TensorBoard logger (which reports the epoch time)."""
    cfg, rank, conditions = job.cfg, job.ranks.rank, job.cfg.model.conditions
    validation = cb.RankZeroValidation(eval_dataset(job.data_dir, job.manifest, "val", conditions, 256)
                                       if rank == 0 else None, state, cfg.train.patience, cfg.train.min_delta,
                                       agreement, cfg.model.beta)
    timer = cb.EpochTimer()
    items = [cb.StepWatchdog(cfg.train.step_timeout_s, cfg.train.step_timeout_floor_s)]
    if not elastic:   # an elastic run syncs rank 0's state itself, at start and after every reset
        items.append(hvd.callbacks.BroadcastGlobalVariablesCallback(0))
    items += [hvd.callbacks.MetricAverageCallback(), KLWarmup(cfg.model.beta, cfg.model.kl_warmup_epochs),
              agreement, validation, timer]
    p = cfg.train.privacy
    ledger = PrivacyLedger(job.noise_multiplier, job.sample_rate, p.delta, rank) if p.enabled else None
    if ledger:
        items.append(ledger)
    if rank == 0:
        hparams = {"ranks": job.ranks.size, "batch_per_rank": job.batch, "lr_scaled": job.lr,
                   "latent_dim": cfg.model.latent_dim, "beta": cfg.model.beta, "dense": str(cfg.model.dense_units),
                   "filters": str(cfg.model.filters), "conditions": ",".join(conditions)}
        items += [cb.Checkpointer(last, best, validation),
                  cb.TensorBoardLogger(str(job.run_dir / "tensorboard"), job.batch * job.ranks.size,
                                       job.steps, job.manifest.fs, cfg.train.image_every,
                                       tensorboard_inputs.reconstruction_batch(job.data_dir, job.manifest, conditions),
                                       tensorboard_inputs.age_encodings(job.data_dir, job.manifest, conditions),
                                       hparams, timer)]
    require_keras2(callbacks=items)
    return items, {"validation": validation, "timer": timer, "ledger": ledger}


def fit(job: Job, model: CVAE, items: list, state, done_steps: int = 0) -> dict:
    """model.fit over the remaining epochs (none when the run already finished or stopped early). `done_steps`
    (elastic training, after a reset mid-epoch; fewer than the steps per epoch): steps of the current epoch already
    trained; the epoch is finished with the steps that remain before the next ones start."""
    cfg, start = job.cfg, int(state.epoch.numpy())
    if job.ranks.rank == 0:
        log.info("training on %d rank(s) [%s], %d steps/epoch x %d per rank, lr %.2e, epochs %d..%d", job.ranks.size,
                 job.ranks.device, job.steps, job.batch, job.lr, start + 1, cfg.train.epochs)
    if start >= cfg.train.epochs or int(state.wait.numpy()) > cfg.train.patience:
        return {}
    epochs, val_loss = 0, []
    for first, last, skip in ([(start, start + 1, done_steps), (start + 1, cfg.train.epochs, 0)] if done_steps
                              else [(start, cfg.train.epochs, 0)]):
        if first >= last or model.stop_training:
            continue
        ds, _ = train_dataset(job.data_dir, job.manifest, cfg.model.conditions, job.batch,
                              job.ranks.rank, job.ranks.size, cfg.train.shuffle_buffer, cfg.train.seed, first, last,
                              cache=cfg.train.cache, local_ranks=job.ranks.local_size,
                              condition_noise=cfg.train.condition_noise, per_subject=cfg.train.privacy.enabled,
                              subject_cap=cfg.train.max_windows_per_subject, steps=job.steps,
                              augmentation=asdict(cfg.train.augment),
                              input_threads=cfg.train.threads_per_rank if job.ranks.on_cpu else 0)
        history = model.fit(ds.skip(skip), epochs=last, initial_epoch=first, steps_per_epoch=job.steps - skip,
                            callbacks=items, verbose=2 if job.ranks.rank == 0 else 0)
        epochs += len(history.epoch)
        val_loss += [float(v) for v in history.history.get("val_loss", [])]
    return {"epochs_run": epochs, "val_loss": val_loss}


def report(job: Job, model: CVAE, agreement: StepAgreement, state, result: dict, seconds: list,
           refiner: Refiner | None = None) -> None:
    """RUN/ranks/rank-NNN.json: what this rank did, with a digest of its weights, and of the refinement's critic
    (equal on every rank)."""
    (job.run_dir / "ranks").mkdir(exist_ok=True)
    write_json_atomic(job.run_dir / "ranks" / f"rank-{job.ranks.rank:03d}.json", {
        "rank": job.ranks.rank, "size": job.ranks.size, "device": job.ranks.device, "steps_per_epoch": job.steps,
        "epochs_run": result.get("epochs_run", 0), "stop_epoch": int(state.epoch.numpy()),
        "refine_epochs_run": result.get("refine_epochs_run", 0),
        "critic_sha256": distributed.weights_digest(refiner.critic) if refiner is not None else None,
        "preempted": agreement.preempted, "weights_sha256": distributed.weights_digest(model),
        "val_loss_history": result.get("val_loss", []), "epoch_seconds": seconds,
        "signals_per_epoch": job.steps * job.batch * job.ranks.size})


def refine(job: Job, model: CVAE, refiner: Refiner, agreement: StepAgreement, state, best, named: dict,
           result: dict, resume: bool) -> tuple[dict, tf.train.CheckpointManager, tf.train.CheckpointManager]:
    """The refinement epochs that remain after the ELBO phase, checkpointed in RUN/refine (the VAE, the critic,
    both optimizers, the epoch); returns the result, that manager and the one of the epoch with the smallest
    validation spectrum gap (RUN/refine_best). The first epoch starts from the best ELBO weights and rank 0's
    critic; a resume restores the newest readable refinement checkpoint on every rank."""
    cfg, rank = job.cfg, job.ranks.rank
    ckpt = tf.train.Checkpoint(model=model, optimizer=model.optimizer, state=state, **checkpoint_objects(refiner))
    last = tf.train.CheckpointManager(ckpt, job.run_dir / "refine", max_to_keep=cfg.train.keep_checkpoints)
    closest = tf.train.CheckpointManager(ckpt, job.run_dir / "refine_best", max_to_keep=1)
    if resume and last.checkpoints:
        restore_latest_readable(ckpt, last, rank)
    else:
        start_from_best(model, best.latest_checkpoint, rank)
    hvd_tf.broadcast_variables(model.variables + refiner.critic.variables, root_rank=0)
    first, epochs = int(refiner.epoch.numpy()), cfg.train.refine.epochs
    if first >= epochs:
        return result, last, closest
    if rank == 0:
        log.info("refining the decoder against a critic: epochs %d..%d", first + 1, epochs)
    ds, _ = train_dataset(job.data_dir, job.manifest, cfg.model.conditions, job.batch, rank, job.ranks.size,
                          cfg.train.shuffle_buffer, cfg.train.seed + 1, first, epochs, cache=cfg.train.cache,
                          local_ranks=job.ranks.local_size, subject_cap=cfg.train.max_windows_per_subject,
                          steps=job.steps, input_threads=cfg.train.threads_per_rank if job.ranks.on_cpu else 0)
    items = [cb.StepWatchdog(cfg.train.step_timeout_s, cfg.train.step_timeout_floor_s),
             hvd.callbacks.MetricAverageCallback(), agreement, named["timer"],
             RefineEpochs(refiner, named["validation"].val_data, last if rank == 0 else None,
                          str(job.run_dir / "tensorboard") if rank == 0 else None, int(state.epoch.numpy()),
                          closest if rank == 0 else None)]
    require_keras2(callbacks=items)
    history = refiner.fit(ds, epochs=epochs, initial_epoch=first, steps_per_epoch=job.steps, callbacks=items,
                          verbose=2 if rank == 0 else 0)
    return {**result, "refine_epochs_run": len(history.epoch)}, last, closest


def train(cfg: Config, data_dir: str | Path, run_dir: str | Path, resume: bool = False) -> int:
    """Train on every rank of the Horovod job; returns the process exit code (0 or EXIT_PREEMPTED)."""
    t0 = time.time()
    job, _lock = setup(cfg, Path(data_dir), Path(run_dir), resume)
    model, agreement = build(job)
    refiner = build_refinement(job, model, agreement)
    state, last, best = restore(job, model, resume)
    items, named = callbacks(job, agreement, state, last, best)
    result = fit(job, model, items, state)
    if refiner is not None and not (agreement.preempted or agreement.diverged_at):
        result, last, closest = refine(job, model, refiner, agreement, state, best, named, result, resume)
        if cfg.train.refine.select == "spectrum":
            best = closest
    return finish(job, model, agreement, state, last, best, result, named, t0, refiner)


def finish(job: Job, model: CVAE, agreement: StepAgreement, state, last, best, result: dict, named: dict,
           t0: float, refiner: Refiner | None = None) -> int:
    """After the fit (`last`: the current phase's checkpoints; `best`: the ELBO's best, or the selected refinement
    epoch's): report a divergence or a preemption (checkpointing it), each rank's report, and on rank 0
    the finalized, exported model. Returns the exit code."""
    if agreement.diverged_at:
        epoch, step, global_step = agreement.diverged_at
        raise UserError(f"training diverged: the loss became non-finite at epoch {epoch}, step {step} of {job.steps} "
                        f"(global step {global_step}) on at least one rank; nothing after it was checkpointed or "
                        f"exported; last good checkpoint: {last.latest_checkpoint or 'none'}; lower "
                        "train.learning_rate (or raise train.warmup_epochs) and rerun with --resume")
    if agreement.preempted and job.ranks.rank == 0:
        # Mid-epoch stop: save weights/optimizer, keep `epoch` at the last completed one, so a resume redoes it.
        last.save(checkpoint_number=refiner.updates if refiner else model.optimizer.iterations)
    report(job, model, agreement, state, result, named["timer"].seconds, refiner)
    if agreement.preempted:
        if job.ranks.rank == 0:
            log.warning("preempted: checkpoint at epoch %d written to %s; rerun with --resume (exit %d)",
                        int(state.epoch.numpy()), job.run_dir / "checkpoints", EXIT_PREEMPTED)
        return EXIT_PREEMPTED
    if job.ranks.rank == 0:
        ledger = named["ledger"]
        refined = int(refiner.epoch.numpy()) if refiner is not None else 0
        chosen = refined   # the refinement epoch exported
        if refined and job.cfg.train.refine.select != "last":
            chosen = int(tf.train.load_variable(best.latest_checkpoint, "refine_epoch/.ATTRIBUTES/VARIABLE_VALUE"))
        final = finalize(model, job.cfg, job.data_dir, job.run_dir, job.manifest,
                         best.latest_checkpoint if chosen != refined or not refined else None,
                         float(state.best.numpy()), named["validation"].val_data,
                         ledger and ledger.record(job.cfg.train.privacy.clip_norm), chosen)
        log.info("trained %d epoch(s)%s on %d rank(s) in %.1f s; best val_loss %.4f; model in %s",
                 result.get("epochs_run", 0), f" and refined the decoder {refined} (exported: refinement epoch "
                 f"{chosen})" if refined else "", job.ranks.size, time.time() - t0, float(state.best.numpy()), final)
    return 0
