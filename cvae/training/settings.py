"""Training's settings (the train section and its privacy block): the Horovod loop, checkpoints, DP-SGD."""
from __future__ import annotations

from dataclasses import dataclass, field

from data_prep.common import COUNT, NON_NEGATIVE, Range, UserError


@dataclass
class PrivacyConfig:
    """Differentially private training (DP-SGD, the subject as the privacy unit): cvae/training/privacy.py."""
    enabled: bool = False
    noise_multiplier: float = 1.0    # Gaussian noise std over clip_norm, added once per global step
    target_epsilon: float = 0.0      # > 0: the noise multiplier is the smallest that keeps train.epochs within this
    #                                  epsilon (noise_multiplier is then not used); an early stop spends less
    clip_norm: float = 1.0           # L2 bound of each window's gradient (one window per subject per step)
    delta: float = 1e-5              # epsilon is reported at this delta; must stay below 1 / training subjects


@dataclass
class AugmentConfig:
    """Augmentations of the training windows, drawn anew for every window and epoch (cvae/training/augment.py);
    validation, the refinement's critic and generation see the windows as they are. All 0: none."""
    amplitude: float = 0.0           # the window scaled by U(1 - amplitude, 1)
    baseline: float = 0.0            # a linear drift over the window, ends at +-U(0, baseline)
    time_warp: float = 0.0           # time scale U(1 - time_warp, 1 + time_warp): the rate by a few percent
    noise: float = 0.0               # white noise of sd U(0, noise)


@dataclass
class RefineConfig:
    """Adversarial refinement of the decoder after the ELBO phase (cvae/training/refine.py): the encoder is kept,
    the decoder learns to render windows a critic cannot tell from the training windows they were encoded from."""
    epochs: int = 0                  # refinement epochs after early stopping (0 = none)
    learning_rate: float = 1e-4      # decoder and critic (Adam, beta_1 0.5, beta_2 0.9), per rank: scaled like
    #                                  train.learning_rate
    adversarial: float = 1.0         # weight of the critic's hinge loss in the decoder's loss
    feature_matching: float = 10.0   # weight of the L1 distance of the critic's features, real vs rendered
    spectral: float = 1.0            # weight of the multi-resolution STFT distance, real vs rendered
    reconstruction: float = 0.0      # weight of the summed squared error, real vs rendered (keeps the ELBO's fit)
    select: str = "last"             # the refinement epoch exported: last | spectrum (the one whose validation
    #                                  renderings' mean log spectrum is closest to the validation windows')
    critic_width: int = 16           # filters of the critic's first layer (then 2x, 4x, 4x)
    critic_scales: int = 3           # the window, then average-pooled by 2, 4, ...


@dataclass
class TrainConfig:
    """Horovod training loop, validation, early stopping, checkpoints and TensorBoard."""
    epochs: int = 20
    batch_size: int = 64             # per rank (when global_batch_size is 0)
    global_batch_size: int = 0       # signals per update over all ranks (0 = batch_size x ranks): each rank takes
    #                                  global / ranks, so the result does not depend on the number of ranks; the
    #                                  learning rate is then the global batch's, not scaled by the ranks
    learning_rate: float = 1e-3      # per rank; scaled by world size when scale_lr
    scale_lr: bool = True
    optimizer: str = "adam"          # adam | lamb (layer-wise trust ratio for large global batches: cvae/model/lamb.py)
    weight_decay: float = 0.0        # decoupled weight decay (adam: AdamW; lamb: its own), per update x the LR
    warmup_epochs: int = 1           # linear LR warm-up to the (scaled) learning rate
    lr_decay: str = "none"           # none | cosine: after the warm-up, a half cosine to 0 at the last epoch
    patience: int = 5                # epochs without val improvement before stopping
    min_delta: float = 0.0           # smallest val_loss decrease that counts as improvement
    threads_per_rank: int = 1        # CPU compute and input-pipeline threads per rank (0 = TensorFlow default)
    shuffle_buffer: int = 4096
    cache: bool = True               # decode this rank's training records once into memory when they fit
    elastic_commit_steps: int = 20   # train --elastic: steps between commits (a lost worker costs at most these)
    fp16_allreduce: bool = False     # compress gradients to float16 for the allreduce
    backward_passes_per_step: int = 1  # accumulate this many local batches per allreduce/update
    mixed_precision: bool = False    # float16 compute with float32 variables (GPUs)
    xla: bool = False                # XLA-compile the model's forward/backward computation
    deterministic: bool = False      # TensorFlow op determinism (bit-reproducible resume; slower)
    image_every: int = 5             # epochs between TensorBoard waveform images (0 = never)
    keep_checkpoints: int = 3
    max_windows_per_subject: int = 0  # > 0: each epoch takes at most this many windows of each training subject,
    #                                  drawn anew every epoch (long recordings do not dominate; needs train.cache)
    condition_noise: float = 0.0     # Gaussian noise added to each numeric training condition, in units of its
    #                                  training-split std (0.3 ~ 5 years of age): no subject's waveform keyed on its
    #                                  exact age; validation and generation see the exact values
    verify_data: str = "size"        # at train start each shard must have its manifest size | sha256 (a full read)
    step_timeout_s: float = 600.0    # upper bound of the hung-rank limit (the limit itself until the first epoch
    #                                  is over; then 10 x the slowest step or epoch boundary seen, within these two)
    step_timeout_floor_s: float = 60.0  # lower bound of that limit
    seed: int = 42
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    refine: RefineConfig = field(default_factory=RefineConfig)


CHOICES = {
    "train.verify_data": ("size", "sha256"),
    "train.optimizer": ("adam", "lamb"),
    "train.lr_decay": ("none", "cosine"),
    "train.refine.select": ("last", "spectrum"),
}
RANGES = {
    "train.epochs": COUNT, "train.batch_size": COUNT, "train.global_batch_size": NON_NEGATIVE,
    "train.weight_decay": Range(0, 1), "train.elastic_commit_steps": COUNT,
    "train.learning_rate": Range(0, 10, lo_open=True),
    "train.warmup_epochs": NON_NEGATIVE, "train.patience": NON_NEGATIVE, "train.min_delta": NON_NEGATIVE,
    "train.threads_per_rank": NON_NEGATIVE, "train.shuffle_buffer": COUNT, "train.backward_passes_per_step": COUNT,
    "train.image_every": NON_NEGATIVE, "train.max_windows_per_subject": NON_NEGATIVE,
    "train.keep_checkpoints": COUNT, "train.condition_noise": Range(0, 2),
    "train.seed": NON_NEGATIVE, "train.step_timeout_s": Range(10, 86_400),
    "train.step_timeout_floor_s": Range(1, 86_400),
    "train.privacy.noise_multiplier": Range(0, 1e6, lo_open=True),
    "train.privacy.clip_norm": Range(0, 1e6, lo_open=True), "train.privacy.target_epsilon": Range(0, 1e3),
    "train.privacy.delta": Range(0, 1, lo_open=True, hi_open=True),
    "train.augment.amplitude": Range(0, 0.5), "train.augment.baseline": Range(0, 0.5),
    "train.augment.time_warp": Range(0, 0.2), "train.augment.noise": Range(0, 0.2),
    "train.refine.epochs": NON_NEGATIVE, "train.refine.learning_rate": Range(0, 10, lo_open=True),
    "train.refine.adversarial": NON_NEGATIVE, "train.refine.feature_matching": NON_NEGATIVE,
    "train.refine.spectral": NON_NEGATIVE, "train.refine.reconstruction": NON_NEGATIVE,
    "train.refine.critic_width": COUNT, "train.refine.critic_scales": Range(1, 6),
}


def check(train: TrainConfig, likelihood: str, source: str) -> None:
    """The train section's checks across keys (after every key's own range); `likelihood` is the model's."""
    if train.step_timeout_floor_s > train.step_timeout_s:
        raise UserError(f"{source}: train.step_timeout_floor_s ({train.step_timeout_floor_s:g}) must not exceed "
                        f"train.step_timeout_s ({train.step_timeout_s:g})")
    _check_privacy(train, likelihood, source)


def _check_privacy(train: TrainConfig, likelihood: str, source: str) -> None:
    """train.privacy: nothing enabled beside it that would break the per-subject bound."""
    p = train.privacy
    if not p.enabled:
        return
    clash = {"model.likelihood=calibrated (its sigma is a statistic of the whole batch)": likelihood == "calibrated",
             "train.backward_passes_per_step > 1": train.backward_passes_per_step > 1,
             "train.xla": train.xla, "train.mixed_precision": train.mixed_precision,
             "train.fp16_allreduce": train.fp16_allreduce,
             "train.refine.epochs > 0 (the refinement reads the training windows without noise)":
                 train.refine.epochs > 0,
             "train.max_windows_per_subject (a private epoch takes one window per subject)":
                 train.max_windows_per_subject > 0}
    for what, on in clash.items():
        if on:
            raise UserError(f"{source}: train.privacy.enabled does not combine with {what}; turn that off or "
                            "train without privacy")
