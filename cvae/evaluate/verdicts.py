"""The report's verdicts: each fidelity number beside its reference and its documented target (docs/EVALUATION.md),
pass, fail, warn or n/a. Where too much is as wrong as too little the target is a band and a failure says which
side it fell on: an invented age effect fails as surely as a missing one."""
from __future__ import annotations

import numpy as np

SPEARMAN_RATIO_BAND = (0.8, 1.25)   # synthetic / real age Spearman: a fifth weaker to a quarter stronger (1/0.8)
REAL_SPEARMAN_MIN = 0.1             # below this real age Spearman there is no age effect to compare with
TREND_RATIO_BAND = (0.5, 2.0)       # synthetic / real per-decade slope of a feature whose real age trend counts
TREND_MIN_RHO = 0.1                 # a feature's real age trend counts when |Spearman(feature, age)| reaches this
DIVERSITY_BAND = (0.8, 1.25)        # synthetic / real within-decade feature spread
JUDGE_ABOVE_FLOOR_MAX = 0.10        # a synthetic set's discriminative score minus the same judge's floor
DECODER_ABOVE_FLOOR_MAX = 0.05      # the reconstructions' score minus the floor: what the decoder alone loses
BELOW_CHANCE_NOISE_MIN = 0.02       # a judge's balanced accuracy below 0.5 by less than this is noise
TSTR_TRTR_MAX = 1.2                 # MAE trained on synthetic / MAE trained on real, both tested on real
WITHIN_SOURCE_GAP_MAX = 0.2         # |synthetic - real| age Spearman inside one source
MEMBERSHIP_AUC_MAX = 0.55           # subject-level membership-inference AUC, training vs test subjects (0.5: chance)
COPY_FRACTION_MAX = 0.05            # synthetic signals closer to training than 99% of real test signals (1% by chance)


def _row(check: str, value, reference, target: str, passed, note: str = "", spread=None) -> dict:
    """One verdict line; `note` says why it failed, warns or is n/a (kept only then)."""
    verdict = "n/a" if passed is None or value is None else passed if isinstance(passed, str) \
        else ("pass" if passed else "fail")
    return {"check": check, "value": value, "reference": reference, "target": target, "verdict": verdict,
            "note": "" if verdict == "pass" else note, "spread": spread}


def _band(check: str, value, reference, band: tuple, too_low: str, too_high: str, missing: str = "") -> dict:
    """A two-sided check: `value` within `band`; a failure names its side."""
    lo, hi = band
    target = f"within [{lo:g}, {hi:g}]"
    if value is None:
        return _row(check, None, reference, target, None, missing)
    note = too_low if value < lo else too_high if value > hi else ""
    return _row(check, value, reference, target, not note, note)


def _at_most(check: str, value, reference, limit: float, fails: str, target: str | None = None) -> dict:
    """A one-sided check (only one side is wrong): `value` <= `limit`."""
    return _row(check, value, reference, target or f"<= {limit:g}", None if value is None else value <= limit, fails)


def _judged(check: str, score, floor, margin: float, run: dict | None, floor_run: dict | None) -> dict:
    """A judge's mean score against its mean floor + `margin`, with the range over repeats; a held-out accuracy
    below chance by more than the judge's spread is a warning, not a detection."""
    target = f"<= floor + {margin:g}"
    if score is None or floor is None:
        return _row(check, score, floor, target, None, "too few subjects to judge")
    spread = [min(run["scores"]), max(run["scores"])] if run else None
    if run and floor_run:
        noise = max(max(floor_run["scores"]), float(np.ptp(run["scores"])), BELOW_CHANCE_NOISE_MIN)
        if 0.5 - run["balanced_accuracy"] > noise:
            return _row(check, score, floor, target, "warn", (
                f"held-out balanced accuracy {run['balanced_accuracy']:.3f} is below chance by more than the judge's "
                f"spread ({noise:.3f}): not a detection; near-twins of held-out windows in the training folds, or "
                "too few subjects per fold, make a judge learn what inverts on held-out subjects"), spread)
    return _row(check, score, floor, target, score <= floor + margin,
                f"told apart from real {score - floor:.3f} above the floor", spread)


def _judge_rows(judges: dict, runs: dict, where: str = "") -> list[dict]:
    """One row per judge and set: synthetic sets against floor + JUDGE_ABOVE_FLOOR_MAX, the reconstructions (the
    decoder's ceiling) against floor + DECODER_ABOVE_FLOOR_MAX."""
    rows = []
    for judge, sets in judges.items():
        floor_run = (runs.get(judge) or {}).get("floor")
        for name, score in sets.items():
            run = (runs.get(judge) or {}).get(name)
            if name == "reconstruction":
                rows.append(_judged(f"decoder{where}: judge {judge}, reconstructions vs real test", score,
                                    sets["floor"], DECODER_ABOVE_FLOOR_MAX, run, floor_run))
            elif name != "floor":
                rows.append(_judged(f"judge {judge}{where}, {name.replace('_', '-')} synthetic vs real test", score,
                                    sets["floor"], JUDGE_ABOVE_FLOOR_MAX, run, floor_run))
    return rows


def _age_rows(m: dict) -> list[dict]:
    """Age conditioning of each synthetic set (Spearman ratio to real, two-sided), and each waveform feature's age
    trend whose real trend counts (per-decade slope ratio to real, two-sided)."""
    real = m["spearman_age_real"]
    rows = []
    for name, key in (("requested", "spearman_age_synthetic"), ("label-matched", "spearman_age_label_matched")):
        if key in m:
            ratio = m[key] / real if real >= REAL_SPEARMAN_MIN else None
            rows.append(_band(f"age conditioning, {name} synthetic: Spearman synthetic / real", ratio, real,
                              SPEARMAN_RATIO_BAND, "age effect missing (weaker than real)",
                              "age effect invented (stronger than real)",
                              f"real age Spearman {real:.3f} is below {REAL_SPEARMAN_MIN}: no age effect to compare"))
    for feature, t in m["feature_trends"].items():
        if abs(t["rho_real"]) >= TREND_MIN_RHO and t["slope_real"]:
            rows.append(_trend_row(feature, t))
    return rows


def _trend_row(feature: str, t: dict) -> dict:
    """A feature's synthetic / real per-decade slope in TREND_RATIO_BAND. A synthetic set of several ages in whose
    signals the feature is too rarely found to fit a slope fails (the real trend is not rendered); one of a single
    age is n/a."""
    check = f"{feature} per-decade trend, synthetic / real slope (real {t['slope_real']:+.3g})"
    target = f"within [{TREND_RATIO_BAND[0]:g}, {TREND_RATIO_BAND[1]:g}]"
    if t["slope_synthetic"] is None:
        (found, signals), (ages_found, ages) = t.get("found_synthetic", (0, 0)), t.get("ages_synthetic", (0, 0))
        if ages < 2:
            return _row(check, None, t["slope_real"], target, None, "the synthetic set has one age: no trend to fit")
        return _row(check, 0.0, t["slope_real"], target, False, f"trend not rendered: the feature is found in "
                    f"{found} of {signals} synthetic signals, at {ages_found} of their {ages} ages")
    ratio = t["slope_synthetic"] / t["slope_real"]
    low = "trend reversed (opposite sign to real)" if ratio < 0 else "trend missing (under half the real slope)"
    return _band(check, ratio, t["slope_real"], TREND_RATIO_BAND, low, "trend invented (over twice the real slope)")


def _source_rows(m: dict) -> list[dict]:
    """Within each source: the age effect's gap to real (two-sided), the label-matched judges and TSTR / TRTR."""
    rows = []
    for r in m["within_source"]:
        for name, synthetic in r["spearman_synthetic"].items():
            gap = None if synthetic is None else synthetic - r["spearman_real"]
            rows.append(_band(f"age effect within {r['source']}, {name.replace('_', '-')} synthetic (synthetic - real "
                              "Spearman)", gap, r["spearman_real"], (-WITHIN_SOURCE_GAP_MAX, WITHIN_SOURCE_GAP_MAX),
                              "age effect missing", "age effect invented",
                              "under 20 synthetic signals of the source inside its real age range, or one age only"))
        rows += _judge_rows(r.get("judges", {}), r.get("judge_runs", {}), f" within {r['source']}")
        if r.get("tstr_mae") is not None:
            ratio = r["tstr_mae"] / r["trtr_mae"] if r["trtr_mae"] > 0 else None
            rows.append(_at_most(f"TSTR / TRTR MAE within {r['source']}, label-matched synthetic", ratio, r["trtr_mae"],
                                 TSTR_TRTR_MAX, "trained on synthetic, age is predicted worse on real"))
    return rows


def verdicts(m: dict) -> list[dict]:
    """Verdict rows of a metrics dict (report.compute's output)."""
    rows = _age_rows(m) + _judge_rows(m["judges"], m.get("judge_runs", {}))
    ratio = m["tstr_mae"] / m["trtr_mae"] if m["trtr_mae"] > 0 else None
    rows.append(_at_most("TSTR / TRTR MAE", ratio, m["trtr_mae"], TSTR_TRTR_MAX,
                         "trained on synthetic, age is predicted worse on real"))
    rows += _source_rows(m)
    if "diversity_ratio" in m:
        rows.append(_band("diversity: within-decade spread, synthetic / real", m["diversity_ratio"], 1.0,
                          DIVERSITY_BAND, "less varied than real (mode collapse)", "more varied than real (noise)",
                          "no age decade holds two synthetic signals"))
    rows.append(_at_most("copies: share of synthetic closer to training than 99% of real test", m["copy_fraction"],
                         0.01, COPY_FRACTION_MAX, "the synthetic set replays training signals"))
    for attack, numbers in ((m.get("membership") or {}).get("attacks") or {}).items():
        rows.append(_at_most(f"membership inference ({attack} attack): AUC training vs test subjects",
                             numbers["auc"]["value"], 0.5, MEMBERSHIP_AUC_MAX,
                             "the synthetic set gives away who was in training"))
    return rows


def headline(m: dict) -> dict | None:
    """The worst judge: the largest score above its floor over every judge and synthetic set (the reconstructions
    are the decoder's ceiling, not a set the user gets), as (score, floor)."""
    found = [(score - sets["floor"], judge, name, score, sets["floor"]) for judge, sets in m["judges"].items()
             for name, score in sets.items() if name not in ("floor", "reconstruction")
             and None not in (score, sets["floor"])]
    if not found:
        return None
    _, judge, name, score, floor = max(found)
    return {"judge": judge, "set": name, "score": score, "floor": floor}
