"""Elastic training (`train --elastic` under `horovodrun --min-np/--max-np`, Gloo): when a worker is lost the
others roll back to the last commit and go on without it; when one joins it receives rank 0's state. After every
change the data is re-dealt to the ranks, the learning rate rescaled, and rank 0's duties (validation, early
stopping, checkpoints, TensorBoard) stay with whichever process is rank 0 now."""
from __future__ import annotations

import logging
import time
from pathlib import Path

import horovod.tensorflow as hvd_tf
import horovod.tensorflow.keras as hvd

from cvae.config import Config
from cvae.keras2 import keras
from cvae.training import callbacks as cb
from cvae.training import distributed
from cvae.training.trainer import build, callbacks, finish, fit, prepare_run, restore, resume_latest, setup
from data_prep.common import UserError

log = logging.getLogger(__name__)


class ElasticState(hvd.elastic.KerasState):
    """Model, optimizer and training progress (epoch, early-stopping state, the share of the current epoch's steps
    trained), committed, restored and synced from rank 0 as one. A share, not a step count: a reset restores and syncs
    the last commit, made at another world size, whose steps per epoch differ."""

    def __init__(self, model: keras.Model, progress: cb.TrainState):
        self.progress = progress
        self._saved_progress = [v.numpy() for v in progress.variables]
        super().__init__(model, epoch_share=0.0, prepared=False)

    def save(self):
        self._saved_progress = [v.numpy() for v in self.progress.variables]
        super().save()

    def restore(self):
        for var, value in zip(self.progress.variables, self._saved_progress):
            var.assign(value)
        super().restore()

    def sync(self):
        hvd_tf.broadcast_variables(self.progress.variables, root_rank=0)
        super().sync()


class StepsIntoEpoch(keras.callbacks.Callback):
    """Keeps `state.epoch_share` = steps trained in the current epoch / its steps (0 at every epoch end); a commit
    saves it."""

    def __init__(self, state: ElasticState, steps: int, done: int):
        super().__init__()
        self.state, self.steps, self.done = state, steps, done

    def on_epoch_begin(self, epoch, logs=None):
        self.offset, self.done = self.done, 0   # the first epoch after a reset continues at `done`

    def on_train_batch_end(self, batch, logs=None):
        self.state.epoch_share = (self.offset + batch + 1) / self.steps

    def on_epoch_end(self, epoch, logs=None):
        self.state.epoch_share = 0.0


def steps_done(share: float, steps: int) -> int:
    """Steps of an epoch of `steps` already trained when `share` of it was: rounded down (a partly trained batch is
    trained again), and at least one step left to finish the epoch with."""
    return min(int(share * steps + 1e-9), steps - 1)


def train_elastic(cfg: Config, data_dir: str | Path, run_dir: str | Path, resume: bool = False) -> int:
    """Elastic training; returns the process exit code. A worker that joins later runs this too: it builds the
    model, then receives everything from rank 0 before its first step."""
    t0 = time.time()
    if cfg.train.privacy.enabled:
        raise UserError("train --elastic does not train privately (the subjects per rank change with the ranks); "
                        "drop --elastic or train.privacy.enabled")
    if cfg.train.refine.epochs:
        raise UserError("train --elastic does not run the decoder's refinement phase; drop --elastic or set "
                        "train.refine.epochs=0")
    job, _ = setup(cfg, Path(data_dir), Path(run_dir), resume, prepare=False)
    model, agreement = build(job)
    progress, last, best = restore(job, model, resume=False)
    state = ElasticState(model, progress)
    held, outcome = [], {}

    def on_reset():
        was = job.ranks.size
        job.replan(distributed.Ranks(hvd.rank(), hvd.size(), job.ranks.device, hvd.local_size()))
        model.lr_schedule.target.assign(job.lr)
        if job.ranks.rank == 0:
            log.warning("elastic reset: %d -> %d rank(s); %d steps/epoch x %d per rank, learning rate %.2e; "
                        "continuing at epoch %d, step %d", was, job.ranks.size, job.steps, job.batch,
                        float(model.lr_schedule.target.numpy()), int(progress.epoch.numpy()) + 1,
                        steps_done(state.epoch_share, job.steps))

    state.register_reset_callbacks([on_reset])

    @hvd.elastic.run
    def run(state):
        if not state.prepared:   # the first start: rank 0 claims the run directory, every rank restores
            held.extend(prepare_run(job, resume))
            if resume:
                resume_latest(job, last, progress)
            state.prepared = True
            state.save()
        log.info("rank %d of %d: weights %s", job.ranks.rank, job.ranks.size,
                 distributed.weights_digest(model)[:16])
        items, named = callbacks(job, agreement, progress, last, best, elastic=True)
        done = steps_done(state.epoch_share, job.steps)   # the synced last commit, in this world size's steps
        items += [StepsIntoEpoch(state, job.steps, done),
                  hvd.elastic.CommitStateCallback(state, batches_per_commit=cfg.train.elastic_commit_steps)]
        outcome["named"] = named
        return fit(job, model, items, progress, done_steps=done)

    result = run(state)
    if result is None:   # Horovod's elastic wrapper returns None on a TensorFlow UnknownError it does not recognize
        raise RuntimeError("elastic training stopped on an unrecognized TensorFlow error (see the log above)")
    return finish(job, model, agreement, progress, last, best, result, outcome["named"], t0)
