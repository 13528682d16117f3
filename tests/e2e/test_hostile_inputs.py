"""Bad and hostile inputs at every door (configs, sources, manifests, checkpoints, model directories, flags): each
is exit code 2 with one line naming the thing, no traceback, nothing written outside the output directory, and no
existing output changed."""
import io
import json
import pickle
import shutil
import zipfile
from concurrent.futures import ThreadPoolExecutor

import h5py
import numpy as np
import pandas as pd
import pytest

from conftest import SMOKE, cli
from conftest import pickle_call as call
from conftest import snapshot


def edit_json(path, change):
    obj = json.loads(path.read_text())
    change(obj)
    path.write_text(json.dumps(obj))


@pytest.fixture(scope="module")
def world(smoke_data, trained_run, tmp_path_factory):
    """Existing inputs and outputs, each a variant of a good one with one thing wrong."""
    w = tmp_path_factory.mktemp("world")
    marker = w / "executed"
    files = {
        "bad.yaml": "train: [\n", "list.yaml": "- 1\n- 2\n", "unknown.yaml": "model:\n  latnt_dim: 4\n",
        "type.yaml": "train:\n  epochs: ten\n", "nan.yaml": "train:\n  learning_rate: .nan\n",
        "hosts": "localhost:2  # this machine\n",
    }
    for name, text in files.items():
        (w / name).write_text(text)
    (w / "evil.pickle").write_bytes(call("os", "system", f"touch {marker}"))
    (w / "bomb.pickle").write_bytes(call("builtins", "bytearray", 10 ** 11))
    good = pickle.dumps({"labels": pd.DataFrame({"age": [40.0, 50.0]}), "samples": [np.zeros(1024)] * 2}, 4)
    (w / "truncated.pickle").write_bytes(good[: len(good) // 2])
    (w / "list.pickle").write_bytes(pickle.dumps([1, 2, 3], 4))
    np.savez(w / "nosignals.npz", x=np.zeros(3))
    np.savez(w / "objects.npz", signals=np.array([np.zeros(3), None], dtype=object), age=np.array([40.0, 50.0]))
    np.save(w / "alone.npy", np.zeros((2, 1024), np.float32))
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (32768, 1024)})
    with zipfile.ZipFile(w / "inflating.npz", "w", zipfile.ZIP_DEFLATED) as zf:   # 128 MiB of zeros from 130 KB
        zf.writestr("signals.npy", header.getvalue() + bytes(128 << 20))
    with h5py.File(w / "linked.mat", "w") as f:     # PulseDB layout whose signals live in another file
        f.create_group("Subset")["Signals"] = h5py.ExternalLink(str(w / "elsewhere.h5"), "/Subset/Signals")
        f["Subset"].create_dataset("Age", data=[[40.0]])
    (w / "wfdb").mkdir()          # a header that claims 10^9 samples of a 2-byte signal file
    (w / "wfdb" / "big.hea").write_text("big 1 125 1000000000\nbig.dat 16 200/NU 16 0 0 0 0 PLETH\n")
    (w / "wfdb" / "big.dat").write_bytes(b"\x00\x01")
    (w / "wfdb" / "labels.csv").write_text("record,age\nbig,40\n")
    np.savez(w / "ragged.npz", signals=np.zeros((3, 1024), np.float32), age=np.array([40.0, 50.0]))
    (w / "rec").mkdir()
    t = np.arange(5000) / 125.0
    pd.DataFrame({"t": t, "red": np.sin(t), "ir": np.cos(t)}).to_csv(w / "rec" / "two.csv", index=False)
    pd.DataFrame({"record": ["two"], "age": [40.0]}).to_csv(w / "rec" / "labels.csv", index=False)
    (w / "nolabels").mkdir()
    pd.DataFrame({"ppg": np.sin(t)}).to_csv(w / "nolabels" / "r.csv", index=False)
    (w / "months").mkdir()
    np.save(w / "months" / "s.npy", np.random.default_rng(0).standard_normal((4, 1024)).astype(np.float32))
    pd.DataFrame({"age": [480.0, 600.0, 720.0, 500.0]}).to_csv(w / "months" / "s.csv", index=False)
    (w / "empty").mkdir()
    (w / "slow").mkdir()           # a 10 Hz recording: below the minimum rate
    t10 = np.arange(600) / 10.0
    pd.DataFrame({"t": t10, "ppg": np.sin(2 * np.pi * 1.2 * t10)}).to_csv(w / "slow" / "s.csv", index=False)
    pd.DataFrame({"record": ["s"], "age": [40.0]}).to_csv(w / "slow" / "labels.csv", index=False)
    (w / "outside").mkdir()        # a label row that names a file in another folder
    pd.DataFrame({"ppg": np.sin(t)}).to_csv(w / "outside" / "r.csv", index=False)
    pd.DataFrame({"record": ["r", "../nolabels/r"], "age": [40.0, 50.0]}).to_csv(w / "outside" / "labels.csv",
                                                                                index=False)
    (w / "unlabelled").mkdir()     # the only recording has no label row
    pd.DataFrame({"ppg": np.sin(t)}).to_csv(w / "unlabelled" / "r.csv", index=False)
    pd.DataFrame({"record": ["other"], "age": [40.0]}).to_csv(w / "unlabelled" / "labels.csv", index=False)

    for name, change in {
        "data-badjson": None, "data-v99": lambda m: m.update(schema_version=99),
        "data-dotdot": lambda m: m["splits"]["train"]["shards"][0].update(file="../../etc/passwd"),
        "data-abs": lambda m: m["splits"]["train"]["shards"][0].update(file="/etc/passwd"),
        "data-nosplits": lambda m: m.pop("splits"),
        "data-nanstd": lambda m: m["labels"]["age"].update(std=float("nan")),
        "data-sourcelist": lambda m: m.update(source=[]),
        "data-badband": lambda m: m["source"].update(conditioning={"band_limit": {
            "filter": "cheby2", "order": 4, "stopband_db": 20, "high_hz": 1e9}}),
        "data-truncated": None, "data-missing": None, "data-nomanifest": None, "data-good": None,
    }.items():
        shutil.copytree(smoke_data, w / name)
        manifest = w / name / "manifest.json"
        if change:
            edit_json(manifest, change)
    (w / "data-badjson" / "manifest.json").write_text("{not json")
    shard = next((w / "data-truncated").glob("train-*.tfrecord"))
    shard.write_bytes(shard.read_bytes()[:100])
    next((w / "data-missing").glob("train-*.tfrecord")).unlink()
    (w / "data-nomanifest" / "manifest.json").unlink()

    for name in ("run", "run-badrunjson", "run-badckpt", "model-badmeta", "model-nanmeta", "model-notzip",
                 "model-lambda", "model-badprior", "model-badband", "model-nolabels", "model-badlabels", "model-badeq",
                 "model-badprivacy"):
        shutil.copytree(trained_run, w / name)
    (w / "run-badrunjson" / "run.json").write_text("[]")
    for f in (w / "run-badckpt" / "checkpoints").glob("ckpt-*.data-*"):
        f.write_bytes(b"\0" * 64)
    (w / "model-badmeta" / "model" / "meta.json").write_text("{")
    edit_json(w / "model-nanmeta" / "model" / "meta.json", lambda m: m.update(condition_std=[float("nan")]))
    edit_json(w / "model-badband" / "model" / "meta.json",
              lambda m: m.update(band_limit={"filter": "os.system", "order": 4, "stopband_db": 20, "high_hz": 10}))
    edit_json(w / "model-badeq" / "model" / "meta.json", lambda m: m["equalizer"]["gain"].__setitem__(3, 100.0))
    edit_json(w / "model-badprivacy" / "model" / "meta.json",   # a guarantee the model never had
              lambda m: m.update(privacy={"epsilon": "0.1", "delta": 1e-5, "steps": 1, "noise_multiplier": 1,
                                          "clip_norm": 1, "sample_rate": 0.1}))
    (w / "model-nolabels" / "model" / "label_summary.json").unlink()
    edit_json(w / "model-badlabels" / "model" / "label_summary.json",   # one subject's row, as a cell
              lambda m: m["bands"][0]["cells"][0].update(subjects=1, mean="__import__('os')"))
    (w / "model-notzip" / "model" / "decoder.keras").write_text("not a zip")
    decoder = w / "model-lambda" / "model" / "decoder.keras"
    with zipfile.ZipFile(decoder) as zf:
        parts = {n: zf.read(n) for n in zf.namelist()}
    config = json.loads(parts["config.json"])
    config["config"]["layers"][-1] = {"module": "keras.layers", "class_name": "Lambda", "config": {
        "function": {"class_name": "__lambda__", "config": {"code": "ZXZpbA=="}}}}
    parts["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(decoder, "w") as zf:
        for n, data in parts.items():
            zf.writestr(n, data)
    (w / "model-badprior" / "model" / "latent_prior.npz").write_bytes(b"PK\x03\x04broken")
    np.savez(w / "synthetic-noage.npz", signals=np.zeros((2, 1024), np.float32), labels=np.zeros((2, 1)),
             label_names=np.array(["bmi"]), request=np.array("{}"), model_id=np.array("x"))
    return w


def cases(w, out):
    """(case id, argv, what the one error line must name)."""
    prep = ["prep", "--config", str(SMOKE), "--out", str(out)]
    train = ["train", "--config", str(SMOKE), "--run-dir", str(out / "run")]
    trained = ["train", "--config", str(SMOKE), "--data", str(w / "data-good")]
    gen = ["generate", "--ages", "30:40", "--n-per-age", "2", "--out", str(out / "g.npz")]
    return [
        ("config-missing", ["prep", "--config", str(w / "nope.yaml"), "--out", str(out)], "cannot read config"),
        ("config-directory", ["prep", "--config", str(w), "--out", str(out)], "cannot read config"),
        ("config-bad-yaml", ["prep", "--config", str(w / "bad.yaml"), "--out", str(out)], "not valid YAML"),
        ("config-top-level-list", ["prep", "--config", str(w / "list.yaml"), "--out", str(out)], "top level"),
        ("config-unknown-key", ["prep", "--config", str(w / "unknown.yaml"), "--out", str(out)], "model.latnt_dim"),
        ("config-wrong-type", ["prep", "--config", str(w / "type.yaml"), "--out", str(out)], "train.epochs"),
        ("config-nan", ["prep", "--config", str(w / "nan.yaml"), "--out", str(out)], "'train.learning_rate' is nan"),
        ("override-negative-beta", prep + ["model.beta=-3"], "'model.beta' is -3.0"),
        ("override-fraction", prep + ["data.val_fraction=1.5"], "'data.val_fraction' is 1.5"),
        ("override-choice", prep + ["data.normalization=l2"], "'data.normalization' is 'l2'"),
        ("override-condition", prep + ["model.conditions=[shoe]"], "model.conditions"),
        ("override-category-name", prep + ["data.categories=[../x]"], "'data.categories' entry '../x'"),
        ("simulator-categories", prep + ["data.categories=[source]"], "data.categories needs --source files"),
        ("override-shape", prep + ["data.signal_length=1000"], "not divisible"),
        ("override-stray", prep + ["stray"], "'stray'"),
        ("override-bad-yaml", prep + ["train.epochs=[1"], "not valid YAML"),
        ("override-unknown", prep + ["train.epochz=2"], "train.epochz"),
        ("source-missing", prep + ["--source", str(w / "none.pickle")], "no such file"),
        ("source-hostile-pickle", prep + ["--source", str(w / "evil.pickle")], "refused to load 'os.system'"),
        ("source-pickle-bomb", prep + ["--source", str(w / "bomb.pickle")], "MiB a pickle of this size may use"),
        ("source-truncated-pickle", prep + ["--source", str(w / "truncated.pickle")], "unreadable pickle"),
        ("source-pickle-not-dict", prep + ["--source", str(w / "list.pickle")], "expected a dict"),
        ("source-npz-no-signals", prep + ["--source", str(w / "nosignals.npz")], "no 'signals' array"),
        ("source-npz-objects", prep + ["--source", str(w / "objects.npz")], "objects.npz"),
        ("source-npz-inflating", prep + ["--source", str(w / "inflating.npz")], "refused before reading"),
        ("source-npz-ragged-labels", prep + ["--source", str(w / "ragged.npz")], "one label value per row"),
        ("source-hdf5-external-link", prep + ["--source", str(w / "linked.mat")], "is an external link to"),
        ("source-wfdb-header-claims-more", prep + ["--source", str(w / "wfdb")], "claims 1000000000 samples"),
        ("source-npy-no-table", prep + ["--source", str(w / "alone.npy")], "no label table"),
        ("source-csv-two-columns", prep + ["--source", str(w / "rec" / "two.csv")], "several numeric columns"),
        ("source-csv-no-labels", prep + ["--source", str(w / "nolabels" / "r.csv"), "--fs", "125"],
         "labels.csv not found"),
        ("source-label-units", prep + ["--source", str(w / "months" / "s.npy"), "data.labels=[age]"], "wrong unit"),
        ("source-rate-too-low", prep + ["--source", str(w / "slow")], "1 recordings below 18 Hz"),
        ("source-label-outside", prep + ["--source", str(w / "outside"), "--fs", "125"],
         "record '../nolabels/r' is not a plain record name"),
        ("source-no-label-row", prep + ["--source", str(w / "unlabelled"), "--fs", "125"],
         "1 recordings without a label row"),
        ("source-empty-dir", prep + ["--source", str(w / "empty")], "no .pickle/.npz"),
        ("source-time-column", prep + ["--source", str(w / "rec" / "two.csv"), "data.raw_column=t"], "time axis"),
        ("flag-fs-negative", prep + ["--fs", "-5"], "--fs -5.0"),
        ("flag-fs-nan", prep + ["--fs", "nan"], "--fs nan"),
        ("prep-other-dataset", ["prep", "--config", str(SMOKE), "--out", str(w / "data-good"),
                                "simulate.n_subjects=61"], "already holds a different dataset"),
        ("manifest-absent", train + ["--data", str(w / "data-nomanifest")], "manifest.json not found"),
        ("manifest-bad-json", train + ["--data", str(w / "data-badjson")], "not valid JSON"),
        ("manifest-version", train + ["--data", str(w / "data-v99")], "schema version 99"),
        ("manifest-dotdot", train + ["--data", str(w / "data-dotdot")], "not a plain file name"),
        ("manifest-absolute", train + ["--data", str(w / "data-abs")], "not a plain file name"),
        ("manifest-missing-key", train + ["--data", str(w / "data-nosplits")], "missing key 'splits'"),
        ("manifest-nan", train + ["--data", str(w / "data-nanstd")], "label 'age'"),
        ("manifest-band-limit", train + ["--data", str(w / "data-badband")], "source.conditioning: band_limit"),
        ("manifest-source", train + ["--data", str(w / "data-sourcelist")], "'source' has an invalid value"),
        ("shard-truncated", train + ["--data", str(w / "data-truncated")], "the manifest says"),
        ("shard-missing", train + ["--data", str(w / "data-missing")], "shard listed in the manifest is missing"),
        ("run-exists", trained + ["--run-dir", str(w / "run")], "already holds a run"),
        ("run-other-config", trained + ["--run-dir", str(w / "run"), "--resume", "model.latent_dim=8"],
         "was trained with model.latent_dim=4"),
        ("run-json-corrupt", trained + ["--run-dir", str(w / "run-badrunjson"), "--resume"], "run.json is unreadable"),
        ("run-checkpoints-corrupt", trained + ["--run-dir", str(w / "run-badckpt"), "--resume"], "reads back whole"),
        ("model-none", gen + ["--model", str(w / "empty")], "holds no exported model"),
        ("model-meta-json", gen + ["--model", str(w / "model-badmeta")], "meta.json is not valid JSON"),
        ("model-meta-nan", gen + ["--model", str(w / "model-nanmeta")], "meta.json"),
        ("model-meta-band-limit", gen + ["--model", str(w / "model-badband")], "meta.json: band_limit"),
        ("model-not-zip", gen + ["--model", str(w / "model-notzip")], "not a Keras model file"),
        ("model-lambda-layer", gen + ["--model", str(w / "model-lambda")], "refused to load keras.layers.Lambda"),
        ("model-bad-prior", gen + ["--model", str(w / "model-badprior")], "latent_prior.npz is unreadable"),
        ("model-meta-equalizer", gen + ["--model", str(w / "model-badeq")], "meta.json: equalizer"),
        ("model-meta-privacy", gen + ["--model", str(w / "model-badprivacy")], "meta.json: a value is missing"),
        ("model-no-labels", gen + ["--model", str(w / "model-nolabels")], "label_summary.json is missing"),
        ("model-bad-labels", gen + ["--model", str(w / "model-badlabels")], "a cell that is not a count of 10"),
        ("generate-unconditioned-label", gen + ["--model", str(w / "run"), "--label", "sex=F"],
         "conditioned on age only"),
        ("generate-unknown-category", gen + ["--model", str(w / "run"), "--label", "source=x"],
         "--label source: this model is conditioned on age only"),
        ("generate-bad-ages", ["generate", "--model", str(w / "run"), "--ages", "abc", "--n-per-age", "2",
                               "--out", str(out / "g.npz")], "--ages 'abc'"),
        ("generate-zero-per-age", ["generate", "--model", str(w / "run"), "--ages", "30:40", "--n-per-age", "0",
                                   "--out", str(out / "g.npz")], "--n-per-age 0"),
        ("generate-not-npz", ["generate", "--model", str(w / "run"), "--ages", "30:40", "--n-per-age", "2",
                              "--out", str(out / "g.csv")], ".npz"),
        ("evaluate-config", ["evaluate", "--synthetic", str(w / "x.npz"), "--data", str(w / "run"), "--out",
                             str(out), "--config", str(SMOKE)], "unrecognized arguments: --config"),
        ("evaluate-not-npz", ["evaluate", "--synthetic", str(w / "bad.yaml"), "--data", str(w / "data-good"),
                              "--out", str(out)], "not a ppg-cvae generate .npz"),
        ("evaluate-no-age", ["evaluate", "--synthetic", str(w / "synthetic-noage.npz"), "--data",
                             str(w / "data-good"), "--out", str(out)], "has no 'age' label"),
        ("evaluate-model-not-a-run", ["evaluate", "--synthetic", str(w / "synthetic-noage.npz"), "--data",
                                      str(w / "data-good"), "--out", str(out), "--model", str(w / "empty")],
         "holds no exported model"),
        ("flag-unknown", prep + ["--bogus"], "unrecognized arguments: --bogus"),
        ("flag-missing", ["prep", "--out", str(out)], "required: --config"),
        ("launch-no-command", ["launch", "--np", "2"], "give the subcommand"),
        ("elastic-no-hosts-file", ["launch", "--elastic", "--max-np", "2", "--hosts-file", str(w / "nohosts"), "--",
                                   "train"], "--hosts-file"),
        ("elastic-bad-hosts-file", ["launch", "--elastic", "--max-np", "2", "--hosts-file", str(w / "bad.yaml"),
                                    "--", "train"], "use host:slots"),
        ("elastic-min-above-max", ["launch", "--elastic", "--min-np", "3", "--max-np", "2", "--hosts-file",
                                   str(w / "hosts"), "--", "train"], "--min-np (3)"),
        ("elastic-with-hosts", ["launch", "--elastic", "--hosts", "a:2", "--max-np", "2", "--", "train"],
         "drop --hosts"),
        ("tensorboard-not-a-run", ["tensorboard", str(w / "empty")], "no tensorboard/"),
    ]


def test_every_hostile_input_is_one_line_exit_2_and_changes_nothing(world, tmp_path):
    before = snapshot(world)
    table = cases(world, tmp_path / "out-CASE")
    assert len(table) >= 40 and len({c[0] for c in table}) == len(table)

    def run(case):
        name, argv, needle = case
        out = tmp_path / f"out-{name}"
        argv = [a.replace(str(tmp_path / "out-CASE"), str(out)) for a in argv]
        return name, needle, cli(*argv, timeout=300)

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(run, table))
    failures = []
    for name, needle, result in results:
        errors = [line for line in result.stderr.splitlines() if line.startswith("ppg-cvae") and "error:" in line]
        if result.returncode != 2 or len(errors) != 1 or "Traceback" in result.stderr or needle not in errors[0]:
            failures.append(f"{name}: exit {result.returncode}: {result.stderr[-600:]}")
    assert not failures, "\n\n".join(failures)
    assert snapshot(world) == before                    # no existing input or output changed
    assert not (world / "executed").exists()            # the hostile pickle ran nothing
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("out-")) == []
