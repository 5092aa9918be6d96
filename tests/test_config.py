import copy
from pathlib import Path

import pytest
import yaml

from neuralcode.config import (
    ConfigError,
    experiment_models,
    training_groups,
    validate_config,
)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def config():
    with open(REPO / "config.yaml") as fh:
        return yaml.safe_load(fh)


def test_repository_config_is_valid(config):
    validate_config(config)
    assert config["experiments"]["width"]["dataset"] == "mnist5k"


def test_defaults_fill_an_almost_empty_config():
    cfg = validate_config({"experiments": {"width": {}}})
    width = cfg["experiments"]["width"]
    assert width["widths"] == [3, 7, 10, 20, 40, 70, 100]
    assert width["training"]["batch_size"] == 128
    assert cfg["metrics"]["knn_k"] == 9
    assert cfg["group_size"] == 0


def set_key(config, path, value):
    node = config
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return config


@pytest.mark.parametrize(
    "path, value, named",
    [
        (("experiments", "width", "dataset"), "imagenet", "experiments.width.dataset"),
        (("experiments", "width", "widths"), [3, 0, 7], "experiments.width.widths[1]"),
        (("experiments", "width", "widths"), [3, -7], "experiments.width.widths[1]"),
        (
            ("experiments", "width", "code_epochs"),
            [30, 10],
            "experiments.width.code_epochs",
        ),
        (
            ("experiments", "width", "code_epochs"),
            [-1, 30],
            "experiments.width.code_epochs[0]",
        ),
        (
            ("experiments", "width", "code_epochs"),
            [10, 500],
            "experiments.width.code_epochs",
        ),
        (("experiments", "width", "widht"), [3], "'widht' was unexpected"),
        (("metrics", "knn"), 9, "'knn' was unexpected"),
        (("metrics", "logreg_scheme"), "ovr", "metrics.logreg_scheme"),
        (
            ("experiments", "width", "training", "lr"),
            0,
            "experiments.width.training.lr",
        ),
    ],
)
def test_bad_values_name_their_key(config, path, value, named):
    bad = set_key(copy.deepcopy(config), path, value)
    with pytest.raises(ConfigError) as err:
        validate_config(bad)
    assert named in str(err.value)


def test_models_and_groups(config):
    validate_config(config)
    exp = config["experiments"]["width"]
    models = experiment_models("width", exp)
    assert len(models) == len(exp["widths"]) * len(exp["seeds"])
    assert len({m["model_id"] for m in models}) == len(models)
    assert models[0]["model_id"] == "w003-s0"

    groups = training_groups("width", exp)
    assert [g["name"] for g in groups] == [f"width-s{s}-g0" for s in exp["seeds"]]
    for g in groups:
        assert len({m["seed"] for m in g["models"]}) == 1

    small = training_groups("width", exp, group_size=3)
    sizes = [len(g["models"]) for g in small if g["name"].startswith("width-s0-")]
    assert sizes == [3, 3, 1]
    flat = [m["model_id"] for g in small for m in g["models"]]
    assert sorted(flat) == sorted(m["model_id"] for m in models)


def test_an_experiment_left_out_is_not_run():
    cfg = validate_config({"experiments": {}})
    assert cfg["experiments"] == {}
