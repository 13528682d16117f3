"""Generation from an exported model (no Horovod): determinism, label overrides, requests, outputs."""

import pytest

from cvae.generation.generate import parse_ages, parse_labels
from data_prep.common import UserError


def test_parse_ages():
    assert parse_ages("18:22").tolist() == [18, 19, 20, 21, 22]
    assert parse_ages("20:40:10").tolist() == [20, 30, 40]
    assert parse_ages("25,35").tolist() == [25, 35]
    for bad in ("a:b", "40:20", "20:40:0", "20:30:40:50", ""):
        with pytest.raises(UserError, match="--ages"):
            parse_ages(bad)


def test_parse_labels():
    assert parse_labels(["sex=F", "bmi=24"], ["age", "sex", "bmi"]) == {"sex": 1.0, "bmi": 24.0}
    assert parse_labels(["source=Watch 2"], ["age", "sex"]) == {"source": "Watch 2"}   # judged by the model
    for bad in (["Shoe=3"], ["bmi"], ["bmi=fat"], ["age=40"], ["../x=1"]):
        with pytest.raises(UserError, match="--label"):
            parse_labels(bad, ["age", "sex", "bmi"])
