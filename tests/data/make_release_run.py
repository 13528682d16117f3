"""Write a small dataset and training run with a previous release of ppg-cvae, for the compatibility tests.

    git worktree add /tmp/ppg-cvae-0.1.0 c4fabda && make -C /tmp/ppg-cvae-0.1.0 setup
    python tests/data/make_release_run.py /tmp/ppg-cvae-0.1.0 tests/data/release-0.1.0

Release 0.1.0 (commit c4fabda) ran TensorFlow 2.15.1 with its Keras 2.15, numpy 1.26.4 and pandas 2.2.3 on Python
3.11. OUT/data holds its shards and manifest (the smoke config with 24 simulated subjects); OUT/run a 2-epoch
1-rank training on it (a smaller model than the smoke config's): the exported model (RUN/model), its checkpoints and
the files beside them; OUT/generated.npz what that model generated for ages 30 and 60, 4 each, seed 0. TensorBoard
logs and the figures are left out (nothing reads them back).
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path


def main(release: Path, out: Path) -> None:
    cli = [str(release / ".venv" / "bin" / "python"), "-m", "launch.cli"]
    smoke = str(release / "configs" / "smoke.yaml")
    if out.exists():
        shutil.rmtree(out)
    subprocess.run([*cli, "prep", "--config", smoke, "--out", str(out / "data"), "simulate.n_subjects=24",
                    "simulate.segments_per_subject=2", "data.train_shards=1"], cwd=release, check=True)
    subprocess.run([*cli, "train", "--config", smoke, "--data", str(out / "data"), "--run-dir", str(out / "run"),
                    "train.epochs=2", "train.image_every=0", "train.keep_checkpoints=1", "model.filters=[4,8]",
                    "model.dense_units=[8]"], cwd=release, check=True)
    shutil.rmtree(out / "run" / "tensorboard")
    (out / "data" / "quality.png").unlink()
    subprocess.run([*cli, "generate", "--model", str(out / "run"), "--ages", "30,60", "--n-per-age", "4", "--seed", "0",
                    "--out", str(out / "generated.npz")], cwd=release, check=True)
    (out / "generated.png").unlink()


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve())
