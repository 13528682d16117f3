"""The application's configuration file: every layer's settings in one typed `Config`, loaded and checked whole."""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

from cvae.generation import settings as generation
from cvae.model import settings as model
from cvae.training import settings as training
from data_prep import settings as data
from data_prep.common import build_settings, check_choices, check_ranges, read_settings, save_settings
from data_prep.settings import LABELS, PrepConfig


@dataclass
class Config(PrepConfig):
    """Root configuration; every section has defaults, YAML files override them."""
    model: model.ModelConfig = field(default_factory=model.ModelConfig)
    train: training.TrainConfig = field(default_factory=training.TrainConfig)
    generate: generation.GenerateConfig = field(default_factory=generation.GenerateConfig)


CHOICES = {**data.CHOICES, **model.CHOICES, **training.CHOICES, **generation.CHOICES}
RANGES = {**data.RANGES, **model.RANGES, **training.RANGES, **generation.RANGES}
SECTIONS = ", ".join(f.name for f in fields(Config))   # named in the error a non-mapping file gets


def _validate(cfg: Config, source: str) -> Config:
    check_choices(cfg, CHOICES, source)
    data.check_labels(cfg, source)
    model.check_conditions(cfg.model, list(cfg.data.labels or LABELS) + cfg.data.categories, source)
    check_ranges(cfg, RANGES, source)
    model.check(cfg.model, cfg.data.signal_length, source)
    data.check(cfg, source)
    training.check(cfg.train, cfg.model.likelihood, source)
    return cfg


def load_config(path: str | Path | None, overrides: list[str] = ()) -> Config:
    """Load a YAML config (None = defaults), apply `key.sub=value` overrides, validate."""
    raw, where = read_settings(path, overrides, SECTIONS)
    return _validate(build_settings(Config, raw, where), where)


def save_config(cfg: Config, path: str | Path) -> None:
    """Write the resolved config as YAML (atomically)."""
    save_settings(cfg, path)
