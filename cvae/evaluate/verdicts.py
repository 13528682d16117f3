"""The report's verdicts: each fidelity number beside its reference and its documented target (docs/EVALUATION.md),
pass or fail. An invented or missing age effect is a failed line, not a footnote."""
from __future__ import annotations

import numpy as np

SPEARMAN_RATIO_MIN = 0.9        # synthetic age Spearman / real age Spearman
JUDGE_ABOVE_FLOOR_MAX = 0.10    # discriminative score minus the same judge's real-vs-real floor
TSTR_TRTR_MAX = 1.2             # MAE trained on synthetic / MAE trained on real, both tested on real
WITHIN_SOURCE_GAP_MAX = 0.2     # |synthetic - real| age Spearman inside one source
TREND_MIN_RHO = 0.1             # a feature's real age trend counts when |Spearman(feature, age)| reaches this
MEMBERSHIP_AUC_MAX = 0.55      # subject-level membership-inference AUC, training vs test subjects (0.5: chance)
COPY_FRACTION_MAX = 0.05        # synthetic signals closer to training than 99% of real test signals (1% by chance)


def _row(check: str, value, reference, target: str, passed) -> dict:
    verdict = "n/a" if passed is None or value is None else ("pass" if passed else "fail")
    return {"check": check, "value": value, "reference": reference, "target": target, "verdict": verdict}


def verdicts(m: dict) -> list[dict]:
    """Verdict rows of a metrics dict (report.compute's output)."""
    rows = []
    real, syn = m["spearman_age_real"], m["spearman_age_synthetic"]
    ratio = syn / real if real > 0.1 else None
    rows.append(_row("age conditioning: Spearman synthetic / real", ratio, real, f">= {SPEARMAN_RATIO_MIN}",
                     None if ratio is None else ratio >= SPEARMAN_RATIO_MIN))
    for judge, sets in m["judges"].items():
        for name, score in sets.items():
            if name != "floor":
                rows.append(_row(f"judge {judge}, {name.replace('_', '-')} synthetic vs real test", score,
                                 sets["floor"], f"<= floor + {JUDGE_ABOVE_FLOOR_MAX}",
                                 None if score is None or sets["floor"] is None
                                 else score <= sets["floor"] + JUDGE_ABOVE_FLOOR_MAX))
    ratio = m["tstr_mae"] / m["trtr_mae"] if m["trtr_mae"] > 0 else None
    rows.append(_row("TSTR / TRTR MAE", ratio, m["trtr_mae"], f"<= {TSTR_TRTR_MAX}",
                     None if ratio is None else ratio <= TSTR_TRTR_MAX))
    for r in m["within_source"]:
        for name, synthetic in r["spearman_synthetic"].items():
            gap = None if synthetic is None else synthetic - r["spearman_real"]
            what = "invented" if gap is not None and gap > 0 else "missing"
            rows.append(_row(f"age effect within {r['source']}, {name.replace('_', '-')} synthetic (synthetic - real "
                             f"Spearman; {what} if it fails)", gap, r["spearman_real"],
                             f"abs(gap) <= {WITHIN_SOURCE_GAP_MAX}", None if gap is None else abs(gap) <= WITHIN_SOURCE_GAP_MAX))
        for judge, sets in r.get("judges", {}).items():
            score, floor = sets["label_matched"], sets["floor"]
            rows.append(_row(f"judge {judge} within {r['source']}, label-matched synthetic vs real test", score, floor,
                             f"<= floor + {JUDGE_ABOVE_FLOOR_MAX}",
                             None if None in (score, floor) else score <= floor + JUDGE_ABOVE_FLOOR_MAX))
        if r.get("tstr_mae") is not None:
            ratio = r["tstr_mae"] / r["trtr_mae"] if r["trtr_mae"] > 0 else None
            rows.append(_row(f"TSTR / TRTR MAE within {r['source']}, label-matched synthetic", ratio, r["trtr_mae"],
                             f"<= {TSTR_TRTR_MAX}", None if ratio is None else ratio <= TSTR_TRTR_MAX))
    for feature, t in m["feature_trends"].items():
        if abs(t["rho_real"]) >= TREND_MIN_RHO and t["slope_synthetic"] is not None:
            rows.append(_row(f"{feature} per-decade trend, synthetic (real {t['slope_real']:+.3g})",
                             t["slope_synthetic"], t["slope_real"], "same sign as real",
                             np.sign(t["slope_synthetic"]) == np.sign(t["slope_real"])))
    rows.append(_row("copies: share of synthetic closer to training than 99% of real test", m["copy_fraction"],
                     0.01, f"<= {COPY_FRACTION_MAX}", m["copy_fraction"] <= COPY_FRACTION_MAX))
    for attack, numbers in ((m.get("membership") or {}).get("attacks") or {}).items():
        auc = numbers["auc"]["value"]
        rows.append(_row(f"membership inference ({attack} attack): AUC training vs test subjects", auc, 0.5,
                         f"<= {MEMBERSHIP_AUC_MAX}", auc <= MEMBERSHIP_AUC_MAX))
    return rows


def headline(m: dict) -> dict | None:
    """The worst judge: the largest score above its floor over every judge and synthetic set, as (score, floor)."""
    found = [(score - sets["floor"], judge, name, score, sets["floor"]) for judge, sets in m["judges"].items()
             for name, score in sets.items() if name != "floor" and None not in (score, sets["floor"])]
    if not found:
        return None
    _, judge, name, score, floor = max(found)
    return {"judge": judge, "set": name, "score": score, "floor": floor}
