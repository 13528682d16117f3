"""The data layer's settings (simulate, data, condition, quality sections): defaults, allowed values, checks."""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from data_prep.common import COUNT, FRACTION, NON_NEGATIVE, POSITIVE, Range, UserError

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
class PrepConfig:
    """What `prep` reads: the data sections of a configuration file."""
    simulate: SimulateConfig = field(default_factory=SimulateConfig)
    data: DataConfig = field(default_factory=DataConfig)
    condition: ConditionConfig = field(default_factory=ConditionConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)


CHOICES = {
    "data.normalization": ("maxabs", "zscore", "minmax"),
    "data.compression": ("none", "gzip"),
    "data.length_policy": ("reject", "crop", "resample"),
    "condition.filter": ("cheby2", "butter", "none"),
    "condition.polarity": ("keep", "invert", "auto"),
}
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
}


def check_labels(cfg: PrepConfig, source: str) -> None:
    """data.labels and data.categories: known labels, valid distinct category column names."""
    for label in cfg.data.labels:
        if label not in LABELS:
            raise UserError(f"{source}: 'data.labels' has unknown label {label!r}; known: {', '.join(LABELS)}")
    _check_categories(cfg.data.categories, source)


def check(cfg: PrepConfig, source: str) -> None:
    """The data sections' checks across keys (after every key's own range)."""
    for name in list(cfg.data.label_map.values()) + list(cfg.data.label_scale):
        if name not in LABELS:
            raise UserError(f"{source}: data.label_map/label_scale name unknown label {name!r}; "
                            f"known: {', '.join(LABELS)}")
    if cfg.data.val_fraction + cfg.data.test_fraction >= 1:
        raise UserError(f"{source}: data.val_fraction + data.test_fraction is "
                        f"{cfg.data.val_fraction + cfg.data.test_fraction:g}; it must stay below 1")
    if not cfg.condition.low_hz < cfg.condition.high_hz:
        raise UserError(f"{source}: condition.low_hz must be below condition.high_hz")
    if not cfg.quality.hr_min < cfg.quality.hr_max:
        raise UserError(f"{source}: quality.hr_min must be below quality.hr_max")
    if not cfg.simulate.age_min < cfg.simulate.age_max:
        raise UserError(f"{source}: simulate.age_min must be below simulate.age_max")


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


