"""manifest.json: what a prepared dataset holds (the typed `Manifest`), written last and atomically, checked
whole at load; plus verification of the shards it lists."""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from data_prep.categories import MAX_LENGTH, MAX_VALUES
from data_prep.common import UserError, write_text_atomic
from data_prep.conditioning import band_limit_problem
from data_prep.records import sha256_of
from data_prep.settings import CATEGORY_NAME

SCHEMA_VERSION = 1
NORMALIZATIONS = ("maxabs", "zscore", "minmax")
MANIFEST = "manifest.json"


def write_json_atomic(path: str | Path, obj) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False))


@dataclass
class LabelStats:
    """A label on the training split: the model's condition scaling and generation's range."""
    mean: float
    std: float
    min: float
    max: float


@dataclass
class Shard:
    file: str        # a plain file name inside the data directory
    count: int
    bytes: int
    sha256: str
    subjects: int = 0   # distinct subjects in the shard (0: not recorded by the prep that wrote it)


@dataclass
class Split:
    count: int
    subjects: int
    shards: list[Shard]


@dataclass
class Manifest:
    """What a prepared dataset holds; `load_manifest` builds it only from a manifest that passes every check."""
    schema_version: int
    dataset_id: str
    created: str
    signal_length: int
    fs: float
    normalization: str
    compression: str
    labels: dict[str, LabelStats]
    label_table: str
    splits: dict[str, Split]
    quarantine: dict
    source: dict
    seed: int
    categories: dict[str, dict[str, int]] = field(default_factory=dict)   # column -> {value: training rows},
    #                                                                       values in code order (data_prep.categories)

    @classmethod
    def from_dict(cls, m: dict) -> Manifest:
        return cls(**{**m, "labels": {k: LabelStats(**{f: v[f] for f in ("mean", "std", "min", "max")})
                                      for k, v in m["labels"].items()},
                      "splits": {k: Split(v["count"], v.get("subjects", 0),
                                          [Shard(**{f: s[f] for f in ("file", "count", "bytes", "sha256")},
                                                 subjects=s.get("subjects", 0))
                                           for s in v["shards"]]) for k, v in m["splits"].items()}})

    def to_dict(self) -> dict:
        return asdict(self)

    def save(self, data_dir: str | Path) -> None:
        write_json_atomic(Path(data_dir) / MANIFEST, self.to_dict())

    def shard_paths(self, data_dir: str | Path, split: str) -> list[Path]:
        return [Path(data_dir) / s.file for s in self.splits[split].shards]

    @property
    def tf_compression(self) -> str:
        return "GZIP" if self.compression == "gzip" else ""

    @property
    def band_limit(self) -> dict | None:
        """The band-pass prep applied to the recordings, upper side (None: not filtered)."""
        return (self.source.get("conditioning") or {}).get("band_limit")


def load_manifest(data_dir: str | Path) -> Manifest:
    """Read and sanity-check `<data_dir>/manifest.json`; a missing or foreign one is a user error."""
    path = Path(data_dir) / MANIFEST
    if not path.is_file():
        raise UserError(f"{path} not found; run 'ppg-cvae prep --out {data_dir}' first (or pass the right --data)")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise UserError(f"{path} is not valid JSON ({exc.msg}); re-run prep with --overwrite") from None
    version = manifest.get("schema_version") if isinstance(manifest, dict) else None
    if version != SCHEMA_VERSION:
        raise UserError(f"{path} has schema version {version}, this ppg-cvae reads {SCHEMA_VERSION}; "
                        "re-run prep into a new directory")
    problem = _problem(manifest)
    if problem:
        raise UserError(f"{path}: {problem}; this is not a manifest prep wrote: re-run prep into a new directory")
    unknown = sorted(set(manifest) - {f.name for f in fields(Manifest)})
    if unknown:
        raise UserError(f"{path}: unknown key '{unknown[0]}'; this is not a manifest prep wrote: re-run prep")
    try:
        return Manifest.from_dict(manifest)
    except (TypeError, KeyError) as exc:
        raise UserError(f"{path}: {exc}; this is not a manifest prep wrote: re-run prep into a new directory") from None


def plain_name(name) -> bool:
    """A file name inside the data directory: no directory part, no '..', not absolute, not hidden."""
    return isinstance(name, str) and name == Path(name).name and name not in ("", ".", "..") \
        and not name.startswith(".") and "\\" not in name and "\0" not in name


def _number(value, lo: float, hi: float = math.inf) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) \
        and lo <= value <= hi


def _problem(m: dict) -> str | None:
    """The first thing wrong with a manifest's keys, types, ranges or file names (None: it is sound)."""
    for key, ok in (("dataset_id", lambda v: isinstance(v, str)), ("signal_length", lambda v: _number(v, 16, 1 << 20)),
                    ("fs", lambda v: _number(v, 1e-3, 100_000)), ("normalization", lambda v: v in NORMALIZATIONS),
                    ("compression", lambda v: v in ("none", "gzip")), ("labels", lambda v: isinstance(v, dict)),
                    ("label_table", plain_name), ("splits", lambda v: isinstance(v, dict)),
                    ("source", lambda v: isinstance(v, dict))):
        if key not in m:
            return f"missing key '{key}'"
        if not ok(m[key]):
            return f"'{key}' has an invalid value {str(m[key])[:80]!r}"
    for name, stats in m["labels"].items():
        if not isinstance(stats, dict) or not all(_number(stats.get(k), -1e9, 1e9) for k in ("mean", "min", "max")) \
                or not _number(stats.get("std"), 1e-12, 1e9):
            return f"label '{name}' has no finite mean/std/min/max (std > 0)"
    for split in ("train", "val", "test"):
        info = m["splits"].get(split)
        if not isinstance(info, dict) or not _number(info.get("count"), 0) or not isinstance(info.get("shards"), list):
            return f"split '{split}' is missing or lacks count/shards"
        for shard in info["shards"]:
            name = shard.get("file") if isinstance(shard, dict) else shard
            if not plain_name(name):
                return f"split '{split}' lists a shard {str(name)[:80]!r}, not a plain file name in the data directory"
            sizes_ok = all(_number(shard.get(k), 0) for k in ("count", "bytes")) \
                and _number(shard.get("subjects", 0), 0, shard.get("count", 0))
            if not sizes_ok or not isinstance(shard.get("sha256"), str):
                return f"shard {shard['file']} lacks count/bytes/sha256 (or counts more subjects than records)"
        if sum(s["count"] for s in info["shards"]) != info["count"]:
            return f"split '{split}' count {info['count']} is not the sum of its shards' counts"
    problem = _categories_problem(m.get("categories", {}), m["labels"])
    if problem:
        return problem
    conditioning = m["source"].get("conditioning")
    if conditioning is not None and not isinstance(conditioning, dict):
        return "source.conditioning is not a mapping"
    problem = band_limit_problem((conditioning or {}).get("band_limit"))
    return f"source.conditioning: {problem}" if problem else None


def _categories_problem(categories, labels: dict) -> str | None:
    """What is wrong with the categorical columns' entry (None: sound)."""
    if not isinstance(categories, dict):
        return "'categories' is not a mapping"
    for name, values in categories.items():
        if not (isinstance(name, str) and CATEGORY_NAME.fullmatch(name)) or name in labels:
            return f"categorical column {str(name)[:40]!r} is not a column name or is also a numeric label"
        if not isinstance(values, dict) or not 1 <= len(values) <= MAX_VALUES or not all(
                isinstance(v, str) and 0 < len(v) <= MAX_LENGTH and _number(n, 0) for v, n in values.items()):
            return f"categorical column {name!r} needs 1 to {MAX_VALUES} values with their training counts"
    return None


def check_shards(data_dir: str | Path, manifest: Manifest, full: bool = False) -> None:
    """Every shard the manifest lists exists with its recorded size (and, when `full`, its sha256)."""
    for info in manifest.splits.values():
        for shard in info.shards:
            path = Path(data_dir) / shard.file
            if not path.is_file():
                raise UserError(f"{path}: shard listed in the manifest is missing; re-run prep to rebuild it")
            if path.stat().st_size != shard.bytes:
                raise UserError(f"{path}: {path.stat().st_size} bytes, the manifest says {shard.bytes} (truncated "
                                "or replaced); delete it and re-run prep")
            if full and sha256_of(path) != shard.sha256:
                raise UserError(f"{path}: sha256 mismatch (corrupted or replaced); delete it and re-run prep")


def shard_paths(data_dir: str | Path, manifest: Manifest, split: str) -> list[Path]:
    return manifest.shard_paths(data_dir, split)


def verify(data_dir: str | Path) -> dict:
    """Re-check every shard's sha256 and record count against the manifest; raises on the first mismatch."""
    import tensorflow as tf  # only here: prep writes and checks shards without TensorFlow

    manifest = load_manifest(data_dir)
    check_shards(data_dir, manifest, full=True)
    checked = 0
    for info in manifest.splits.values():
        for shard in info.shards:
            path = Path(data_dir) / shard.file
            count = sum(1 for _ in tf.data.TFRecordDataset(str(path), compression_type=manifest.tf_compression))
            if count != shard.count:
                raise UserError(f"{path}: holds {count} records, manifest says {shard.count}")
            checked += count
    return {"shards": sum(len(i.shards) for i in manifest.splits.values()), "records": checked}
