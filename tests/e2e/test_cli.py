"""The ppg-cvae command line: every subcommand's --help, doctor, and one-line user errors."""
import re

import pytest

from conftest import REPO, SMOKE, cli


def subcommands():
    """{name: its argparse parser}, from the parser itself."""
    from launch.cli import build_parser
    action = next(a for a in build_parser()._actions if a.dest == "command")
    return action.choices


def test_top_level_help_lists_subcommands():
    result = cli("--help")
    assert result.returncode == 0
    assert len(subcommands()) >= 8 and all(name in result.stdout for name in subcommands())


@pytest.mark.parametrize("command", ["prep", "train", "generate", "evaluate", "demo", "launch", "tensorboard",
                                     "doctor"])
def test_subcommand_help_explains_every_flag(command):
    parser = subcommands()[command]
    options = [a for a in parser._actions if a.option_strings and a.dest != "help"]
    assert all(a.help and len(a.help) > 10 for a in options), [a.dest for a in options if not a.help]
    result = cli(command, "--help")
    assert result.returncode == 0, result.stderr
    for action in options:
        assert any(re.search(rf"(^|\s){re.escape(flag)}\b", result.stdout) for flag in action.option_strings), \
            action.option_strings
    takes_overrides = any(a.dest == "overrides" for a in parser._actions)
    assert ("key.sub=value" in result.stdout) == takes_overrides


def test_doctor_reports_tensorflow_and_gloo():
    result = cli("doctor")
    assert result.returncode == 0, result.stdout + result.stderr
    tf_version = re.search(r'TF_VERSION = "([0-9.]+)"', (REPO / "setup.py").read_text()).group(1)
    assert re.search(rf"tensorflow\s+{re.escape(tf_version)}\n", result.stdout)
    assert re.search(rf"keras\s+tf-keras {re.escape(tf_version)} \(Keras 2", result.stdout)
    assert re.search(r"build: PyPI sdist \+ horovod-0\.28\.1\.patch \(sha256 [0-9a-f]{12}\), against TensorFlow "
                     rf"{re.escape(tf_version)}", result.stdout)
    assert "frameworks: TensorFlow" in result.stdout
    assert re.search(r"controllers: .*Gloo", result.stdout)
    assert re.search(r"NCCL: (not built|2\.\d+\.\d+)", result.stdout)        # the GPU build says its version
    assert re.search(r"horovodrun\s+/\S+/horovodrun", result.stdout)


def one_line_error(result, *needles):
    assert result.returncode != 0
    lines = [l for l in result.stderr.strip().splitlines() if "ppg-cvae" in l and "error" in l]
    assert len(lines) == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0]


def test_unknown_key_on_command_line(tmp_path):
    one_line_error(cli("prep", "--config", str(SMOKE), "--out", str(tmp_path), "train.epochz=2"),
                   "train.epochz")


def test_non_override_argument_is_rejected(tmp_path):
    one_line_error(cli("prep", "--config", str(SMOKE), "--out", str(tmp_path), "stray"), "stray")


def test_train_without_dataset(tmp_path):
    one_line_error(cli("train", "--config", str(SMOKE), "--data", str(tmp_path / "none"), "--run-dir",
                       str(tmp_path / "run")), "manifest.json not found")


def test_generate_without_model(tmp_path):
    one_line_error(cli("generate", "--model", str(tmp_path), "--ages", "20:30", "--n-per-age", "2",
                       "--out", str(tmp_path / "x.npz")), "holds no exported model")


def test_a_bad_dataset_or_request_is_refused_before_tensorflow_loads(tmp_path, smoke_data):
    """train, generate and evaluate check what they are given first: a refusal costs no TensorFlow import."""
    import subprocess
    import sys
    out, bad = str(tmp_path / "x.npz"), tmp_path / "bad.npz"
    bad.write_bytes(b"PK not a zip")
    report = ["--out", str(tmp_path / "report")]
    runs = [["train", "--config", str(SMOKE), "--data", str(tmp_path / "none"), "--run-dir", str(tmp_path / "r")],
            ["generate", "--model", str(tmp_path), "--ages", "20:30", "--n-per-age", "2", "--out", out],
            ["generate", "--model", str(tmp_path), "--ages", "abc", "--n-per-age", "2", "--out", out],
            ["evaluate", "--synthetic", str(bad), "--data", str(tmp_path / "none")] + report,
            ["evaluate", "--synthetic", str(bad), "--data", str(smoke_data)] + report,
            ["evaluate", "--synthetic", str(bad), "--data", str(smoke_data), "--model", str(tmp_path)] + report]
    code = f"import sys; from launch.cli import main; print([main(a) for a in {runs!r}], 'tensorflow' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "[2, 2, 2, 2, 2, 2] False", result.stdout + result.stderr[-2000:]
    for needle in ("manifest.json not found", "--synthetic " + str(bad), "holds no exported model"):
        assert needle in result.stderr, (needle, result.stderr[-2000:])
    assert not (tmp_path / "report").exists()
