"""manifest.json: what a prepared dataset holds, written last and atomically; plus verification."""
from __future__ import annotations

import json
from pathlib import Path

import tensorflow as tf

from data_prep.shards import sha256_of
from launch.errors import UserError
from launch.files import write_text_atomic

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"


def write_json_atomic(path: str | Path, obj) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False))


def load_manifest(data_dir: str | Path) -> dict:
    """Read and sanity-check `<data_dir>/manifest.json`; a missing or foreign one is a user error."""
    path = Path(data_dir) / MANIFEST
    if not path.is_file():
        raise UserError(f"{path} not found; run 'ppg-cvae prep --out {data_dir}' first (or pass the right --data)")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise UserError(f"{path} is not valid JSON ({exc.msg}); re-run prep with --overwrite") from None
    version = manifest.get("schema_version")
    if version != SCHEMA_VERSION:
        raise UserError(f"{path} has schema version {version}, this ppg-cvae reads {SCHEMA_VERSION}; "
                        "re-run prep into a new directory")
    return manifest


def shard_paths(data_dir: str | Path, manifest: dict, split: str) -> list[Path]:
    return [Path(data_dir) / s["file"] for s in manifest["splits"][split]["shards"]]


def verify(data_dir: str | Path) -> dict:
    """Re-check every shard's sha256 and record count against the manifest; raises on the first mismatch."""
    manifest = load_manifest(data_dir)
    compression = "GZIP" if manifest["compression"] == "gzip" else ""
    checked = 0
    for split, info in manifest["splits"].items():
        for shard in info["shards"]:
            path = Path(data_dir) / shard["file"]
            if not path.is_file():
                raise UserError(f"{path}: shard listed in the manifest is missing; re-run prep to rebuild it")
            if sha256_of(path) != shard["sha256"]:
                raise UserError(f"{path}: sha256 mismatch (corrupted or replaced); delete it and re-run prep")
            count = sum(1 for _ in tf.data.TFRecordDataset(str(path), compression_type=compression))
            if count != shard["count"]:
                raise UserError(f"{path}: holds {count} records, manifest says {shard['count']}")
            checked += count
    return {"shards": sum(len(i["shards"]) for i in manifest["splits"].values()), "records": checked}
