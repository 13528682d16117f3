"""bench/judges.py: the CNN judge's cost, side by side in one run.

1. One fit (judges.CNN_STEPS updates), in this process (TensorFlow's own threads) and in a single-threaded worker
   process as judges.fit_all runs it: the judge's compiled step against the same network trained by Keras' `fit`
   with the same batch size, class weights and updates.
2. A panel's worth of fits (--fits, default 8): one after another in this process (TensorFlow's own threads)
   against judges.fit_all (one single-threaded worker process per core).
Data: simulated demo-cohort windows (--signals, default 1,400), two thirds fit, one third held out, as one fold.
Usage: python bench/judges.py [--signals 1400] [--fits 8] [--rounds 2]
"""
from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from cvae import load_tensorflow_quietly  # noqa: E402
from cvae.config import load_config  # noqa: E402
from cvae.evaluate import judges  # noqa: E402
from data_prep.normalize import normalize  # noqa: E402
from data_prep.simulate import segment_table, simulate_signals, simulate_subjects  # noqa: E402


def keras_fit(x_fit: np.ndarray, y_fit: np.ndarray, x_held: np.ndarray, seed: int) -> np.ndarray:
    """The judge's network trained by Keras' `fit` (its tf.data pipeline) for the same updates and class weights."""
    from cvae.keras2 import keras
    keras.utils.set_random_seed(seed)
    model = judges.cnn_model(x_fit.shape[1])
    model.compile(keras.optimizers.Adam(1e-3), "binary_crossentropy")
    share = np.bincount(y_fit.astype(int), minlength=2) / len(y_fit)
    model.fit(judges._standardized(x_fit)[..., None], y_fit.astype(np.float32), batch_size=64, verbose=0,
              epochs=int(np.ceil(judges.CNN_STEPS / np.ceil(len(x_fit) / 64))), shuffle=True,
              class_weight={k: 0.5 / max(share[k], 1e-9) for k in (0, 1)})
    held = model.predict(judges._standardized(x_held)[..., None], verbose=0)[:, 0]
    keras.backend.clear_session()
    return (held > 0.5).astype(int)


def timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--signals", type=int, default=1400)
    ap.add_argument("--fits", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    cfg = load_config(None, [f"simulate.n_subjects={args.signals}", "simulate.segments_per_subject=1"])
    x = normalize(simulate_signals(segment_table(simulate_subjects(cfg.simulate, 3), 1), cfg.simulate, cfg.data, 3),
                  "maxabs")
    y = np.random.default_rng(0).integers(0, 2, len(x))
    cut = 2 * len(x) // 3
    task = (x[:cut], y[:cut], x[cut:], 0)
    load_tensorflow_quietly()
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                             initializer=judges._single_threaded) as worker:
        for where, run in (("this process", lambda fn: timed(fn, *task)),
                           ("a single-threaded worker", lambda fn: worker.submit(timed, fn, *task).result())):
            step = [run(judges.cnn) for _ in range(args.rounds)]
            fit = [run(keras_fit) for _ in range(args.rounds)]
            print(f"| one fit, {judges.CNN_STEPS} updates, {where} | compiled step {min(step):.1f} s | Keras fit "
                  f"{min(fit):.1f} s | {min(fit) / min(step):.2f}x |")
    tasks = [(x[:cut], y[:cut], x[cut:], seed) for seed in range(args.fits)]
    pool = timed(judges.fit_all, judges.cnn, tasks)
    serial = timed(lambda: [judges.cnn(*t) for t in tasks])
    print(f"| {args.fits} fits | worker processes {pool:.1f} s | one after another {serial:.1f} s | "
          f"{serial / pool:.2f}x |")


if __name__ == "__main__":
    main()
