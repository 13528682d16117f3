"""`ppg-cvae prep`: source -> validated, normalized, subject-disjoint TFRecord shards + manifest.json."""
from __future__ import annotations

import hashlib
import json
import logging
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from data_prep.categories import decode
from data_prep.common import UserError, write_bytes_atomic
from data_prep.manifest import (MANIFEST, SCHEMA_VERSION, LabelStats, Manifest, Shard, Split, load_manifest,
                                write_json_atomic)
from data_prep.normalize import normalize
from data_prep.quality import beat_reasons
from data_prep.quality_figure import FIGURE, quality_figure
from data_prep.records import ShardWriter, sha256_of, shard_name
from data_prep.settings import PrepConfig
from data_prep.sources import SIGNALS
from data_prep.split import SPLITS, assign_splits, shard_of_rows
from data_prep.validate import check_rows, label_problems

log = logging.getLogger(__name__)
STATE = ".prep-state.json"
CHUNK_ROWS = 2048   # rows simulated/validated/serialized at a time: bounds a worker's memory


@dataclass
class ShardTask:
    split: str
    path: Path
    rows: pd.DataFrame


def dataset_id(cfg: PrepConfig, source) -> str:
    """Fingerprint of everything that determines the dataset's content."""
    data = {k: v for k, v in asdict(cfg.data).items() if k != "workers"}
    blob = json.dumps({"source": source.describe(), "data": data}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _done_path(path: Path) -> Path:
    return path.with_name(path.name + ".done.json")


def write_shard(task: ShardTask, source, cfg: PrepConfig) -> dict:
    """Write one shard chunk by chunk; returns its manifest entry plus the rows it quarantined."""
    done = _done_path(task.path)
    if done.is_file() and task.path.is_file():
        entry = json.loads(done.read_text())
        if sha256_of(task.path) == entry["sha256"]:
            return entry | {"resumed": True}
    labels = source.labels
    writer = ShardWriter(task.path, cfg.data.compression, cfg.data.signal_length, labels)
    quarantine = []
    try:
        for start in range(0, len(task.rows), CHUNK_ROWS):
            rows = task.rows.iloc[start:start + CHUNK_ROWS]
            raw = source.signals(rows)
            reasons = check_rows(raw, rows, labels, cfg.data.signal_length)
            if "_reason" in rows:   # problems a reader already found (wrong length, duplicate, clipped, flat)
                reasons = np.where(rows["_reason"].to_numpy() != "", rows["_reason"].to_numpy(), reasons)
            if "_check_beats" in rows:   # conditioned sources: beats, rate and template match, before normalizing
                judge = (reasons == "") & rows["_check_beats"].to_numpy(bool)
                if judge.any():
                    reasons[judge] = beat_reasons(raw[judge], cfg.data.fs, cfg.quality)
            ok = reasons == ""
            detail = np.full(len(rows), "", dtype=object)
            bad = reasons == "bad_label"
            detail[bad] = label_problems(rows[bad], labels)
            quarantine += [{"row": int(r), "subject_id": s, "split": task.split, "reason": why, "source": src,
                            "detail": d}
                           for r, s, why, src, d in zip(rows["row"][~ok], rows["subject_id"][~ok], reasons[~ok],
                                                        rows["_source"][~ok], detail[~ok])]
            writer.write(normalize(raw[ok], cfg.data.normalization), rows[ok])
    except BaseException:
        writer.abort()
        raise
    entry = writer.close() | {"quarantine": quarantine}
    write_json_atomic(done, entry)
    return entry


_WORKER: dict = {}   # in each worker process: the source's reader and the config, sent once


def _init_worker(reader, cfg: PrepConfig) -> None:
    _WORKER.update(reader=reader, cfg=cfg)


def _write_in_worker(task: ShardTask) -> dict:
    return write_shard(task, _WORKER["reader"], _WORKER["cfg"])


def _claim_output(out: Path, ident: str, overwrite: bool) -> None:
    """Refuse to mix datasets in one directory; --overwrite removes only files prep itself writes."""
    state = out / STATE
    if state.is_file():
        old = json.loads(state.read_text()).get("dataset_id")
        if old != ident:
            if not overwrite:
                raise UserError(f"{out} already holds a different dataset (id {old}, this one {ident}); "
                                "pass --overwrite to replace it or choose another --out")
            for pattern in ("*.tfrecord*", MANIFEST, "quarantine.csv", "labels-train.csv.gz"):
                for path in out.glob(pattern):
                    path.unlink()
    elif (out / MANIFEST).exists():
        raise UserError(f"{out} holds a manifest from another prep run; pass --overwrite or choose another --out")
    if not state.is_file() or json.loads(state.read_text()).get("dataset_id") != ident:
        write_json_atomic(state, {"dataset_id": ident})


def label_stats(rows: pd.DataFrame, columns: list[str]) -> dict[str, LabelStats]:
    """Mean/std/min/max of each label on the given (training) rows: the model's condition scaling."""
    return {c: LabelStats(float(rows[c].mean()), float(rows[c].std(ddof=0)) or 1.0, float(rows[c].min()),
                          float(rows[c].max())) for c in columns}


def per_source(rows: pd.DataFrame, quarantine: pd.DataFrame) -> dict:
    """Rows, kept rows and quarantine reasons of each source."""
    out = {}
    for name, n in rows["_source"].value_counts().sort_index().items():
        q = quarantine[quarantine["source"] == name]
        out[str(name)] = {"rows": int(n), "kept": int(n - len(q)), "quarantined": q["reason"].value_counts().to_dict()}
    return out


def assign(rows: pd.DataFrame, cfg: PrepConfig) -> pd.DataFrame:
    """Each row's split: the source's own (checked subject-disjoint) or a seeded split by subject."""
    if "given_split" in rows:
        rows["split"] = rows["given_split"]
        spread = rows.groupby("subject_id")["split"].nunique()
        if (spread > 1).any():
            raise UserError(f"subject {spread[spread > 1].index[0]!r} appears in more than one of the given "
                            "train/validation/test files; the splits must be subject-disjoint")
    else:
        rows["split"] = assign_splits(rows["subject_id"], cfg.data.val_fraction, cfg.data.test_fraction,
                                      cfg.data.seed)
    return rows


def shard_tasks(rows: pd.DataFrame, cfg: PrepConfig, out: Path) -> list[ShardTask]:
    """The shards of every split, subjects dealt over them."""
    tasks = []
    for split in SPLITS:
        sub = rows[rows["split"] == split]
        count = getattr(cfg.data, f"{split}_shards")
        shard = shard_of_rows(sub["subject_id"], count, cfg.data.seed)
        tasks += [ShardTask(split, out / shard_name(split, k, count, cfg.data.compression), sub[shard == k])
                  for k in range(count)]
    return tasks


def run_tasks(tasks: list[ShardTask], source, cfg: PrepConfig, total: int) -> list[tuple[ShardTask, dict]]:
    """Write every shard (in data.workers processes, each sent the source's reader once), with a progress bar."""
    results = []
    with tqdm(total=total, unit="sig", desc="prep", mininterval=2.0) as bar:
        if cfg.data.workers > 1:
            with ProcessPoolExecutor(cfg.data.workers, mp_context=get_context("spawn"), initializer=_init_worker,
                                     initargs=(source.reader(), cfg)) as pool:
                for task, entry in zip(tasks, pool.map(_write_in_worker, tasks)):
                    results.append((task, entry))
                    bar.update(len(task.rows))
        else:
            for task in tasks:
                results.append((task, write_shard(task, source, cfg)))
                bar.update(len(task.rows))
    return results


def quarantined(results: list, rows: pd.DataFrame, cfg: PrepConfig, out: Path) -> pd.DataFrame:
    """The rows every shard refused, written to quarantine.csv; too many of them stop prep."""
    quarantine = pd.DataFrame([q for _, e in results for q in e["quarantine"]],
                              columns=["row", "subject_id", "split", "reason", "source", "detail"])
    bad_fraction = len(quarantine) / max(len(rows), 1)
    if bad_fraction > cfg.data.max_bad_fraction:
        top = quarantine["reason"].value_counts().head(3).to_dict()
        raise UserError(f"{len(quarantine)} of {len(rows)} rows ({bad_fraction:.1%}) failed validation, above "
                        f"data.max_bad_fraction={cfg.data.max_bad_fraction}; top reasons {top}; "
                        f"see {out}/quarantine.csv, fix the source or raise the limit")
    quarantine.to_csv(out / "quarantine.csv", index=False)
    return quarantine


def build_manifest(cfg: PrepConfig, ident: str, source, rows: pd.DataFrame, results: list,
                   quarantine: pd.DataFrame) -> Manifest:
    good = rows[~rows["row"].isin(quarantine["row"])]
    train = good[good["split"] == "train"]
    splits = {split: Split(int(sum(e["count"] for t, e in results if t.split == split)),
                           int(good.loc[good["split"] == split, "subject_id"].nunique()),
                           [Shard(**{k: e[k] for k in ("file", "count", "bytes", "sha256")},
                                  subjects=int(good.loc[good["row"].isin(t.rows["row"]), "subject_id"].nunique()))
                            for t, e in results if t.split == split]) for split in SPLITS}
    return Manifest(
        schema_version=SCHEMA_VERSION, dataset_id=ident, created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        signal_length=cfg.data.signal_length, fs=cfg.data.fs, normalization=cfg.data.normalization,
        compression=cfg.data.compression, labels=label_stats(train, [c for c in source.labels
                                                                     if c not in source.categories]),
        label_table="labels-train.csv.gz", splits=splits,
        quarantine={"total": len(quarantine), "by_reason": quarantine["reason"].value_counts().to_dict(),
                    "by_source": per_source(rows, quarantine), "file": "quarantine.csv", "figure": FIGURE},
        source=source.describe(), seed=cfg.data.seed,
        categories={name: {v: int((train[name] == k).sum()) for k, v in enumerate(values)}
                    for name, values in source.categories.items()})


def prepare(cfg: PrepConfig, out: str | Path, source, overwrite: bool = False) -> Manifest:
    """Run the whole data stage; returns the manifest. Rerunning resumes (finished shards are kept)."""
    t0 = time.time()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ident = dataset_id(cfg, source)
    _claim_output(out, ident, overwrite)
    for stale in out.glob(".*.tfrecord*.tmp"):   # shards of an interrupted run (the caller holds the lock)
        stale.unlink()
    if (out / MANIFEST).is_file() and json.loads((out / MANIFEST).read_text()).get("dataset_id") == ident:
        log.info("%s is already complete (dataset %s); nothing to do", out, ident)
        return load_manifest(out)
    rows = assign(source.rows(), cfg)
    results = run_tasks(shard_tasks(rows, cfg, out), source, cfg, len(rows))
    quarantine = quarantined(results, rows, cfg, out)
    manifest = build_manifest(cfg, ident, source, rows, results, quarantine)
    train = rows[(rows["split"] == "train") & ~rows["row"].isin(quarantine["row"])]
    table = train[["subject_id"] + source.labels].copy()
    for name, values in source.categories.items():
        table[name] = decode(table[name], values)
    table.to_csv(out / manifest.label_table, index=False)
    write_bytes_atomic(out / FIGURE, quality_figure(source, rows, quarantine, cfg.data.fs))
    manifest.save(out)
    for task, _ in results:
        _done_path(task.path).unlink(missing_ok=True)
    (out / SIGNALS).unlink(missing_ok=True)
    _summary(manifest, out, results, len(rows), time.time() - t0)
    return manifest


def _summary(m: Manifest, out: Path, results: list, n_rows: int, seconds: float) -> None:
    """prep's closing lines: one per source, then the whole run."""
    for name, counts in m.quarantine["by_source"].items():
        log.info("prep: source %s: kept %d of %d windows; quarantined %s", name, counts["kept"], counts["rows"],
                 counts["quarantined"] or "none")
    for name, counts in m.categories.items():
        log.info("prep: category %s: %s (training signals)", name, ", ".join(f"{v} {n}" for v, n in counts.items()))
    nbytes = sum(s.bytes for info in m.splits.values() for s in info.shards)
    log.info("prep: %s -> %s | train %d, val %d, test %d | quarantined %d %s | %.1f MB in %d shards "
             "(%d resumed) | %.1f s, %.0f signals/s", m.source["kind"], out, m.splits["train"].count,
             m.splits["val"].count, m.splits["test"].count, m.quarantine["total"], m.quarantine["by_reason"],
             nbytes / 1e6, len(results), sum(1 for _, e in results if e.get("resumed")), seconds,
             n_rows / max(seconds, 1e-9))
    empty = [split for split in ("train", "val", "test") if m.splits[split].count == 0]
    if empty:
        subjects = sum(info.subjects for info in m.splits.values())
        log.warning("prep: the %s split%s of %s %s empty (%d subject%s with kept windows): train needs train and val, "
                    "evaluate needs test; add subjects or change data.val_fraction/data.test_fraction",
                    " and ".join(empty), "s" if len(empty) > 1 else "", out, "are" if len(empty) > 1 else "is",
                    subjects, "" if subjects == 1 else "s")
