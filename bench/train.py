"""bench/train.py: trainer throughput ratios, each measured side by side in one run (signals/s, steady state).

  (a) our trainer, 1 rank on shards      vs  plain Keras fit on the same data in memory (same model, batch)
  (b) our trainer, 2 ranks x 1 thread    vs  1 rank x 1 thread                    -> scaling efficiency
  (c) our trainer, 1 rank                vs  a reference-style loop: pickled arrays, python epoch loop
                                             over a tf.data of tensors, @tf.function step, per-epoch val
  (d) input pipeline alone (1 rank)      vs  training consumption                 -> headroom
Steady state = epochs after the first (tracing, warm-up). Usage: python bench/train.py [--epochs 4]
"""
from __future__ import annotations

import argparse
import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from bench.common import pipeline_rate, report  # noqa: E402

CONFIG = REPO / "configs" / "demo.yaml"
# the rows below were measured with the streaming input pipeline; bench/input_pipeline.py measures the cached one
COMMON = ["train.threads_per_rank=1", "train.patience=1000", "train.image_every=0", "train.cache=false"]


def ours(np_: int, data: Path, run: Path, epochs: int) -> float:
    """Steady-state signals/s of `ppg-cvae train` on np_ ranks (horovodrun, Gloo)."""
    from launch.horovod import horovodrun_command
    args = ["train", "--config", str(CONFIG), "--data", str(data), "--run-dir", str(run),
            f"train.epochs={epochs}", *COMMON]
    cmd = horovodrun_command(np_, args) if np_ > 1 else [sys.executable, "-m", "launch.cli", *args]
    subprocess.run(cmd, cwd=REPO, check=True, capture_output=True)
    rep = json.loads((run / "ranks" / "rank-000.json").read_text())
    steady = rep["epoch_seconds"][1:]
    return rep["signals_per_epoch"] * len(steady) / sum(steady)


def in_process(kind: str, data: Path, epochs: int, workdir: Path) -> float:
    """Run one of the in-process baselines in a fresh 1-thread process; returns its signals/s."""
    out = subprocess.run([sys.executable, __file__, "--child", kind, "--data", str(data), "--epochs", str(epochs),
                          "--workdir", str(workdir)], cwd=REPO, capture_output=True, text=True)
    if out.returncode:
        sys.exit(f"{kind} failed:\n{out.stderr[-3000:]}")
    return float(out.stdout.strip().splitlines()[-1])


def child(kind: str, data: Path, epochs: int, workdir: Path) -> float:
    import numpy as np
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from cvae.config import load_config
    from cvae.keras2 import keras
    from cvae.model.network import CVAE
    from cvae.training.input_pipeline import condition_scaler, rank_plan
    from data_prep.manifest import load_manifest, shard_paths
    from data_prep.shards import read_arrays

    cfg = load_config(CONFIG, COMMON)
    manifest = load_manifest(data)
    conds, batch = cfg.model.conditions, cfg.train.batch_size
    steps = rank_plan(manifest, 0, 1, batch)[2]
    if kind == "pipeline":
        return pipeline_rate(data, conds, batch, epochs, cfg.train.shuffle_buffer, cfg.train.cache)

    mean, std = condition_scaler(manifest, conds)
    x, y = read_arrays(shard_paths(data, manifest, "train"), conds, manifest.signal_length, "none")
    c = ((y - mean) / std).astype(np.float32)
    model = CVAE(cfg.model, manifest.signal_length, len(conds), seed=0)
    if kind == "keras_fit":
        model.compile(optimizer=keras.optimizers.Adam(cfg.train.learning_rate))
        times = []
        cb = keras.callbacks.LambdaCallback(on_epoch_begin=lambda e, l: times.append(time.perf_counter()),
                                            on_epoch_end=lambda e, l: times.append(time.perf_counter()))
        model.fit(x, c, batch_size=batch, epochs=epochs, steps_per_epoch=steps, shuffle=True, verbose=0,
                  callbacks=[cb])
        steady = sum(times[i + 1] - times[i] for i in range(2, len(times), 2))
        return steps * batch * (epochs - 1) / steady

    # kind == "reference": the study's approach - arrays from a pickle, eager epoch loop, tf.function step
    with open(workdir / "train.pickle", "wb") as fh:
        pickle.dump({"samples": list(x), "labels": y}, fh)
    with open(workdir / "train.pickle", "rb") as fh:
        obj = pickle.load(fh)
    xs = np.asarray([s / np.max(np.abs(s)) for s in obj["samples"]], np.float32)
    data_ds = tf.data.Dataset.from_tensor_slices((xs, c)).shuffle(len(xs)).batch(batch, drop_remainder=True)
    opt = keras.optimizers.Adam(cfg.train.learning_rate)

    @tf.function
    def step(s, cond):
        with tf.GradientTape() as tape:
            rec, kl = model.losses_for(s, cond, training=True)
            loss = rec + kl
        grads = tape.gradient(loss, model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    total, seen = 0.0, 0
    for epoch in range(epochs):
        t0 = time.perf_counter()
        losses = [float(step(s, cond)) for s, cond in data_ds.take(steps)]
        if epoch:
            total += time.perf_counter() - t0
            seen += len(losses) * batch
    return seen / total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--child")
    ap.add_argument("--data")
    ap.add_argument("--workdir")
    args = ap.parse_args()
    if args.child:
        print(child(args.child, Path(args.data), args.epochs, Path(args.workdir)))
        return
    root = Path(tempfile.mkdtemp(prefix="ppg-bench-train-"))
    try:
        data = root / "data"
        subprocess.run([sys.executable, "-m", "launch.cli", "prep", "--config", str(CONFIG), "--out", str(data)],
                       cwd=REPO, check=True, capture_output=True)
        one = ours(1, data, root / "r1", args.epochs)
        two = ours(2, data, root / "r2", args.epochs)
        fit = in_process("keras_fit", data, args.epochs, root)
        ref = in_process("reference", data, args.epochs, root)
        pipe = in_process("pipeline", data, args.epochs, root)
        report("train", {
            "ours_1rank_sps": one, "ours_2rank_sps": two, "keras_fit_sps": fit, "reference_loop_sps": ref,
            "pipeline_sps": pipe, "a_ours_vs_keras_fit": one / fit, "b_scaling_efficiency_2x1": two / (2 * one),
            "c_speedup_vs_reference": one / ref, "d_pipeline_headroom": pipe / one,
            "epochs": args.epochs, "cores": os.cpu_count()})
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
