"""`ppg-cvae evaluate`: load real and synthetic signals, compute the metrics, write report.md, metrics.json, figures."""
from __future__ import annotations

import json
import logging
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cvae.evaluate import judges, membership, panel
from cvae.evaluate.features import spectral_features, waveform_features
from cvae.evaluate.figures import age_figure, beats_by_age_figure
from cvae.evaluate.metrics import (DIVERSITY_CAP, age_regressor, conditioning_and_utility, disjoint_sources,
                                   diversity_and_copies, feature_distances, feature_trends, source_of, spearman,
                                   within_source)
from cvae.evaluate.reference import MAX_HALF_WIDTH, matched_reference
from cvae.evaluate.verdicts import headline, verdicts
from cvae.generation.sampler import Generator, read_meta
from data_prep.categories import decode
from data_prep.common import UserError, write_bytes_atomic, write_text_atomic
from data_prep.manifest import Manifest, load_manifest, shard_paths, write_json_atomic
from data_prep.readers.arrays import npy_blocks, npy_header

log = logging.getLogger(__name__)


FORTRAN_MAX_BYTES = 64 << 20   # a column-major .npz member is read whole: label tables only
SAMPLE = {"train": 40_000, "val": 20_000, "test": 20_000, "synthetic": 40_000}   # most signals evaluated per set, drawn at random


def sample_rows(total: int, cap: int, rng: np.random.Generator) -> np.ndarray | None:
    """Sorted indices of `cap` rows drawn without replacement, or None (all rows) when there are no more."""
    return None if total <= cap else np.sort(rng.choice(total, cap, replace=False))


def _npy_rows(zf: zipfile.ZipFile, name: str, keep_fn) -> np.ndarray:
    """An array member of an .npz, read in one streaming pass; `keep_fn(n_rows)` gives the rows to keep (or None)."""
    with zf.open(name + ".npy") as fh:
        shape, fortran, dtype = npy_header(fh)
        if dtype.hasobject or len(shape) > 2:
            raise ValueError(f"{name} is not a plain numeric array")
        keep = keep_fn(shape[0]) if shape else None
        if fortran:   # column-major (small label tables): whole, then the rows
            size = dtype.itemsize * int(np.prod(shape, dtype=np.int64))
            if size > FORTRAN_MAX_BYTES:
                raise ValueError(f"{name} is a column-major array of {size:,} bytes; only label tables up to "
                                 f"{FORTRAN_MAX_BYTES >> 20} MiB are read that way")
            whole = np.frombuffer(fh.read(size), dtype=dtype).reshape(shape[::-1]).T
            return (whole if keep is None else whole[keep]).copy()
        row_bytes = dtype.itemsize * int(np.prod(shape[1:], dtype=np.int64))
        parts = [b.copy() for b in npy_blocks(fh, shape, dtype, max(1, (64 << 20) // max(row_bytes, 1)), keep)] \
            if shape else []
        return np.concatenate(parts) if parts else np.zeros(shape, dtype)


def load_synthetic(path: str | Path, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray | None,
                                                                        dict, int]:
    """Signals, requested ages, their sources (None unless the model is conditioned on source), the generate
    request, and how many signals the file holds, from a `ppg-cvae generate` .npz; more than SAMPLE["synthetic"]
    signals are sampled while the file streams."""
    path = Path(path)
    keep = {}

    def choose(n):
        keep["rows"], keep["total"] = sample_rows(n, SAMPLE["synthetic"], rng), n
        return keep["rows"]

    try:
        with zipfile.ZipFile(path) as zf:
            signals = _npy_rows(zf, "signals", choose)
            labels = _npy_rows(zf, "labels", lambda n: keep["rows"])
            with np.load(path) as npz:
                names, request = list(npz["label_names"]), json.loads(str(npz["request"]))
                request["model_id"] = str(npz["model_id"])
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise UserError(f"--synthetic {path}: not a ppg-cvae generate .npz ({exc}); pass the file generate wrote") \
            from None
    if "age" not in names or len(labels) != len(signals) or signals.ndim != 2:
        raise UserError(f"--synthetic {path}: has no 'age' label for each signal; generate it with ppg-cvae generate")
    sources = None
    if "source" in names and "source" in request.get("conditions", []):
        values = (request.get("categories") or {}).get("source")
        codes = labels[:, names.index("source")]
        if not isinstance(values, list) or not np.isin(codes, np.arange(len(values))).all():
            raise UserError(f"--synthetic {path}: its source labels do not match the values its request lists; "
                            "generate it again with ppg-cvae generate")
        sources = decode(codes, values)
    return signals, labels[:, names.index("age")], sources, request, keep["total"]


def _sample_line(counts: dict, seed: int) -> str:
    """Which sets were sampled, from how many, with which seed ('' when every signal was used)."""
    total = counts.get("sampled_from", {})
    drawn = [f"{counts[k]:,} of {total[k]:,} {k.replace('_', ' ')}" for k in ("real_train", "real_val", "real_test",
                                                                              "synthetic")
             if k in total and total[k] > counts[k]]
    return (f"Sampled at random (seed {seed}) to bound memory: {', '.join(drawn)} signals; within each age decade "
            f"diversity uses at most {DIVERSITY_CAP:,} signals per set.\n") if drawn else ""


def _number(v, digits: int = 2) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


def _folds(counts: dict) -> str:
    """How the discriminator was cross-validated, or why it was not."""
    if counts["discriminator_folds"] is None:
        return f"n/a: the test split has {counts['real_test_subjects']} subject(s), 2 or more are needed"
    return (f"{counts['discriminator_folds']}-fold cross-validated, each of the {counts['real_test_subjects']} test "
            "subjects' signals held out together")


def _value(v: dict) -> str:
    """A verdict's value, with its range over the judge's repeats when it has one."""
    spread = v.get("spread")
    return _number(v["value"], 3) + (f" ({spread[0]:.3f}-{spread[1]:.3f})" if spread and spread[0] != spread[1]
                                     else "")


def _verdict_section(metrics: dict) -> str:
    """Every checked number beside its reference and target, with what a failure, warning or n/a means (targets:
    docs/EVALUATION.md)."""
    lines = ["| verdict | check | value | reference | target | reading |", "|---|---|---|---|---|---|"]
    lines += [f"| **{v['verdict'].upper()}** | {v['check']} | {_value(v)} | {_number(v['reference'], 3)} | "
              f"{v['target']} | {v.get('note', '')} |" for v in metrics["verdicts"]]
    return "\n".join(lines)


def _judged(run: dict | None) -> str:
    """One judge's mean score on one set, its range over repeats and its mean held-out balanced accuracy."""
    if run is None:
        return "n/a"
    scores = run["scores"]
    spread = f" ({min(scores):.3f}-{max(scores):.3f})" if len(scores) > 1 else ""
    return f"{np.mean(scores):.3f}{spread}, acc {run['balanced_accuracy']:.3f}"


JUDGE_SETS = {"floor": "floor: real train vs real test", "requested": "requested synthetic (at its labels)",
              "label_matched": "label-matched synthetic", "reconstruction": "reconstructions of the floor's train windows"}


def _judge_section(metrics: dict) -> str:
    """Each judge's scores (range over repeats, balanced accuracy) beside its floor, and the worst of them."""
    runs = metrics["judge_runs"]
    sets = list(next(iter(runs.values())))
    lines = ["| judge | " + " | ".join(JUDGE_SETS[k] for k in sets) + " |", "|---" * (len(sets) + 1) + "|"]
    what = {"linear": "logistic regression on log spectra (phase-invariant)",
            "cnn": f"1D CNN on the raw windows (sees beat shape; at most {judges.CNN_CAP:,} signals per set, "
                   f"{judges.CNN_STEPS} updates per fold)"}
    lines += [f"| {what[j]} | " + " | ".join(_judged(v[k]) for k in sets) + " |" for j, v in runs.items()]
    worst = metrics["headline_judge"]
    head = "n/a (too few test subjects)" if worst is None else (
        f"**{worst['score']:.3f} against a floor of {worst['floor']:.3f}** ({worst['judge']} judge, "
        f"{worst['set'].replace('_', '-')} set)")
    return f"Worst judge: {head}.\n\n" + "\n".join(lines)


def _reference_line(metrics: dict) -> str:
    """Which real windows the requested set was judged against, and which requested ages were not judged."""
    ref, repeats = metrics["requested_reference"], metrics["judge_repeats"]
    out = (f"The requested set is judged against real test windows at its own labels: one bin per requested age "
           f"(edges halfway to the neighbouring requested ages, at most {MAX_HALF_WIDTH:g} years away), and its source when the signals carry one; each bin gives as many "
           f"windows of each side as its smaller side holds: {ref['judged_signals']:,} of the "
           f"{ref['requested_signals']:,} requested signals, against as many real test windows.")
    if ref["ages_not_covered"]:
        out += (f" Requested ages without real test windows, not judged (n/a, neither pass nor fail): "
                f"{', '.join(f'{a:g}' for a in ref['ages_not_covered'])} ({ref['signals_not_covered']:,} signals).")
    if repeats > 1:
        out += (f" The test split has {metrics['counts']['real_test_subjects']} subjects (under "
                f"{panel.SMALL_TEST_SUBJECTS}), so every judge ran {repeats} times (other capped rows, "
                f"{panel.folds_for(repeats)} other folds each): each cell is the mean score (range), and the verdicts "
                "rest on the means.")
    return out


def _source_section(metrics: dict) -> str:
    """Age fidelity within each source (and, with a label-matched set, TSTR and the judges within it), and what a
    data set whose sources differ in age cannot show."""
    rows = metrics["within_source"]
    if not rows:
        return ""
    sets = list(rows[0]["spearman_synthetic"])
    lines = ["", "## Fidelity within each source", "",
             "Age regressor fit on one source's training signals only; Spearman on its test signals and on each "
             "synthetic set's signals of that source (requested set of a model not conditioned on source: the "
             "signals requested inside the source's training age range).", "",
             "| source | ages | real test signals | Spearman real | " + " | ".join(
                 f"{k.replace('_', '-')} signals | Spearman {k.replace('_', '-')}" for k in sets) + " |",
             "|---" * (4 + 2 * len(sets)) + "|"]
    lines += [f"| {r['source']} | {r['age_min']:.0f}-{r['age_max']:.0f} | {r['real_test']} | {r['spearman_real']:.3f} | "
              + " | ".join(f"{r['synthetic'][k]} | {_number(r['spearman_synthetic'][k], 3)}" for k in sets) + " |"
              for r in rows]
    judged = [r for r in rows if "judges" in r]
    if judged:
        lines += ["", "Within each source, the label-matched set against that source's real test signals (floor: its "
                  "real train vs real test signals):", "",
                  "| source | TSTR / TRTR MAE (years) | " + " | ".join(f"judge {j} (floor)" for j in judged[0]["judges"])
                  + " |", "|---" * (2 + len(judged[0]["judges"])) + "|"]
        lines += [f"| {r['source']} | {r['tstr_mae']:.2f} / {r['trtr_mae']:.2f} | " + " | ".join(
            f"{_number(v['label_matched'], 3)} ({_number(v['floor'], 3)})" for v in r["judges"].values()) + " |"
            for r in judged]
    if metrics["sources_age_disjoint"]:
        lines += ["", "**What this data cannot show.** The sources (device, site, rate) cover age ranges that do not "
                  "overlap, so across sources an age model can learn the source instead of the physiology, and the "
                  "all-sources Spearman and TSTR above partly measure that. The rows above are the age fidelity this "
                  "data can show; ages between and beyond the sources' ranges are extrapolations of the model."]
    return "\n".join(lines) + "\n"


def _interval(v: dict) -> str:
    return f"{v['value']:.3f} ({v['ci95'][0]:.3f}-{v['ci95'][1]:.3f})"


def _guarantee(request: dict) -> str:
    """The model's differential-privacy guarantee as its generate request records it."""
    from cvae.training.privacy import SAMPLING_NOTE

    p = request.get("privacy")
    if not p:
        return "The model was trained without differential privacy: no guarantee beyond what the audit measures."
    try:
        return (f"The model was trained with differential privacy, the subject as the unit: **epsilon "
                f"{float(p['epsilon']):.2f} at delta {float(p['delta']):g}** after {int(p['steps']):,} steps (noise "
                f"multiplier {float(p['noise_multiplier']):g}, clipping norm {float(p['clip_norm']):g}; "
                f"{SAMPLING_NOTE}).")
    except (KeyError, TypeError, ValueError):
        return "The file's request names a privacy guarantee without its numbers: no guarantee is claimed here."


def _membership_section(metrics: dict) -> str:
    """The membership-inference audit: each attack's AUC and true-positive rates with their intervals."""
    a = metrics["membership"]
    if a is None:
        return ("n/a: the audit needs 2 or more training and test subjects, and 8 or more validation and synthetic "
                "signals.")
    lines = ["| attack | AUC (95% interval) | TPR at 1% FPR | TPR at 10% FPR |", "|---|---|---|---|"]
    lines += [f"| {k} | {_interval(v['auc'])} | {_interval(v['tpr_at_1pct_fpr'])} | {_interval(v['tpr_at_10pct_fpr'])} |"
              for k, v in a["attacks"].items()]
    coarse = "" if a["non_members"] >= 100 else (f" With {a['non_members']} non-members the rate at 1% false "
                                                 "positives is not resolved (one false positive is more than 1%).")
    return (f"Members: {a['members']:,} training subjects; non-members: {a['non_members']:,} test subjects; the "
            f"attacker holds the {a['synthetic_windows']:,} synthetic signals and {a['reference_windows']:,} "
            f"validation signals as a sample of the population, in {a['components']} principal components of their "
            "log spectra. A subject's score is the mean over its windows; "
            "intervals: 2.5-97.5th percentiles over subjects resampled. An AUC of 0.5 is a guess; a true-positive "
            f"rate equal to the false-positive rate likewise.{coarse} The audit judges the synthetic set only: "
            "whoever holds the model directory can attack more directly.\n\n" + "\n".join(lines))


def _feature_table(metrics: dict) -> str:
    w = metrics["feature_wasserstein"]
    cols = list(w["overall"])
    lines = ["| | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|",
             "| all ages | " + " | ".join(_number(w["overall"][c]) for c in cols) + " |"]
    lines += [f"| {d} | " + " | ".join(_number(v[c]) for c in cols) + " |" for d, v in w["by_decade"].items()]
    means = metrics["waveform_feature_means"]
    lines += ["", "| mean | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    lines += [f"| {k} | " + " | ".join(f"{means[k][c]:.3f}" for c in cols) + " |" for k in ("real_test", "synthetic")]
    return "\n".join(lines)


def read_real(data_dir, manifest: Manifest, split: str, rng: np.random.Generator) -> tuple:
    """Signals, their ages, their subject ids, their sources and all their labels (categorical ones as codes) of one
    split, sampled to SAMPLE[split] signals. The source is the dataset's `source` category when it has one, else
    the subject id's prefix (metrics.source_of)."""
    files = shard_paths(data_dir, manifest, split)
    labels = list(manifest.labels) + list(manifest.categories)
    keep = sample_rows(manifest.splits[split].count, SAMPLE[split], rng)
    from data_prep.shards import read_arrays  # TensorFlow reads the shards: imported once the inputs are checked
    x, y, ids = read_arrays(files, labels, manifest.signal_length, manifest.compression, with_ids=True, keep=keep)
    src = decode(y[:, labels.index("source")], list(manifest.categories["source"])) \
        if "source" in manifest.categories else source_of(ids)
    return x, y[:, labels.index("age")], ids, src, pd.DataFrame(y, columns=labels)


def _condition_labels(gen, labels: pd.DataFrame, manifest: Manifest) -> np.ndarray:
    """The model's raw condition labels of real windows (categorical ones as codes of the dataset's values)."""
    missing = [c for c in gen.meta["conditions"] if c not in labels]
    differ = [c for c, values in gen.conditions.categories.items() if values != list(manifest.categories.get(c, {}))]
    if missing or differ:
        raise UserError(f"--model is conditioned on {missing or differ}, which the dataset's labels "
                        f"{'lack' if missing else 'spell with other values'}; pass the model trained on this dataset")
    return labels[gen.meta["conditions"]].to_numpy(np.float32)


def draw_matched(gen, labels: pd.DataFrame, manifest: Manifest, request: dict, seed: int) -> np.ndarray:
    """One synthetic signal per real test window, at that window's labels, from the model's Generator `gen`, drawn
    as the user's file was (latent prior and sensor noise as its request says), seeded by its generate seed and the
    evaluation's."""
    cond = _condition_labels(gen, labels, manifest)
    rng = np.random.default_rng([int(request.get("seed", 0)), seed, 0x3A7C])
    fitted, noise = request.get("latent", "fitted") == "fitted", request.get("add_noise", True)
    out = [gen.draw(cond[start:start + 1024], rng, fitted, noise) for start in range(0, len(cond), 1024)]
    return np.concatenate(out) if out else np.zeros((0, gen.meta["signal_length"]), np.float32)


def reconstruct_floor(gen, signals: np.ndarray, labels: pd.DataFrame, manifest: Manifest, request: dict,
                      seed: int) -> np.ndarray:
    """The reconstructions of the floor's own real train windows: each window's posterior mean and labels through
    the decoder and the generator's post-processing, with sensor noise as the request adds it (seeded)."""
    cond = _condition_labels(gen, labels, manifest)
    return gen.reconstruct(signals, cond, np.random.default_rng([seed, 0x2EC0]), request.get("add_noise", True))


def _pairs(train: tuple, test: tuple, sets: dict[str, tuple], like: dict) -> dict:
    """The panel's (real side, other side) pairs: the floor (real test vs real train), the requested set against
    the real test windows at its labels (`like`, reference.matched_reference), and every other set against the
    whole real test split. Sides are (signals, spectral features, subject ids or None)."""
    pairs = {"floor": (test, train)}
    for name, side in sets.items():
        if name == "requested":
            r, s = like["real"], like["synthetic"]
            pairs[name] = (tuple(v[r] for v in test), tuple(v if v is None else v[s] for v in side))
        else:
            pairs[name] = (test, side)
    return pairs


def _source_judged(inside: tuple, train: tuple, test: tuple, matched: tuple, seed: int, repeats: int) -> dict:
    """TSTR/TRTR and both judges inside one source: its real train and test signals and the label-matched signals
    of its test windows. `inside` holds the (train, test) masks; the sets are (signals, features, ages, ids)."""
    tr, te = inside
    cond = conditioning_and_utility((train[1][tr], train[2][tr]), (test[1][te], test[2][te]),
                                    (matched[1][te], test[2][te]))
    side = lambda s, m: (s[0][m], s[1][m], s[3][m])   # noqa: E731
    judged = panel.judge_pairs({"floor": (side(test, te), side(train, tr)),
                                "label_matched": (side(test, te), (matched[0][te], matched[1][te], None))},
                               seed, repeats)
    return {"tstr_mae": cond["tstr_mae"], "trtr_mae": cond["trtr_mae"], "judges": panel.scores(judged),
            "judge_runs": panel.runs(judged)}


def _per_source(train: tuple, test: tuple, requested: tuple, matched: tuple | None, seed: int,
                repeats: int) -> list[dict]:
    """within_source's rows (empty for one source), each with _source_judged's numbers when there is a
    label-matched set. Real sets are (signals, features, ages, ids, sources), requested (features, ages, sources),
    matched (signals, features) or None."""
    if len(set(train[4])) < 2:
        return []
    by_set = {"requested": requested}
    if matched is not None:
        by_set["label_matched"] = (matched[1], test[2], test[4])
    rows = within_source((train[1], train[2], train[4]), (test[1], test[2], test[4]), by_set)
    for r in rows if matched is not None else []:
        r.update(_source_judged((train[4] == r["source"], test[4] == r["source"]), train[:4], test[:4], matched,
                                seed, repeats))
    return rows


def _judged_sets(train: tuple, test: tuple, sets: dict, like: dict, seed: int) -> dict:
    """The panel on every set, repeated when the test split is small; metrics.json's judge entries."""
    repeats = panel.repeats_for(len(set(test[2])))
    judged = panel.judge_pairs(_pairs(train, test, sets, like), seed, repeats)
    floor = judged["linear"]["floor"] or {}
    disc = judged["linear"]["requested"] or {}
    return {"judges": panel.scores(judged), "judge_runs": panel.runs(judged), "judge_repeats": repeats,
            "discriminative_score": disc.get("score"), "discriminative_balanced_accuracy": disc.get("balanced_accuracy"),
            "discriminative_score_real_vs_real": floor.get("score"), "discriminator_folds": floor.get("folds")}


def compute(train: tuple, test: tuple, synthetic: tuple, fs: float, seed: int, matched: np.ndarray | None = None,
            reference: np.ndarray | None = None, reconstruction: np.ndarray | None = None) -> tuple[dict, dict]:
    """Every metric of the report from real train and real test (signals, ages, subject ids, sources), synthetic
    (signals, ages, sources or None), the label-matched synthetic signals (one per test signal, at its labels),
    the reconstructions of the real train signals (one per train signal, through the generator's post-processing)
    and the reference signals of the membership audit (the validation split), each when given; returns (metrics,
    the age predictions the figure draws)."""
    (train_x, train_age, train_ids, train_src), (test_x, test_age, test_ids, test_src) = train, test
    syn_x, syn_age, syn_src = synthetic
    f_train, f_test, f_syn = (spectral_features(x) for x in (train_x, test_x, syn_x))
    on_real = age_regressor(f_train, train_age)
    cond = conditioning_and_utility((f_train, train_age), (f_test, test_age), (f_syn, syn_age), on_real)
    like = matched_reference(syn_age, syn_src, test_age, test_src, np.random.default_rng([seed, 0x11CE]))
    sets = {"requested": (syn_x, f_syn, None)}
    if matched is not None:
        sets["label_matched"] = (matched, spectral_features(matched), None)
        cond["spearman_age_label_matched"] = spearman(test_age, on_real.predict(sets["label_matched"][1]))
    if reconstruction is not None:
        sets["reconstruction"] = (reconstruction, spectral_features(reconstruction), train_ids)
    judged = _judged_sets((train_x, f_train, train_ids), (test_x, f_test, test_ids), sets, like, seed)
    w_test, w_syn = waveform_features(test_x, fs), waveform_features(syn_x, fs)
    per_source = _per_source((train_x, f_train, train_age, train_ids, train_src),
                             (test_x, f_test, test_age, test_ids, test_src), (f_syn, syn_age, syn_src),
                             None if matched is None else (matched, sets["label_matched"][1]), seed,
                             judged["judge_repeats"])
    metrics = {k: v for k, v in cond.items() if not k.startswith("predicted")}
    metrics["membership"] = None if reference is None or not len(reference) else membership.audit(
        (f_train, train_ids), (f_test, test_ids), f_syn, spectral_features(reference), seed)
    metrics.update(within_source=per_source, requested_reference=_reference_counts(like, syn_age),
                   sources_age_disjoint=bool(per_source) and disjoint_sources((f_train, train_age, train_src)),
                   feature_wasserstein=feature_distances(w_test, w_syn, test_age, syn_age),
                   feature_trends=feature_trends(w_test, w_syn, test_age, syn_age, seed),
                   **diversity_and_copies(f_train, f_test, f_syn, test_age, syn_age, seed),
                   waveform_feature_means={"real_test": w_test.mean().round(4).to_dict(),
                                           "synthetic": w_syn.mean().round(4).to_dict()},
                   **{k: v for k, v in judged.items() if k != "discriminator_folds"},
                   counts={"real_train": len(train_x), "real_test": len(test_x), "synthetic": len(syn_x),
                           "real_val": 0 if reference is None else len(reference),
                           "label_matched": 0 if matched is None else len(matched),
                           "reconstruction": 0 if reconstruction is None else len(reconstruction),
                           "real_test_subjects": len(set(test_ids)), "discriminator_folds": judged["discriminator_folds"]})
    metrics.update(headline_judge=headline(metrics), verdicts=verdicts(metrics))
    return metrics, {k: v for k, v in cond.items() if k.startswith("predicted")}


def _reference_counts(like: dict, syn_age: np.ndarray) -> dict:
    """What the requested set was judged against: matched_reference's counts, for metrics.json and the report."""
    return {"method": "real test windows drawn per requested age bin (and source), as many as the bin's smaller "
                      "side holds", "judged_signals": int(len(like["synthetic"])), "requested_signals": int(len(syn_age)),
            "ages_covered": like["ages_covered"], "ages_not_covered": like["ages_not_covered"],
            "signals_not_covered": like["signals_not_covered"]}


@dataclass(frozen=True)
class Inputs:
    """What `evaluate` judges, checked: the dataset, the synthetic file's (sampled) signals, ages and sources, its
    generate request, how many signals it holds, and the run that made it (or None)."""
    data_dir: Path
    manifest: Manifest
    synthetic_path: Path
    synthetic: tuple
    request: dict
    synthetic_total: int
    model: Path | None
    seed: int
    rng_state: dict   # of the sampling generator after the synthetic file: the real splits are sampled from here


def read_inputs(synthetic_path: str | Path, data_dir: str | Path, seed: int = 0,
                model: str | Path | None = None) -> Inputs:
    """Read and check every input without TensorFlow, so that a refused one costs no TensorFlow import."""
    manifest = load_manifest(data_dir)
    if "age" not in manifest.labels:
        raise UserError(f"--data {data_dir}: the dataset has no age label to evaluate against")
    meta = None if model is None else read_meta(model)
    rng = np.random.default_rng([seed, 0xE7A1])
    syn_x, syn_age, syn_src, request, syn_total = load_synthetic(synthetic_path, rng)
    if meta is not None and request["model_id"] != meta["model_id"]:
        raise UserError(f"--model {model} is model {meta['model_id']}, but --synthetic {synthetic_path} was made by "
                        f"model {request['model_id']}; pass the run that made the file")
    if syn_x.shape[1] != manifest.signal_length:
        raise UserError(f"--synthetic signals have length {syn_x.shape[1]}, the dataset {manifest.signal_length}")
    return Inputs(Path(data_dir), manifest, Path(synthetic_path), (syn_x, syn_age, syn_src), request, syn_total,
                  None if model is None else Path(model), seed, rng.bit_generator.state)


def evaluate(synthetic_path: str | Path, data_dir: str | Path, out: str | Path, seed: int = 0,
             model: str | Path | None = None) -> dict:
    """Write REPORT_DIR/{report.md, metrics.json, age_conditioning.png, beats_by_age.png}; returns the metrics.
    With `model` (the run that made the synthetic file), a label-matched synthetic set is drawn and judged too."""
    return write_report(read_inputs(synthetic_path, data_dir, seed, model), out)


def write_report(inputs: Inputs, out: str | Path) -> dict:
    """`evaluate` on inputs `read_inputs` checked."""
    data_dir, manifest, seed = inputs.data_dir, inputs.manifest, inputs.seed
    rng = np.random.default_rng()
    rng.bit_generator.state = inputs.rng_state
    syn_x, syn_age, syn_src = inputs.synthetic
    request, synthetic_path = inputs.request, inputs.synthetic_path
    gen = None if inputs.model is None else Generator(inputs.model)
    train, test = read_real(data_dir, manifest, "train", rng), read_real(data_dir, manifest, "test", rng)
    reference = read_real(data_dir, manifest, "val", rng)[0] if manifest.splits["val"].count else None
    matched = None if gen is None else draw_matched(gen, test[4], manifest, request, seed)
    recon = None if gen is None else reconstruct_floor(gen, train[0], train[4], manifest, request, seed)
    metrics, predicted = compute(train[:4], test[:4], (syn_x, syn_age, syn_src), manifest.fs, seed, matched,
                                 reference, recon)
    metrics["counts"].update(sampled_from={"real_train": manifest.splits["train"].count,
                                           "real_val": manifest.splits["val"].count,
                                           "real_test": manifest.splits["test"].count,
                                           "synthetic": inputs.synthetic_total},
                             sample_cap=SAMPLE)
    metrics.update(seed=seed, dataset_id=manifest.dataset_id, synthetic=str(synthetic_path), synthetic_request=request)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    age_figure(out / "age_conditioning.png", syn_age, predicted["predicted_age_synthetic"], test[1],
               predicted["predicted_age_real"])
    write_bytes_atomic(out / "beats_by_age.png", beats_by_age_figure(test[0], test[1], syn_x, syn_age, manifest.fs))
    write_json_atomic(out / "metrics.json", metrics)
    write_text_atomic(out / "report.md", report_text(metrics, request, synthetic_path, data_dir, seed))
    for v in metrics["verdicts"]:
        log.info("evaluate: %-4s %s: %s (reference %s; target %s)", v["verdict"].upper(), v["check"],
                 _number(v["value"], 3), _number(v["reference"], 3), v["target"])
    worst = metrics["headline_judge"] or {}
    failed = sum(v["verdict"] == "fail" for v in metrics["verdicts"])
    log.info("evaluate: spearman synthetic %.3f vs real %.3f | worst judge %s %s (floor %s) | TSTR %.2f vs TRTR %.2f "
             "years | %d of %d checks failed -> %s", metrics["spearman_age_synthetic"], metrics["spearman_age_real"],
             worst.get("judge", "n/a"), _number(worst.get("score"), 3), _number(worst.get("floor"), 3),
             metrics["tstr_mae"], metrics["trtr_mae"], failed, len(metrics["verdicts"]), out / "report.md")
    return metrics


def _numbers_table(metrics: dict) -> str:
    """The age-conditioning, judge and TSTR numbers with what each was computed on."""
    c = metrics["counts"]
    rows = [("Spearman(requested age, predicted age), synthetic", f"{metrics['spearman_age_synthetic']:.3f}",
             f"ridge regressor fit on real train, applied to {c['synthetic']} synthetic"),
            ("Spearman(true age, predicted age), real", f"{metrics['spearman_age_real']:.3f}",
             f"same regressor on {c['real_test']} real test signals")]
    if "spearman_age_label_matched" in metrics:
        rows.append(("Spearman(true age, predicted age), label-matched synthetic",
                     f"{metrics['spearman_age_label_matched']:.3f}", f"same regressor on {c['label_matched']} "
                     "synthetic signals at the real test signals' labels"))
    rows += [("discriminative score abs(balanced accuracy - 0.5)", _number(metrics["discriminative_score"], 3),
              f"logistic regression, real test vs requested synthetic at its labels, {_folds(c)}"),
             ("the same, real train vs real test (reference)", _number(metrics["discriminative_score_real_vs_real"], 3),
              "real signals of other subjects: the score of data that is real"),
             ("TSTR MAE (years)", f"{metrics['tstr_mae']:.2f}", "regressor fit on synthetic, tested on real test"),
             ("TRTR MAE (years)", f"{metrics['trtr_mae']:.2f}", "regressor fit on real train, tested on real test")]
    return "\n".join(["| metric | value | computed on |", "|---|---|---|"] + [f"| {a} | {b} | {d} |" for a, b, d in rows])


def _diversity_text(metrics: dict) -> str:
    return f"""Mean pairwise feature distance within an age decade: synthetic {_number(metrics['diversity_synthetic'])}, real test
{_number(metrics['diversity_real'])} (ratio {_number(metrics['diversity_ratio'])}; n/a when no decade holds two synthetic
signals). Nearest real-training neighbour:
median distance synthetic {metrics['nn_distance_synthetic_median']:.3f} vs real test
{metrics['nn_distance_real_test_median']:.3f}; {metrics['copy_fraction']:.1%} of synthetic signals are closer to a
training signal than 99% of real test signals are (a copy check; about 1% is expected by chance)."""


def report_text(metrics: dict, request: dict, synthetic_path, data_dir, seed: int) -> str:
    """report.md: every number with what it was computed on."""
    c = metrics["counts"]
    matched = f"{c['label_matched']} signals" if c["label_matched"] else "none: evaluate was not given --model"
    recon = f"{c['reconstruction']} signals" if c["reconstruction"] else "none: evaluate was not given --model"
    return f"""# ppg-cvae fidelity report

Synthetic: `{synthetic_path}` ({c['synthetic']} signals; model `{request.get('model')}`, generate seed
{request.get('seed')}, latent draws {request.get('latent', 'standard')}). Real: dataset `{metrics['dataset_id']}` in `{data_dir}`
(train split {c['real_train']} signals for fitting, test split {c['real_test']} held-out signals). Seed {seed}.
{_sample_line(c, seed)}Features: log magnitude spectrum 0-19.5 Hz of each signal (phase-invariant).

## Verdicts

{_verdict_section(metrics)}

## Judges

Discriminative score abs(balanced accuracy - 0.5), {_folds(c)}; each beside the same judge's score on real data of
other subjects (its floor), with its mean held-out balanced accuracy (acc; below 0.5 by more than the judge's spread
is a warning, not a detection). The label-matched set has one synthetic signal per real test signal, at its labels
({matched}). The reconstructions ({recon}) are the floor's own real train windows through the encoder's posterior
mean and the decoder with the generator's post-processing: floor and reconstructions differ only by the decoder,
reconstructions and draws only by the latent prior. {_reference_line(metrics)}

{_judge_section(metrics)}

## Numbers

{_numbers_table(metrics)}

![age conditioning](age_conditioning.png)
{_source_section(metrics)}
## Privacy: membership inference

Could someone holding this synthetic set tell who was in the training data? Attacks (docs/EVALUATION.md): `dcr`,
distance to the closest synthetic signal; `domias`, the synthetic density over the population's (van Breugel et al.
2023).

{_guarantee(request)}

{_membership_section(metrics)}

## Mean beats by age group

![real and synthetic mean beats per age decade](beats_by_age.png)

## Waveform features (mean beat of each signal, aligned on its systolic peaks found by neurokit2)

Normalized Wasserstein distance real test vs synthetic (distance / real std; 0 = same distribution):

{_feature_table(metrics)}

## Diversity and copies

{_diversity_text(metrics)}
"""
