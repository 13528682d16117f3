"""The model's settings (the model section): the network's shape, its likelihood and KL weight, the latent mixture."""
from __future__ import annotations

from dataclasses import dataclass, field

from data_prep.common import COUNT, NON_NEGATIVE, Range, UserError


@dataclass
class ModelConfig:
    """Conditional convolutional VAE; `conditions` are label columns fed to encoder and decoder."""
    conditions: list[str] = field(default_factory=lambda: ["age"])
    latent_dim: int = 16
    filters: list[int] = field(default_factory=lambda: [16, 32, 64])  # one strided conv per entry
    kernel_size: int = 7
    stride: int = 4
    dense_units: list[int] = field(default_factory=lambda: [128])   # encoder dense stack; decoder mirrors it
    dropout: float = 0.0             # dropout rate after each dense layer of encoder and decoder, in training (its
    #                                  masks are not checkpointed: a resumed run is not bit-identical)
    decoder_residual_blocks: int = 0  # residual dilated-conv blocks after each decoder upsampling (a larger decoder)
    conv_activation: str = "relu"
    output_activation: str = "tanh"  # must cover the normalized data range (tanh for maxabs)
    likelihood: str = "gaussian"     # gaussian: NLL, learned noise sigma | calibrated: sigma at its per-batch
    #                                  optimum (for large batches: few updates) | sse: summed squared error
    beta: float = 1.0                # KL weight
    kl_warmup_epochs: int = 0        # beta ramps linearly: beta * (epoch + 1) / kl_warmup_epochs, then beta
    posterior_mixture: int = 200     # components of the Gaussian mixture fit to (z, condition) of training
    #                                  encodings after training; generation samples z | condition from it (0 = N(0, I))
    posterior_mixture_rows: int = 50000  # training signals encoded for that fit (the first shards; subjects are
    #                                      spread over shards in random order)
    posterior_mixture_min_subjects: int = 0  # > 0: every component is the fit of at least this many subjects'
    #                                      encodings, at most one component per this many subjects (0 = no floor;
    #                                      the count behind each component is recorded either way)


CHOICES = {
    "model.output_activation": ("tanh", "sigmoid", "linear"),
    "model.conv_activation": ("relu", "tanh", "elu"),
    "model.likelihood": ("gaussian", "calibrated", "sse"),
}
RANGES = {
    "model.latent_dim": COUNT, "model.filters": COUNT, "model.kernel_size": COUNT, "model.stride": COUNT,
    "model.dense_units": COUNT, "model.decoder_residual_blocks": Range(0, 8),
    "model.dropout": Range(0, 0.9), "model.beta": NON_NEGATIVE,
    "model.kl_warmup_epochs": NON_NEGATIVE,
    "model.posterior_mixture": NON_NEGATIVE, "model.posterior_mixture_rows": COUNT,
    "model.posterior_mixture_min_subjects": NON_NEGATIVE,
}


def check_conditions(model: ModelConfig, labels: list[str], source: str) -> None:
    """model.conditions: age and each other label once, every one among the data's labels and categories."""
    for label in model.conditions:
        if label not in labels:
            raise UserError(f"{source}: 'model.conditions' uses {label!r}, which is not in data.labels or "
                            "data.categories")
    if len(set(model.conditions)) != len(model.conditions) or "age" not in model.conditions:
        raise UserError(f"{source}: 'model.conditions' must name age and each label once")


def check(model: ModelConfig, signal_length: int, source: str) -> None:
    """The model section's checks across keys (after every key's own range), against the data's signal length."""
    if signal_length % (model.stride ** len(model.filters)):
        raise UserError(f"{source}: data.signal_length {signal_length} is not divisible by "
                        f"model.stride**len(model.filters) = {model.stride ** len(model.filters)}")
    for key in ("filters", "dense_units"):
        if not getattr(model, key):
            raise UserError(f"{source}: 'model.{key}' must be a non-empty list of positive ints")
