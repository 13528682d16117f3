"""Config loading: YAML into typed dataclasses, overrides, and one-line errors that name the key and file."""
import dataclasses
import typing
from pathlib import Path

import pytest

from conftest import REPO
from cvae.config import RANGES, Config, load_config, save_config
from data_prep.common import UserError

CONFIGS = sorted((REPO / "configs").glob("*.yaml"))


def write(tmp_path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_load(path):
    cfg = load_config(path)
    assert isinstance(cfg, Config)


def test_required_configs_exist():
    assert {p.name for p in CONFIGS} >= {"demo.yaml", "smoke.yaml", "default.yaml", "seed_reference.yaml"}


def test_default_config_makes_the_reference_study_cohort_and_model():
    """What the configs produce, not what they say: the simulator's row table and the built encoder."""
    from cvae.model.network import CVAE
    from data_prep.simulate import segment_table, simulate_subjects

    default = load_config(CONFIGS[0].parent / "default.yaml")
    rows = segment_table(simulate_subjects(default.simulate, default.data.seed), default.simulate.segments_per_subject)
    assert len(rows) == 327_054 and rows["subject_id"].nunique() * default.simulate.segments_per_subject == len(rows)
    assert 18 <= rows["age"].min() and rows["age"].max() <= 98
    ref = load_config(CONFIGS[0].parent / "seed_reference.yaml")
    encoder = CVAE(ref.model, ref.data.signal_length, len(ref.model.conditions)).encoder
    convs = [layer for layer in encoder.layers if layer.__class__.__name__ == "Conv1D"]
    assert [c.filters for c in convs] == [64, 128, 256] and {c.activation.__name__ for c in convs} == {"tanh"}


def test_unknown_nested_key_names_path_and_file(tmp_path):
    path = write(tmp_path, "model:\n  latnt_dim: 4\n")
    with pytest.raises(UserError) as exc:
        load_config(path)
    msg = str(exc.value)
    assert "model.latnt_dim" in msg and str(path) in msg and "\n" not in msg


def test_unknown_section(tmp_path):
    with pytest.raises(UserError, match="unknown key 'trainer'"):
        load_config(write(tmp_path, "trainer: {}\n"))


def test_wrong_type_names_key(tmp_path):
    with pytest.raises(UserError, match=r"'train.epochs': expected int, got 'ten'"):
        load_config(write(tmp_path, "train:\n  epochs: ten\n"))
    with pytest.raises(UserError, match=r"'model.filters\[1\]': expected int"):
        load_config(write(tmp_path, "model:\n  filters: [8, x]\n"))
    with pytest.raises(UserError, match="'train.scale_lr': expected bool"):
        load_config(write(tmp_path, "train:\n  scale_lr: 3\n"))


def test_int_accepted_for_float(tmp_path):
    assert load_config(write(tmp_path, "train:\n  learning_rate: 1\n")).train.learning_rate == 1.0


def test_invalid_yaml_and_missing_file(tmp_path):
    with pytest.raises(UserError, match="not valid YAML"):
        load_config(write(tmp_path, "train: [\n"))
    with pytest.raises(UserError, match="cannot read config"):
        load_config(tmp_path / "nope.yaml")


def test_value_checks(tmp_path):
    with pytest.raises(UserError, match="'data.normalization' is 'l2'"):
        load_config(None, ["data.normalization=l2"])
    with pytest.raises(UserError, match="'train.batch_size' is 0; it must be >= 1"):
        load_config(None, ["train.batch_size=0"])
    with pytest.raises(UserError, match="model.conditions"):
        load_config(None, ["model.conditions=[shoe_size]"])


def test_overrides_apply_and_are_typed():
    cfg = load_config(CONFIGS[0].parent / "smoke.yaml", ["train.epochs=7", "model.filters=[4, 8]", "data.fs=100"])
    assert cfg.train.epochs == 7 and cfg.model.filters == [4, 8] and cfg.data.fs == 100.0


@pytest.mark.parametrize("bad, match", [
    ("train.epochs", "not of the form key.sub=value"),
    ("=3", "not of the form"),
    ("train..epochs=3", "not of the form"),
    ("train.epochz=3", "unknown key 'train.epochz'"),
    ("train.epochs=[1", "not valid YAML"),
    ("train.epochs=abc", "expected int"),
])
def test_bad_overrides(bad, match):
    with pytest.raises(UserError, match=match):
        load_config(None, [bad])


def test_saved_config_round_trips(tmp_path):
    cfg = load_config(None, ["train.epochs=9"])
    save_config(cfg, tmp_path / "resolved.yaml")
    assert load_config(tmp_path / "resolved.yaml") == cfg


def numeric_keys(cls=Config, prefix: str = "") -> list[str]:
    """Every config key whose value is a number, or a list or mapping of numbers, nested sections included."""
    keys = []
    for name, tp in typing.get_type_hints(cls).items():
        args = typing.get_args(tp)
        if dataclasses.is_dataclass(tp):
            keys += numeric_keys(tp, f"{prefix}{name}.")
        elif tp in (int, float) or (args and args[-1] in (int, float)):
            keys.append(f"{prefix}{name}")
    return keys


def test_every_numeric_key_has_a_range():
    keys = numeric_keys()
    assert len(keys) > 30
    assert sorted(set(keys) - set(RANGES)) == []
    assert sorted(set(RANGES) - set(keys)) == []


@pytest.mark.parametrize("override, message", [
    ("train.learning_rate=nan", "'train.learning_rate' is nan; it must lie in (0, 10]"),
    ("train.learning_rate=0", "'train.learning_rate' is 0.0; it must lie in (0, 10]"),
    ("train.learning_rate=-1e-3", "'train.learning_rate' is -0.001"),
    ("model.beta=-3", "'model.beta' is -3.0; it must be >= 0"),
    ("model.beta=.inf", "'model.beta' is inf; it must be >= 0"),
    ("train.min_delta=-.inf", "'train.min_delta' is -inf"),
    ("data.val_fraction=1", "'data.val_fraction' is 1.0; it must lie in [0, 1)"),
    ("data.max_bad_fraction=-0.1", "'data.max_bad_fraction' is -0.1"),
    ("data.window_overlap=.nan", "'data.window_overlap' is nan"),
    ("simulate.noise_std=2", "'simulate.noise_std' is 2.0; it must lie in [0, 1]"),
    ("train.epochs=0", "'train.epochs' is 0; it must be >= 1"),
    ("data.seed=-1", "'data.seed' is -1; it must be >= 0"),
    ("model.filters=[8, 0]", "'model.filters[1]' is 0; it must be >= 1"),
    ("data.label_scale={height: .nan}", "'data.label_scale.height' is nan; it must be > 0"),
    ("data.fs=.inf", "'data.fs' is inf"),
    ("data.val_fraction=0.95", "data.val_fraction + data.test_fraction is 1.05; it must stay below 1"),
])
def test_out_of_range_values_name_key_value_and_range(override, message):
    with pytest.raises(UserError) as exc:
        load_config(CONFIGS[0].parent / "smoke.yaml", [override])
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_range_boundaries_are_accepted():
    cfg = load_config(None, ["model.beta=0", "data.val_fraction=0", "train.min_delta=0", "train.patience=0",
                             "data.max_bad_fraction=0", "simulate.artifact_rate=1"])
    assert (cfg.model.beta, cfg.data.val_fraction, cfg.simulate.artifact_rate) == (0.0, 0.0, 1.0)
