"""Generation's settings (the generate section): batch size, seed, sensor noise and where z comes from."""
from __future__ import annotations

from dataclasses import dataclass

from data_prep.common import COUNT, NON_NEGATIVE


@dataclass
class GenerateConfig:
    """Synthetic cohort generation."""
    batch_size: int = 1024
    seed: int = 0
    add_noise: bool = True           # add the data's white sensor noise (meta.json noise_sigma) to the decoder mean
    latent: str = "fitted"           # fitted: z | condition from the model's posterior mixture | standard: N(0, I)


CHOICES = {"generate.latent": ("fitted", "standard")}
RANGES = {"generate.batch_size": COUNT, "generate.seed": NON_NEGATIVE}
