"""bench/real_judges.py: the fidelity verdicts of `make real` over training and generation seeds.

Trains configs/real.yaml on a dataset prepared by `make real` (default outputs/real/data) once per training seed
(2 Horovod ranks), generates ages 25:75:5 x 60 per generation seed, and evaluates each with --model (so the
label-matched set is judged too). Prints one row per (training seed, generation seed) and the range per column:
the ELBO and refinement epochs and their summed epoch time (s), Spearman ratio, each judge's score on the requested and label-matched sets beside its floor, TSTR/TRTR, and the
within-source age Spearman (real, each synthetic set) of every source, and within each source TSTR/TRTR and the
judges on the label-matched set, and the membership AUC of both attacks.
Usage: python bench/real_judges.py [--data outputs/real/data] [--train-seeds 0,1,2,3] [--gen-seeds 0,1] [--dir DIR]
                                   [--set key.sub=value ...]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from bench.common import cli  # noqa: E402


def row(data: Path, work: Path, train_seed: int, gen_seed: int, overrides: list[str]) -> dict:
    """One evaluated (training seed, generation seed); finished runs and reports in `work` are reused."""
    run = work / f"run-{train_seed}"
    if not (run / "model" / "meta.json").is_file():
        cli("launch", "--np", "2", "--", "train", "--config", str(REPO / "configs" / "real.yaml"), "--data",
            str(data), "--run-dir", str(run), "--resume", f"train.seed={train_seed}", *overrides)
    report = work / f"report-{train_seed}-{gen_seed}"
    if not (report / "metrics.json").is_file():
        synthetic = work / f"synthetic-{train_seed}-{gen_seed}.npz"
        cli("generate", "--model", str(run), "--ages", "25:75:5", "--n-per-age", "60", "--seed", str(gen_seed),
            "--out", str(synthetic))
        cli("evaluate", "--synthetic", str(synthetic), "--data", str(data), "--out", str(report), "--model", str(run))
    m = json.loads((report / "metrics.json").read_text())
    rank0 = json.loads((run / "ranks" / "rank-000.json").read_text())
    out = {"train_seed": train_seed, "gen_seed": gen_seed,
           "epochs": rank0["stop_epoch"], "refined": rank0.get("refine_epochs_run", 0),
           "train_s": sum(rank0["epoch_seconds"]),
           "spearman_ratio": m["spearman_age_synthetic"] / m["spearman_age_real"],
           "tstr_trtr": m["tstr_mae"] / m["trtr_mae"],
           "failed": sum(v["verdict"] == "fail" for v in m["verdicts"])}
    out |= {f"membership_{attack}": v["auc"]["value"] for attack, v in m["membership"]["attacks"].items()}
    for judge, sets in m["judges"].items():
        out |= {f"{judge}_{k}": v for k, v in sets.items()}
    for r in m["within_source"]:
        out[f"{r['source']}_spearman_real"] = r["spearman_real"]
        out |= {f"{r['source']}_spearman_{k}": v for k, v in r["spearman_synthetic"].items()}
        if "tstr_mae" in r:
            out[f"{r['source']}_tstr_trtr"] = r["tstr_mae"] / r["trtr_mae"]
            out |= {f"{r['source']}_{j}_{k}": v for j, sets in r["judges"].items() for k, v in sets.items()}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(REPO / "outputs" / "real" / "data"))
    ap.add_argument("--train-seeds", default="0,1,2,3")
    ap.add_argument("--gen-seeds", default="0,1")
    ap.add_argument("--dir", default=str(REPO / "outputs" / "real-judges"))
    ap.add_argument("--set", action="append", default=[], metavar="key.sub=value",
                    help="training override on top of configs/real.yaml (repeatable)")
    args = ap.parse_args()
    work = Path(args.dir)
    work.mkdir(parents=True, exist_ok=True)
    rows = [row(Path(args.data), work, int(t), int(g), args.set) for t in args.train_seeds.split(",")
            for g in args.gen_seeds.split(",")]
    columns = list(dict.fromkeys(k for r in rows for k in r))
    fmt = lambda v: "n/a" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))  # noqa: E731
    print("| " + " | ".join(columns) + " |\n|" + "---|" * len(columns))
    for r in rows:
        print("| " + " | ".join(fmt(r.get(c)) for c in columns) + " |")
    spans = []
    for c in columns[2:]:
        values = [r[c] for r in rows if isinstance(r.get(c), (int, float)) and r.get(c) is not None]
        if values:
            spans.append(f"{c} {min(values):.3f}-{max(values):.3f}")
    print("range over seeds: " + "; ".join(spans))
    (work / "table.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
