"""bench/large_batch.py: model quality at large global batches, and the GPU time a run at each would cost.

The default model (configs/default.yaml) trained on one simulated cohort (default 8,400 subjects x 6 = 50,400
signals) once per global batch of --batches, on one CPU rank: R ranks of batch b make the updates of one rank of
batch R x b (tests/e2e/test_train_horovod.py), so quality at a global batch is studied here and its GPU time projected.
Batch 64 trains --epochs with Adam (the reference); every larger batch trains --large-epochs (by default the
epochs whose projected time on 8 H200s is a quarter of batch 64's on one) with the recipe of `recipe()`. No early
stopping; a run stopped part way continues from its checkpoint when the bench is started again with the same
--dir. Each generates 1,000 signals per age 18:98:8, evaluated against the same test split.
Per batch: updates, best validation loss, the first epoch within 2% of batch 64's best, Spearman ratio, the linear
and CNN judges (score and floor), TSTR/TRTR, and the projected GPU time of the whole run on 1 and on 8 H200s;
--figure plots the validation curves.
Usage: python bench/large_batch.py [--batches 64,1024,4096,8192] [--epochs 12] [--large-epochs budget|E|B:E,...]
                                   [--subjects 8400] [--threads 2] [--dir DIR] [--set KEY=VALUE ...]
       python bench/large_batch.py --gpu-table BATCH:EPOCHS
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from bench.common import cli, report, simulated_data  # noqa: E402

# docs/CLUSTER.md: fp32 training signals/s of one H200 at each batch per GPU (a PyTorch model of the default shape)
H200_RATE = {64: 14_067, 256: 54_510, 1024: 161_531, 4096: 192_985}


def recipe(batch: int, epochs: int) -> list[str]:
    """The training settings of a global batch trained `epochs`, every one the bench compares (so that the rows do
    not depend on configs/default.yaml): Adam at 1e-3 for batch 64; above it LAMB with the learning rate scaled by
    the square root of the batch ratio (at most 1e-2), warmed up over the first 20% of the epochs, then a cosine
    decay to 0, and the KL weight warmed up over the first 20%."""
    if batch <= 64:
        return [f"train.global_batch_size={batch}", "train.optimizer=adam", "train.learning_rate=0.001",
                "train.warmup_epochs=0", "train.lr_decay=none", "model.kl_warmup_epochs=5"]
    warm = max(1, epochs // 5)
    return [f"train.global_batch_size={batch}", "train.optimizer=lamb",
            f"train.learning_rate={min(1e-3 * math.sqrt(batch / 64), 1e-2):.4g}", f"train.warmup_epochs={warm}",
            "train.lr_decay=cosine", f"model.kl_warmup_epochs={warm}"]


def h200_seconds(global_batch: int, gpus: int, signals: int) -> float:
    """Seconds to train `signals` at `global_batch` on `gpus` H200s: each GPU at its per-GPU batch's rate
    (log-interpolated in the table, the largest row beyond it), linear scaling over GPUs assumed."""
    per_gpu = global_batch / gpus
    sizes = sorted(H200_RATE)
    rate = float(np.interp(np.log(min(max(per_gpu, sizes[0]), sizes[-1])), np.log(sizes),
                           [H200_RATE[s] for s in sizes]))
    return signals / (rate * gpus)


def epoch_signals(train_signals: int, batch: int) -> int:
    """Signals an epoch trains on: the training split's full batches (the trainer drops the last partial one)."""
    return train_signals // batch * batch


def gpu_table(global_batch: int, epochs: int, base_epochs: int) -> None:
    """How many GPUs for how much data: the projected H200 time of `epochs` epochs at `global_batch` for training
    splits of several sizes on 1-8 GPUs (the same global batch on each, so the same model), beside batch 64's
    `base_epochs` on one."""
    gpus = [g for g in (1, 2, 4, 8) if global_batch % g == 0]
    print(f"\n| training signals | batch 64 x {base_epochs} epochs: 1 H200 | {global_batch:,} x {epochs} epochs: "
          + " | ".join(f"{g} H200" for g in gpus) + f" |\n|---|---{'|---' * len(gpus)}|")
    for n in (40_000, 261_643, 1_000_000, 4_000_000):
        cells = ([h200_seconds(64, 1, epoch_signals(n, 64) * base_epochs)]
                 + [h200_seconds(global_batch, g, epoch_signals(n, global_batch) * epochs) for g in gpus])
        print(f"| {n:,} | " + " | ".join(f"{c / 60:.1f} min" if c >= 60 else f"{c:.0f} s" for c in cells) + " |")


def target_loss(base: dict) -> float:
    """The validation loss a larger batch must reach: batch 64's best + 2%."""
    return base["best_val_loss"] + 0.02 * abs(base["best_val_loss"])


def budget_seconds(base: dict) -> float:
    """The GPU time budget of a larger batch on 8 H200s: a quarter of batch 64's run on one."""
    return h200_seconds(64, 1, base["signals_per_epoch"] * base["epochs"]) / 4


def budget_epochs(batch: int, base: dict, train_signals: int) -> int:
    """Epochs at `batch` whose projected time on 8 H200s is `budget_seconds`."""
    return int(budget_seconds(base) / h200_seconds(batch, 8, epoch_signals(train_signals, batch)))


def large_epochs(text: str, batches: list[int], base: dict, train_signals: int) -> dict[int, int]:
    """--large-epochs as {batch: epochs} for every batch above 64: "budget" (`budget_epochs`), one number for all,
    or BATCH:EPOCHS pairs."""
    large = [b for b in batches if b > 64]
    if text == "budget":
        return {b: budget_epochs(b, base, train_signals) for b in large}
    if ":" not in text:
        return {b: int(text) for b in large}
    pairs = {int(b): int(e) for b, e in (item.split(":") for item in text.split(","))}
    missing = [b for b in large if b not in pairs]
    if missing:
        sys.exit(f"--large-epochs names no epochs for batch {missing[0]}: give BATCH:EPOCHS for every batch above 64")
    return pairs


def variant(batch: int, data: Path, work: Path, epochs: int, extra: list[str], threads: int) -> dict:
    """Train, generate and evaluate one global batch; a finished one already in `work` (same settings) is read back."""
    overrides = recipe(batch, epochs) + extra
    tag = "-".join([str(batch), str(epochs), *overrides]).replace("=", "_").replace("/", "_")
    done, run = work / f"{tag}.json", work / tag
    if done.exists():
        return json.loads(done.read_text()) | {"val_loss_history": val_loss_by_epoch(run, epochs)}
    t0 = time.perf_counter()
    cli("train", "--config", str(REPO / "configs" / "default.yaml"), "--data", str(data), "--run-dir", str(run),
        "--resume", f"train.epochs={epochs}", f"train.patience={epochs}", "train.image_every=0",
        f"train.threads_per_rank={threads}", *overrides)
    seconds = time.perf_counter() - t0
    meta = json.loads((run / "model" / "meta.json").read_text())
    cli("generate", "--model", str(run), "--ages", "18:98:8", "--n-per-age", "1000", "--seed", "0",
        "--out", str(work / f"{tag}.npz"))
    cli("evaluate", "--synthetic", str(work / f"{tag}.npz"), "--data", str(data), "--out", str(work / f"{tag}-report"))
    m = json.loads((work / f"{tag}-report" / "metrics.json").read_text())
    rank0 = json.loads((run / "ranks" / "rank-000.json").read_text())
    row = {"overrides": overrides, "epochs": epochs, "updates": rank0["steps_per_epoch"] * epochs,
           "best_val_loss": meta["best_val_loss"], "cpu_train_seconds": seconds,
           "spearman_ratio": m["spearman_age_synthetic"] / m["spearman_age_real"],
           "linear_judge": m["judges"]["linear"]["requested"], "linear_floor": m["judges"]["linear"]["floor"],
           "cnn_judge": m["judges"]["cnn"]["requested"], "cnn_floor": m["judges"]["cnn"]["floor"],
           "tstr_trtr": m["tstr_mae"] / m["trtr_mae"], "signals_per_epoch": rank0["signals_per_epoch"]}
    done.write_text(json.dumps(row))
    return row | {"val_loss_history": val_loss_by_epoch(run, epochs)}


def val_loss_by_epoch(run: Path, epochs: int) -> list[float]:
    """The run's validation loss by epoch from its TensorBoard events, over every resume of it (the rank files cover
    the last one only); an epoch logged again after a resume keeps its later value."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.util.tensor_util import make_ndarray
    by_epoch = {}
    for events in sorted((run / "tensorboard").glob("events.out.tfevents.*")):
        acc = EventAccumulator(str(events), size_guidance={"tensors": 0})
        acc.Reload()
        if "val/loss" in acc.Tags()["tensors"]:
            by_epoch |= {e.step: float(make_ndarray(e.tensor_proto)) for e in acc.Tensors("val/loss")}
    if sorted(by_epoch) != list(range(1, epochs + 1)):
        sys.exit(f"{run}: its TensorBoard events hold validation losses for {len(by_epoch)} of its {epochs} epochs")
    return [by_epoch[e] for e in range(1, epochs + 1)]


def figure(rows: dict[int, dict], path: Path) -> None:
    """Validation loss by update (left) and by projected H200 time (right: 8 GPUs, batch 64 on one), with batch
    64's best + 2% and the budget (a quarter of batch 64's time on one GPU)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    base = rows[64]
    target = target_loss(base)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for b, r in rows.items():
        val = np.array(r["val_loss_history"])
        epoch = np.arange(1, len(val) + 1)
        gpus = 1 if b == 64 else 8
        seconds = [h200_seconds(b, gpus, r["signals_per_epoch"] * e) for e in epoch]
        label = f"{b:,}" + (" (1 GPU)" if b == 64 else "")
        left.plot(epoch * r["updates"] / r["epochs"], val, lw=1, label=label)
        right.plot(seconds, val, lw=1, label=label)
    for ax in (left, right):
        ax.axhline(target, color="grey", lw=0.8, ls=":", label="batch 64's best + 2%")
    right.axvline(budget_seconds(base), color="C3", lw=0.8, ls="--", label="budget: 1/4 of batch 64 on 1 GPU")
    left.set(xscale="log", xlabel="updates", ylabel="validation loss", title="by update")
    right.set(xlabel="projected seconds on H200s (8; batch 64 on 1)", title="by GPU time")
    left.set_ylim(base["best_val_loss"] * 1.03, base["best_val_loss"] * 0.4)
    right.legend(fontsize=7, title="global batch", title_fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batches", default="64,1024,4096,8192")
    ap.add_argument("--epochs", type=int, default=12, help="epochs of batch 64")
    ap.add_argument("--large-epochs", default="budget",
                    help="epochs of every larger batch: 'budget' (its projected time on 8 H200s a quarter of batch "
                         "64's on one), one number, or BATCH:EPOCHS pairs (1024:48,8192:96)")
    ap.add_argument("--subjects", type=int, default=8400)
    ap.add_argument("--threads", type=int, default=2, help="CPU threads of the training rank (1 when two sweeps "
                    "share a 2-core machine; the table does not depend on it)")
    ap.add_argument("--dir", default=None, help="work directory (kept; default a temporary one)")
    ap.add_argument("--gpu-table", default=None, metavar="BATCH:EPOCHS",
                    help="only print the projected H200 time of EPOCHS epochs at global batch BATCH by data size and "
                         "GPUs (no training)")
    ap.add_argument("--figure", default=str(REPO / "docs" / "figures" / "large_batch.png"))
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="an override for every batch above 64 (to try another recipe)")
    args = ap.parse_args()
    if args.gpu_table:
        return gpu_table(*(int(v) for v in args.gpu_table.split(":")), args.epochs)
    batches = sorted({int(b) for b in args.batches.split(",")} | {64})
    if args.dir:
        Path(args.dir).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        work = Path(args.dir or tmp)
        data = simulated_data(work, args.subjects)
        rows = {64: variant(64, data, work, args.epochs, [], args.threads)}
        train_signals = json.loads((data / "manifest.json").read_text())["splits"]["train"]["count"]
        epochs = large_epochs(args.large_epochs, batches, rows[64], train_signals)
        rows |= {b: variant(b, data, work, epochs[b], args.set, args.threads) for b in batches if b > 64}
    base, target = rows[64], target_loss(rows[64])
    print("| global batch | epochs | updates | best val loss (gap to 64) | first epoch within 2% | Spearman ratio | "
          "linear judge (floor) | CNN judge (floor) | TSTR/TRTR | GPU time 1 H200 | 8 H200 |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|")
    for b, r in rows.items():
        within = next((e + 1 for e, v in enumerate(r["val_loss_history"]) if v <= target), None)
        signals = r["signals_per_epoch"] * r["epochs"]
        r |= {"gap": (r["best_val_loss"] - base["best_val_loss"]) / abs(base["best_val_loss"]),
              "epoch_within_2pct": within, "h200_1_s": h200_seconds(b, 1, signals),
              "h200_8_s": h200_seconds(b, 8, signals) if b >= 8 * 64 else None}
        print(f"| {b:,} | {r['epochs']} | {r['updates']:,} | {r['best_val_loss']:,.1f} ({r['gap']:+.1%}) | "
              f"{within or 'not reached'} | {r['spearman_ratio']:.3f} | "
              f"{r['linear_judge']:.3f} ({r['linear_floor']:.3f}) | {r['cnn_judge']:.3f} ({r['cnn_floor']:.3f}) | "
              f"{r['tstr_trtr']:.2f} | {r['h200_1_s']:.0f} s | "
              + ("n/a" if r["h200_8_s"] is None else f"{r['h200_8_s']:.0f} s") + " |")
    figure(rows, Path(args.figure))
    report("large_batch", {str(b): {k: v for k, v in r.items() if k != "val_loss_history"} for b, r in rows.items()})


if __name__ == "__main__":
    main()
