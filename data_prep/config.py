"""Typed configuration: YAML (safe_load) into dataclasses, `key.sub=value` overrides, one-line errors."""
from __future__ import annotations

import dataclasses
import math
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from data_prep.errors import UserError
from data_prep.files import write_text_atomic

LABELS = ("age", "sex", "height", "weight", "bmi", "hr")


@dataclass
class SimulateConfig:
    """Built-in cohort simulator (the default source when `prep` gets no --source)."""
    n_subjects: int = 200            # subjects; each contributes segments_per_subject signals
    segments_per_subject: int = 5    # 1024-sample windows per subject
    age_min: float = 18.0
    age_max: float = 98.0
    noise_std: float = 0.02          # sensor noise, relative to pulse amplitude
    artifact_rate: float = 0.02      # fraction of segments with a motion artifact burst


@dataclass
class DataConfig:
    """Data preparation: signal format, validation, normalization, split and sharding."""
    signal_length: int = 1024        # samples per segment
    fs: float = 125.0                # sampling rate, Hz
    labels: list[str] = field(default_factory=list)  # label columns kept ([] = every known one the source has;
    #                                                  age is required); each must be one of LABELS
    categories: list[str] = field(default_factory=list)  # categorical columns kept, e.g. [source, site]: `source` is
    #                                                  each row's source, others are label-table columns
    label_map: dict[str, str] = field(default_factory=dict)     # source column -> label, e.g. {Age: age}
    label_scale: dict[str, float] = field(default_factory=dict)  # unit fixes, e.g. {height: 100} for metres
    length_policy: str = "reject"    # signals of another length: reject (quarantine) | crop | resample
    raw_column: str = ""             # raw CSV recordings: the PPG column ('' = the only numeric column besides time)
    raw_channel: str = ""            # WFDB records: channel name ('' = first PLETH/PPG channel, else 0)
    window_overlap: float = 0.0      # raw recordings: overlap of consecutive windows, fraction [0, 1)
    normalization: str = "maxabs"    # maxabs (per signal, reference study) | zscore | minmax
    val_fraction: float = 0.1        # of subjects
    test_fraction: float = 0.1       # of subjects
    train_shards: int = 4
    val_shards: int = 1
    test_shards: int = 1
    compression: str = "none"        # none | gzip
    max_bad_fraction: float = 0.05   # stop when more rows than this fail validation
    workers: int = 2                 # processes writing shards
    seed: int = 1234


@dataclass
class ConditionConfig:
    """Conditioning of raw recordings (CSV, WFDB, VitalDB) before windowing; array sources only with `arrays`."""
    arrays: bool = False             # also condition array sources (pickles, npz, npy, PulseDB) as recordings
    unwrap: bool = True              # undo ADC wrap-around in quantized recordings (steps above 3/4 of the ADC span)
    max_gap_s: float = 0.25          # missing stretches up to this long are interpolated; longer ones split
    filter: str = "cheby2"           # band-pass: cheby2 (Liang et al. 2018) | butter | none
    low_hz: float = 0.5
    high_hz: float = 10.0
    order: int = 4
    stopband_db: float = 20.0        # cheby2 stopband attenuation
    edge_s: float = 2.0              # dropped at both ends of every segment (filter and resampling transients)
    polarity: str = "auto"           # keep | invert | auto (invert when the steep edge of the beats points down)


@dataclass
class QualityConfig:
    """Per-window quality verdict for conditioned sources; failing windows go to the quarantine with the reason."""
    rail_band: float = 0.01          # share of a recording's range at its min and max that counts as the ADC rail
    clip_fraction: float = 0.05      # clipped: at least this share of the window's samples on a rail
    max_jump: float = 0.5            # clipped too: one sample-to-sample jump above this share of the range
    flat_s: float = 0.5              # flat: the raw signal holds one value this long
    hr_min: float = 35.0             # beats/min; fewer than 3 beats or a median rate outside -> rejected
    hr_max: float = 180.0
    min_template_corr: float = 0.9   # mean beat-to-template correlation (neurokit2 ppg_quality templatematch)


@dataclass
class ModelConfig:
    """Conditional convolutional VAE; `conditions` are label columns fed to encoder and decoder."""
    conditions: list[str] = field(default_factory=lambda: ["age"])
    latent_dim: int = 16
    filters: list[int] = field(default_factory=lambda: [16, 32, 64])  # one strided conv per entry
    kernel_size: int = 7
    stride: int = 4
    dense_units: list[int] = field(default_factory=lambda: [128])   # encoder dense stack; decoder mirrors it
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


@dataclass
class PrivacyConfig:
    """Differentially private training (DP-SGD, the subject as the privacy unit): cvae/privacy.py."""
    enabled: bool = False
    noise_multiplier: float = 1.0    # Gaussian noise std over clip_norm, added once per global step
    target_epsilon: float = 0.0      # > 0: the noise multiplier is the smallest that keeps train.epochs within this
    #                                  epsilon (noise_multiplier is then not used); an early stop spends less
    clip_norm: float = 1.0           # L2 bound of each window's gradient (one window per subject per step)
    delta: float = 1e-5              # epsilon is reported at this delta; must stay below 1 / training subjects


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
    optimizer: str = "adam"          # adam | lamb (layer-wise trust ratio for large global batches: cvae/lamb.py)
    weight_decay: float = 0.0        # lamb: decoupled weight decay
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
    condition_noise: float = 0.0     # Gaussian noise added to each numeric training condition, in units of its
    #                                  training-split std (0.3 ~ 5 years of age): no subject's waveform keyed on its
    #                                  exact age; validation and generation see the exact values
    verify_data: str = "size"        # at train start each shard must have its manifest size | sha256 (a full read)
    step_timeout_s: float = 600.0    # upper bound of the hung-rank limit (the limit itself until the first epoch
    #                                  is over; then 10 x the slowest step or epoch boundary seen, within these two)
    step_timeout_floor_s: float = 60.0  # lower bound of that limit
    seed: int = 42
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig)


@dataclass
class GenerateConfig:
    """Synthetic cohort generation."""
    batch_size: int = 1024
    seed: int = 0
    add_noise: bool = True           # add the data's white sensor noise (meta.json noise_sigma) to the decoder mean
    latent: str = "fitted"           # fitted: z | condition from the model's posterior mixture | standard: N(0, I)


@dataclass
class Config:
    """Root configuration; every section has defaults, YAML files override them."""
    simulate: SimulateConfig = field(default_factory=SimulateConfig)
    data: DataConfig = field(default_factory=DataConfig)
    condition: ConditionConfig = field(default_factory=ConditionConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    generate: GenerateConfig = field(default_factory=GenerateConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


CHOICES = {
    "data.normalization": ("maxabs", "zscore", "minmax"),
    "data.compression": ("none", "gzip"),
    "data.length_policy": ("reject", "crop", "resample"),
    "model.output_activation": ("tanh", "sigmoid", "linear"),
    "model.conv_activation": ("relu", "tanh", "elu"),
    "model.likelihood": ("gaussian", "calibrated", "sse"),
    "generate.latent": ("fitted", "standard"),
    "train.verify_data": ("size", "sha256"),
    "train.optimizer": ("adam", "lamb"),
    "train.lr_decay": ("none", "cosine"),
    "condition.filter": ("cheby2", "butter", "none"),
    "condition.polarity": ("keep", "invert", "auto"),
}


@dataclass(frozen=True)
class Range:
    """An interval a numeric key must lie in; NaN and infinities are outside every range."""
    lo: float
    hi: float = math.inf
    lo_open: bool = False
    hi_open: bool = False

    def __contains__(self, value: float) -> bool:
        return (math.isfinite(value) and (self.lo < value if self.lo_open else self.lo <= value)
                and (value < self.hi if self.hi_open else value <= self.hi))

    def __str__(self) -> str:
        if self.hi == math.inf:
            return f"{'>' if self.lo_open else '>='} {self.lo:g}"
        return f"{'(' if self.lo_open else '['}{self.lo:g}, {self.hi:g}{')' if self.hi_open else ']'}"


COUNT, NON_NEGATIVE, POSITIVE = Range(1), Range(0), Range(0, lo_open=True)
FRACTION = Range(0, 1, hi_open=True)
# The documented range of every numeric key (list and mapping keys: of each item); checked at load.
RANGES = {
    "simulate.n_subjects": COUNT, "simulate.segments_per_subject": COUNT, "simulate.age_min": Range(0, 120),
    "simulate.age_max": Range(0, 120), "simulate.noise_std": Range(0, 1), "simulate.artifact_rate": Range(0, 1),
    "data.signal_length": Range(16, 1 << 20), "data.fs": Range(0, 100_000, lo_open=True),
    "data.label_scale": POSITIVE, "data.window_overlap": FRACTION, "data.val_fraction": FRACTION,
    "data.test_fraction": FRACTION, "data.train_shards": COUNT, "data.val_shards": COUNT, "data.test_shards": COUNT,
    "data.max_bad_fraction": FRACTION, "data.workers": COUNT, "data.seed": NON_NEGATIVE,
    "condition.max_gap_s": NON_NEGATIVE, "condition.low_hz": Range(0.01, 20), "condition.high_hz": Range(1, 100),
    "condition.order": Range(1, 10), "condition.stopband_db": Range(5, 80), "condition.edge_s": Range(0, 60),
    "quality.rail_band": Range(0, 0.5), "quality.clip_fraction": Range(0, 1, lo_open=True),
    "quality.max_jump": Range(0, 1, lo_open=True), "quality.flat_s": POSITIVE, "quality.hr_min": Range(10, 300),
    "quality.hr_max": Range(10, 300), "quality.min_template_corr": Range(-1, 1),
    "model.latent_dim": COUNT, "model.filters": COUNT, "model.kernel_size": COUNT, "model.stride": COUNT,
    "model.dense_units": COUNT, "model.beta": NON_NEGATIVE, "model.kl_warmup_epochs": NON_NEGATIVE,
    "model.posterior_mixture": NON_NEGATIVE, "model.posterior_mixture_rows": COUNT,
    "train.epochs": COUNT, "train.batch_size": COUNT, "train.global_batch_size": NON_NEGATIVE,
    "train.weight_decay": Range(0, 1), "train.elastic_commit_steps": COUNT,
    "train.learning_rate": Range(0, 10, lo_open=True),
    "train.warmup_epochs": NON_NEGATIVE, "train.patience": NON_NEGATIVE, "train.min_delta": NON_NEGATIVE,
    "train.threads_per_rank": NON_NEGATIVE, "train.shuffle_buffer": COUNT, "train.backward_passes_per_step": COUNT,
    "train.image_every": NON_NEGATIVE, "train.keep_checkpoints": COUNT, "train.condition_noise": Range(0, 2), "train.seed": NON_NEGATIVE,
    "train.step_timeout_s": Range(10, 86_400), "train.step_timeout_floor_s": Range(1, 86_400),
    "generate.batch_size": COUNT, "generate.seed": NON_NEGATIVE,
}


def _check_ranges(cfg: Config, source: str) -> None:
    """Every numeric value (and every item of a numeric list or mapping) inside its documented range."""
    for key, allowed in RANGES.items():
        section, name = key.split(".")
        value = getattr(getattr(cfg, section), name)
        items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) \
            else [(None, value)]
        for sub, v in items:
            if v not in allowed:
                where = key if sub is None else f"{key}[{sub}]" if isinstance(sub, int) else f"{key}.{sub}"
                phrase = f"must be {allowed}" if allowed.hi == math.inf else f"must lie in {allowed}"
                raise UserError(f"{source}: '{where}' is {v!r}; it {phrase}")


def _type_name(tp) -> str:
    return getattr(tp, "__name__", str(tp))


def _coerce(value, tp, source: str, key: str):
    """Check `value` against the annotated type `tp`; ints (and YAML-1.1 strings like '1e9') pass as floats."""
    origin = typing.get_origin(tp)
    if origin is dict:
        key_tp, value_tp = typing.get_args(tp)
        if not isinstance(value, dict):
            raise UserError(f"{source}: '{key}': expected a mapping, got {value!r}")
        return {_coerce(k, key_tp, source, f"{key} key"): _coerce(v, value_tp, source, f"{key}.{k}")
                for k, v in value.items()}
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise UserError(f"{source}: '{key}': expected a list of {_type_name(item_tp)}, got {value!r}")
        return [_coerce(v, item_tp, source, f"{key}[{i}]") for i, v in enumerate(value)]
    if tp is float and not isinstance(value, bool):
        if isinstance(value, int):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    if tp is int and isinstance(value, bool) or not isinstance(value, tp):
        raise UserError(f"{source}: '{key}': expected {_type_name(tp)}, got {value!r} ({type(value).__name__})")
    return value


def _build(cls, data, path: str, source: str):
    if not isinstance(data, dict):
        raise UserError(f"{source}: '{path or 'top level'}' must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        key = f"{path}.{unknown[0]}" if path else str(unknown[0])
        raise UserError(f"{source}: unknown key '{key}'; known keys here: {', '.join(sorted(names))}")
    kwargs = {}
    for name, value in data.items():
        key = f"{path}.{name}" if path else name
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            kwargs[name] = _build(tp, value, key, source)
        else:
            kwargs[name] = _coerce(value, tp, source, key)
    return cls(**kwargs)


def _validate(cfg: Config, source: str) -> Config:
    for key, allowed in CHOICES.items():
        section, name = key.split(".")
        value = getattr(getattr(cfg, section), name)
        if value not in allowed:
            raise UserError(f"{source}: '{key}' is {value!r}; choose one of {', '.join(allowed)}")
    for label in cfg.data.labels:
        if label not in LABELS:
            raise UserError(f"{source}: 'data.labels' has unknown label {label!r}; known: {', '.join(LABELS)}")
    _check_categories(cfg.data.categories, source)
    for label in cfg.model.conditions:
        if label not in list(cfg.data.labels or LABELS) + cfg.data.categories:
            raise UserError(f"{source}: 'model.conditions' uses {label!r}, which is not in data.labels or "
                            "data.categories")
    if len(set(cfg.model.conditions)) != len(cfg.model.conditions) or "age" not in cfg.model.conditions:
        raise UserError(f"{source}: 'model.conditions' must name age and each label once")
    _check_ranges(cfg, source)
    if cfg.data.signal_length % (cfg.model.stride ** len(cfg.model.filters)):
        raise UserError(f"{source}: data.signal_length {cfg.data.signal_length} is not divisible by "
                        f"model.stride**len(model.filters) = {cfg.model.stride ** len(cfg.model.filters)}")
    for name in list(cfg.data.label_map.values()) + list(cfg.data.label_scale):
        if name not in LABELS:
            raise UserError(f"{source}: data.label_map/label_scale name unknown label {name!r}; "
                            f"known: {', '.join(LABELS)}")
    for key in ("filters", "dense_units"):
        if not getattr(cfg.model, key):
            raise UserError(f"{source}: 'model.{key}' must be a non-empty list of positive ints")
    if cfg.data.val_fraction + cfg.data.test_fraction >= 1:
        raise UserError(f"{source}: data.val_fraction + data.test_fraction is "
                        f"{cfg.data.val_fraction + cfg.data.test_fraction:g}; it must stay below 1")
    if not cfg.condition.low_hz < cfg.condition.high_hz:
        raise UserError(f"{source}: condition.low_hz must be below condition.high_hz")
    if cfg.train.step_timeout_floor_s > cfg.train.step_timeout_s:
        raise UserError(f"{source}: train.step_timeout_floor_s ({cfg.train.step_timeout_floor_s:g}) must not exceed "
                        f"train.step_timeout_s ({cfg.train.step_timeout_s:g})")
    if not cfg.quality.hr_min < cfg.quality.hr_max:
        raise UserError(f"{source}: quality.hr_min must be below quality.hr_max")
    if not cfg.simulate.age_min < cfg.simulate.age_max:
        raise UserError(f"{source}: simulate.age_min must be below simulate.age_max")
    _check_privacy(cfg, source)
    return cfg


def _check_privacy(cfg: Config, source: str) -> None:
    """train.privacy: its numbers, and nothing enabled beside it that would break the per-subject bound."""
    p = cfg.train.privacy
    for key, value, ok in (("noise_multiplier", p.noise_multiplier, Range(0, 1e6, lo_open=True)),
                           ("clip_norm", p.clip_norm, Range(0, 1e6, lo_open=True)),
                           ("target_epsilon", p.target_epsilon, Range(0, 1e3)),
                           ("delta", p.delta, Range(0, 1, lo_open=True, hi_open=True))):
        if value not in ok:
            raise UserError(f"{source}: 'train.privacy.{key}' is {value!r}; it must lie in {ok}")
    if not p.enabled:
        return
    clash = {"model.likelihood=calibrated (its sigma is a statistic of the whole batch)":
             cfg.model.likelihood == "calibrated",
             "train.backward_passes_per_step > 1": cfg.train.backward_passes_per_step > 1,
             "train.xla": cfg.train.xla, "train.mixed_precision": cfg.train.mixed_precision,
             "train.fp16_allreduce": cfg.train.fp16_allreduce}
    for what, on in clash.items():
        if on:
            raise UserError(f"{source}: train.privacy.enabled does not combine with {what}; turn that off or "
                            "train without privacy")


CATEGORY_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
RESERVED_COLUMNS = {"record", "subject_id", "segment_id", "fs", "row", "split", "given_split"}


def _check_categories(names: list[str], source: str) -> None:
    """data.categories: distinct lower-case column names that are neither numeric labels nor prep's own columns."""
    for name in names:
        if not isinstance(name, str) or not CATEGORY_NAME.fullmatch(name) or name in LABELS \
                or name in RESERVED_COLUMNS:
            raise UserError(f"{source}: 'data.categories' entry {name!r} is not a categorical column name (lower-case "
                            f"letters, digits, _; not one of {', '.join(LABELS + tuple(sorted(RESERVED_COLUMNS)))})")
    if len(set(names)) != len(names):
        raise UserError(f"{source}: 'data.categories' names a column twice")


def parse_override(text: str) -> tuple[list[str], object]:
    """Split `key.sub=value` into its key path and a YAML-parsed value."""
    key, sep, raw = text.partition("=")
    if not sep or not key or any(not part for part in key.split(".")):
        raise UserError(f"override {text!r} is not of the form key.sub=value (e.g. train.epochs=5)")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise UserError(f"override {text!r}: value is not valid YAML ({exc.problem})") from None
    return key.split("."), value


def load_config(path: str | Path | None, overrides: list[str] = ()) -> Config:
    """Load a YAML config (None = defaults), apply `key.sub=value` overrides, validate."""
    data: dict = {}
    source = "defaults"
    if path is not None:
        source = str(path)
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise UserError(f"cannot read config {path}: {exc.strerror}; pass an existing YAML file") from None
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" line {mark.line + 1}" if mark else ""
            raise UserError(f"{path}:{where} is not valid YAML ({getattr(exc, 'problem', exc)})") from None
        if not isinstance(data, dict):
            raise UserError(f"{path}: top level must be a mapping of sections (simulate, data, condition, quality, "
                            "model, train, generate)")
    for text in overrides:
        keys, value = parse_override(text)
        node = data
        for part in keys[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise UserError(f"override {text!r}: '{part}' is not a section")
        node[keys[-1]] = value
    where = source if not overrides else f"{source} + overrides"
    return _validate(_build(Config, data, "", where), where)


def save_config(cfg: Config, path: str | Path) -> None:
    """Write the resolved config as YAML (atomically)."""
    write_text_atomic(path, yaml.safe_dump(cfg.to_dict(), sort_keys=False))
