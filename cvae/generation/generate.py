"""`ppg-cvae generate`: N synthetic signals per requested age, streamed in batches to .npz (+ CSV/pickle, PNG)."""
from __future__ import annotations

import json
import logging
import os
import pickle
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from cvae.beats import beat_templates, decade_of
from cvae.generation import label_summary
from cvae.generation.sampler import Generator, read_meta
from cvae.plots import waveform_figure
from data_prep.categories import to_codes
from data_prep.common import UserError, temp_beside
from data_prep.settings import CATEGORY_NAME

log = logging.getLogger(__name__)
SUMMARY_NOTE = (f"drawn from the model's label summary (cells of at least {label_summary.MIN_CELL} training subjects "
                "by age band and discrete labels, fewer labels where cells were small; continuous labels from each "
                "cell's Gaussian)")
LEGACY_TABLE = "labels-train.csv.gz"   # the training labels a run exported before label summaries carries
NEAR_AGE = 2.5          # years: such a run draws other labels from training subjects this close to the age
MIN_NEIGHBOURS = 20     # widen the window until at least this many training rows qualify
POOL_NOTE = (f"copied from training subjects within {NEAR_AGE} years of the requested age (window doubled until "
             f"{MIN_NEIGHBOURS} rows; a run exported before label summaries)")


def parse_ages(text: str) -> np.ndarray:
    """'18:98' (inclusive), '18:98:5' (step), or '20,35,50' -> array of ages."""
    try:
        if ":" in text:
            parts = [float(p) for p in text.split(":")]
            if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] <= 0) or parts[1] < parts[0]:
                raise ValueError
            step = parts[2] if len(parts) == 3 else 1.0
            return np.arange(parts[0], parts[1] + step / 2, step)
        return np.array([float(p) for p in text.split(",")])
    except ValueError:
        raise UserError(f"--ages {text!r}: use START:STOP (inclusive), START:STOP:STEP with STEP > 0, "
                        "or a comma list like 20,40,60") from None


def parse_labels(items: list[str], known: list[str]) -> dict[str, float | str]:
    """--label k=v pairs: numbers for the `known` numeric labels (sex accepts M/F as well as 0/1), text for any other
    column name (a categorical condition such as source=DEVICE, judged against the model by check_request)."""
    fixed = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key == "age" or not (key in known or CATEGORY_NAME.fullmatch(key)):
            raise UserError(f"--label {item!r}: use k=v with k one of {', '.join(k for k in known if k != 'age')} "
                            "or a categorical condition of the model (e.g. source=NAME)")
        if key not in known:
            fixed[key] = value.strip()
            continue
        if key == "sex" and value.upper() in ("M", "F"):
            fixed[key] = 0.0 if value.upper() == "M" else 1.0
            continue
        try:
            fixed[key] = float(value)
        except ValueError:
            raise UserError(f"--label {item!r}: value must be a number") from None
    return fixed


class _NpyStream:
    """Writes one float32 [n, L] array into an open zip member batch by batch (an .npz entry)."""

    def __init__(self, zf: zipfile.ZipFile, name: str, shape: tuple[int, int]):
        self.fh = zf.open(name + ".npy", "w", force_zip64=True)
        np.lib.format.write_array_header_2_0(self.fh, {"descr": "<f4", "fortran_order": False, "shape": shape})

    def write(self, batch: np.ndarray) -> None:
        self.fh.write(np.ascontiguousarray(batch, dtype="<f4").tobytes())

    def close(self) -> None:
        self.fh.close()


class DecadeBeats:
    """Running mean +/- sd of the peak-aligned beat per age decade (streamed batch by batch), over the first
    `limit` signals of each decade: enough for the figure, and beat detection costs about 1 ms a signal."""

    def __init__(self, decades: list[int], fs: float, what: str = "synthetic signals", limit: int = 1000):
        self.decades, self.fs, self.what, self.limit = decades, fs, what, limit
        self.seen = {d: 0 for d in decades}
        self.n = {d: 0 for d in decades}
        self.sum = {d: 0.0 for d in decades}
        self.sq = {d: 0.0 for d in decades}

    def add(self, signals: np.ndarray, decade: np.ndarray) -> None:
        for d in self.decades:
            rows = np.flatnonzero(decade == d)[:self.limit - self.seen[d]]
            if not len(rows):
                continue
            self.seen[d] += len(rows)
            beats = beat_templates(signals[rows], self.fs)
            sel = beats[~np.isnan(beats[:, 0])].astype(np.float64)
            self.n[d] += len(sel)
            self.sum[d] = self.sum[d] + sel.sum(axis=0)
            self.sq[d] = self.sq[d] + np.square(sel).sum(axis=0)

    def png(self) -> bytes:
        shown = [d for d in self.decades if self.n[d]]
        if not shown:
            raise UserError("no beats could be detected in the generated signals; the model is not usable yet")
        mean = np.stack([self.sum[d] / self.n[d] for d in shown])
        sd = np.stack([np.sqrt(np.maximum(self.sq[d] / self.n[d] - (self.sum[d] / self.n[d]) ** 2, 0))
                       for d in shown])
        return waveform_figure(mean, [f"ages {d}-{d + 9}: mean +/- sd beat of {self.n[d]} {self.what}"
                                      for d in shown], self.fs, spread=sd)


def open_labels(gen, run_dir: Path, ages: np.ndarray, n: int, fixed: dict, rng) -> tuple[pd.DataFrame, str]:
    """Labels for n signals per age, and how the open ones were drawn: from the model's label summary
    (cvae.generation.label_summary), then overrides. A privately trained model has no summary: its signals carry the
    age and the --label values only, and every condition besides age must be given. A run exported before summaries
    draws from its copy of the training labels, as it did then (so it generates what it generated)."""
    meta = gen.meta
    if not (gen.model_dir / label_summary.FILE).exists() and (Path(run_dir) / LEGACY_TABLE).is_file():
        return _pool_rows(_legacy_pool(run_dir, meta), ages, n, fixed, rng), POOL_NOTE
    if meta.get("privacy"):
        open_conditions = [c for c in meta["conditions"] if c != "age" and c not in fixed]
        if open_conditions:
            raise UserError(f"--label {open_conditions[0]}=...: this model was trained privately and carries no "
                            f"summary of its training labels to draw {', '.join(open_conditions)} from; give each")
        return pd.DataFrame({"age": np.repeat(ages.astype(np.float64), n), **fixed}), "none"
    categories = {c: list(v) for c, v in (meta.get("category_counts") or {}).items()}
    summary = label_summary.load(gen.model_dir, list(meta["label_stats"]) + list(categories), categories)
    ranges = {k: (s["min"], s["max"]) for k, s in meta["label_stats"].items()}
    rows = label_summary.draw(summary, ages, n, ranges, rng)
    for key, value in fixed.items():
        rows[key] = value
    return rows, SUMMARY_NOTE


def _legacy_pool(run_dir: Path, meta: dict) -> pd.DataFrame:
    """A run exported before label summaries: its copy of the training labels (RUN/labels-train.csv.gz), the pool
    its open labels are drawn from as they were then; refused unless every label the model knows is there,
    numeric and finite (categorical ones: known values)."""
    path = Path(run_dir) / LEGACY_TABLE
    try:
        pool = pd.read_csv(path)
    except (OSError, ValueError, EOFError, pd.errors.ParserError) as exc:
        raise UserError(f"{path} is missing or unreadable ({exc}); pass a finished training run as --model") from None
    columns, categorical = list(meta["label_stats"]), meta.get("category_counts") or {}
    missing = [c for c in columns + list(categorical) if c not in pool.columns]
    if missing or pool.empty:
        raise UserError(f"{path}: {'no rows' if pool.empty else f'no column {missing}'}; the run's training labels "
                        "are damaged: copy them again from the data set (its labels-train.csv.gz)")
    values = pool[columns].apply(pd.to_numeric, errors="coerce")
    unknown = [c for c, known in categorical.items() if not pool[c].astype(str).isin(list(known)).all()]
    if not np.isfinite(values.to_numpy(np.float64)).all() or unknown:
        raise UserError(f"{path}: non-numeric or non-finite values in {columns}, or unknown values in {unknown}; the "
                        "run's training labels are damaged: copy them again from the data set (its "
                        "labels-train.csv.gz)")
    return values.join(pool[list(categorical)].astype(str))


def _pool_rows(pool: pd.DataFrame, ages: np.ndarray, n: int, fixed: dict, rng) -> pd.DataFrame:
    """Labels for n signals per age: the other labels of training subjects near that age, then overrides."""
    out = []
    for age in ages:
        window = NEAR_AGE
        near = pool[(pool["age"] - age).abs() <= window]
        while len(near) < MIN_NEIGHBOURS and window < 100:
            window *= 2
            near = pool[(pool["age"] - age).abs() <= window]
        rows = near.iloc[rng.integers(0, len(near), n)].reset_index(drop=True)
        rows["age"] = float(age)
        for key, value in fixed.items():
            rows[key] = value
        out.append(rows)
    return pd.concat(out, ignore_index=True)


def check_request(meta: dict, ages: np.ndarray, n_per_age: int, out: Path, fixed: dict,
                  allow_extrapolation: bool) -> None:
    """Refuse what the model cannot stand behind: ages or fixed labels outside the training range, a fixed label
    the model is not conditioned on, a wrong output name."""
    if out.suffix != ".npz":
        raise UserError(f"--out {out}: the output must end in .npz")
    if n_per_age < 1:
        raise UserError(f"--n-per-age {n_per_age}: must be at least 1")
    # the training range in whole years of age covered (ages 18.2-97.9 in the data allow requests 18-98)
    lo, hi = np.floor(meta["label_stats"]["age"]["min"]), np.ceil(meta["label_stats"]["age"]["max"])
    if not allow_extrapolation and (ages.min() < lo or ages.max() > hi):
        raise UserError(f"requested ages {ages.min():g}-{ages.max():g} leave the training range {lo:g}-{hi:g}; "
                        "narrow --ages or pass --allow-extrapolation")
    unconditioned = sorted(set(fixed) - set(meta["conditions"]))
    if unconditioned:
        raise UserError(f"--label {unconditioned[0]}: this model is conditioned on {', '.join(meta['conditions'])} "
                        f"only, so a fixed {unconditioned[0]} would not shape the signals; drop the --label or "
                        "train with it in model.conditions")
    for key, value in fixed.items():
        if key in (meta.get("condition_categories") or {}):
            counts = meta["category_counts"][key]
            if not isinstance(value, str) or not counts.get(value):
                raise UserError(f"--label {key}={value}: the model learned {key} from training signals of "
                                f"{', '.join(v for v, n in counts.items() if n)}; choose one of them")
            continue
        if isinstance(value, str):
            raise UserError(f"--label {key}={value}: {key} is a number")
        s = meta["label_stats"][key]
        if not allow_extrapolation and not s["min"] <= value <= s["max"]:
            raise UserError(f"--label {key}={value:g} is outside the training range {s['min']:.3g}-{s['max']:.3g}; "
                            "change it or pass --allow-extrapolation")


def check_size(n: int, length: int, n_labels: int, out: Path) -> str:
    """The request's size in one line; refused when its label table would take more than a quarter of the machine's
    memory (labels are held whole; signals stream) or its signals more than the free disk at `out`."""
    signal_bytes = n * length * 4
    label_bytes = 2 * n * (n_labels + 1) * 8          # the table and its float32 copy for the .npz
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    free = shutil.disk_usage(out.parent).free
    size = (f"{n:,} signals: {signal_bytes / 1e9:.2f} GB of signals to write, {label_bytes / 1e9:.2f} GB of labels "
            "in memory")
    if label_bytes > memory / 4:
        raise UserError(f"{size}, more than the {memory / 4e9:.1f} GB (a quarter of this machine's memory) generate "
                        "allows itself; generate fewer ages per call or lower --n-per-age")
    if signal_bytes > free:
        raise UserError(f"{size}, more than the {free / 1e9:.1f} GB free in {out.parent}; free space or write "
                        "elsewhere")
    return size


def label_codes(labels: pd.DataFrame, categories: dict[str, list[str]]) -> pd.DataFrame:
    """The labels with each categorical column as its code (the index of its value in `categories`)."""
    coded = labels.copy()
    for name, values in categories.items():
        coded[name] = to_codes(labels[name], values)
    return coded


def write_outputs(out: Path, formats: tuple[str, ...], labels: pd.DataFrame, request: dict, model_id: str,
                  batches, shape: tuple[int, int], figure: DecadeBeats) -> list[Path]:
    """Stream the signal batches into FILE.npz (+ CSV/pickle) and write FILE.png; every file appears only once
    all of them are complete. The .npz holds categorical labels as codes (values in request["categories"]), the
    CSV and pickle as text."""
    written = [out] + [out.with_suffix("." + f) for f in formats] + [out.with_suffix(".png")]
    temps = {path: temp_beside(path) for path in written}
    keep = [] if "pickle" in formats else None
    try:
        with zipfile.ZipFile(temps[out], "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
            stream = _NpyStream(zf, "signals", shape)
            for batch in batches:
                stream.write(batch)
                if keep is not None:
                    keep.append(batch)
            stream.close()
            for name, arr in (("labels", label_codes(labels, request["categories"]).to_numpy(np.float32)),
                              ("label_names", np.array(list(labels.columns), dtype=str)),
                              ("request", np.array(json.dumps(request))), ("model_id", np.array(model_id))):
                with zf.open(name + ".npy", "w") as fh:
                    np.lib.format.write_array(fh, arr, allow_pickle=False)
        if "csv" in formats:
            labels.to_csv(temps[out.with_suffix(".csv")], index=False)
        if "pickle" in formats:
            with open(temps[out.with_suffix(".pickle")], "wb") as fh:
                pickle.dump({"labels": labels, "samples": list(np.concatenate(keep))}, fh, protocol=4)
        temps[out.with_suffix(".png")].write_bytes(figure.png())
        for path in written:
            os.replace(temps[path], path)
    except BaseException:
        for path in written:
            temps[path].unlink(missing_ok=True)
        raise
    return written


def generate(run_dir: str | Path, ages: np.ndarray, n_per_age: int, out: str | Path, seed: int = 0,
             fixed: dict | None = None, allow_extrapolation: bool = False, formats: tuple[str, ...] = (),
             batch_size: int = 1024, add_noise: bool = True, fitted_latent: bool = True) -> dict:
    """Generate and write FILE.npz (signals, labels, label_names, request, model_id), FILE.png and extras."""
    out, fixed = Path(out), fixed or {}
    check_request(read_meta(run_dir), ages, n_per_age, out, fixed, allow_extrapolation)
    gen = Generator(run_dir)
    meta = gen.meta
    out.parent.mkdir(parents=True, exist_ok=True)
    log.info("generate: %s", check_size(len(ages) * n_per_age, meta["signal_length"], len(meta["label_stats"]), out))
    rng = np.random.default_rng(seed)
    labels, how = open_labels(gen, run_dir, ages, n_per_age, fixed, rng)
    n, length = len(labels), meta["signal_length"]
    drawn = [c for c in labels.columns if c not in meta["conditions"]]
    drawn_conditions = [c for c in meta["conditions"] if c != "age" and c not in fixed]
    request = {"ages": ages.tolist(), "n_per_age": n_per_age, "seed": seed, "fixed": fixed, "add_noise": add_noise,
               "band_limit": meta.get("band_limit"), "equalizer": meta.get("equalizer"),
               "conditions": meta["conditions"],
               "unconditioned_labels": {"columns": drawn, "how": f"not conditions of the model: {how}; the signals "
                                        "do not depend on them"} if drawn else None,
               "drawn_conditions": {"columns": drawn_conditions, "how": f"conditions of the model not fixed with "
                                    f"--label: {how}; the signals depend on them"} if drawn_conditions else None,
               "categories": {c: list(v) for c, v in (meta.get("category_counts") or {}).items()},
               "latent": "fitted" if fitted_latent and gen.prior is not None else "standard",
               "allow_extrapolation": allow_extrapolation, "model": str(run_dir), "privacy": meta.get("privacy")}
    cond = gen.conditions.raw(labels)
    decade = decade_of(labels["age"].to_numpy())
    figure = DecadeBeats(sorted(set(decade)), meta["fs"])

    def batches():
        for start in tqdm(range(0, n, batch_size), desc="generate", unit="batch", mininterval=2.0):
            stop = min(start + batch_size, n)
            batch = gen.draw(cond[start:stop], rng, fitted_latent, add_noise)
            figure.add(batch, decade[start:stop])
            yield batch

    written = write_outputs(out, tuple(formats), labels, request, meta["model_id"], batches(), (n, length), figure)
    log.info("generated %d signals (%d ages x %d) with model %s in %s", n, len(ages), n_per_age,
             meta["model_id"], ", ".join(str(p) for p in written))
    return {"signals": n, "files": [str(p) for p in written]}
