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

    # The experiment's own group_size wins over the top-level one.
    one_each = training_groups("width", {**exp, "group_size": 1}, group_size=3)
    assert len(one_each) == len(models)
    assert training_groups("width", {**exp, "group_size": None}, group_size=3) == small


def test_an_experiment_left_out_is_not_run():
    cfg = validate_config({"experiments": {}})
    assert cfg["experiments"] == {}


def test_variant_grids_expand_into_named_models():
    cfg = validate_config(
        {
            "experiments": {
                "mix": {
                    "widths": [10],
                    "seeds": [0],
                    "regularisers": ["none", "weight_decay", "batch_norm"],
                    "train_sizes": [100],
                    "label_noise": [0.0, 0.1],
                    "training": {"weight_decay": 0.0, "grad_clip": 0.5},
                }
            }
        }
    )
    models = {
        m["model_id"]: m for m in experiment_models("mix", cfg["experiments"]["mix"])
    }
    assert sorted(models) == sorted(
        f"w010{r}-n100-p{p}-s0" for r in ("", "-wd", "-bn") for p in (0, 10)
    )
    wd = models["w010-wd-n100-p10-s0"]
    assert wd["optim"] == {"weight_decay": 0.01, "grad_clip": 0.5}
    assert wd["view"] == {"train_size": 100, "label_noise": 0.1, "seed": 0}
    assert models["w010-bn-n100-p0-s0"]["model"]["batch_norm"] is True
    assert models["w010-n100-p0-s0"]["optim"]["weight_decay"] == 0.0
    # One training job per seed holds every variant.
    assert [
        len(g["models"]) for g in training_groups("mix", cfg["experiments"]["mix"])
    ] == [6]


@pytest.mark.parametrize(
    "experiment, named",
    [
        ({"train_sizes": [5000]}, "more than the 4000 training examples"),
        ({"train_sizes": [5]}, "metrics.knn_k"),
        ({"label_noise": [0.125]}, "whole percentage"),
        ({"diameters": {"epochs": [40]}}, "diameters.epochs"),
        ({"code_epochs": [], "diameters": {"epochs": [3, 1]}}, "strictly increasing"),
    ],
)
def test_impossible_grids_stop_before_any_work(experiment, named):
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        validate_config({"experiments": {"x": {"dataset": "mnist5k", **experiment}}})


def test_cnn_that_cannot_take_the_images_stops_before_any_work():
    small = {"dataset": "digits", "archs": ["vgg18", "densenet28"]}
    with pytest.raises(ConfigError, match="densenet28 needs images of at least 13x13"):
        validate_config({"experiments": {"c": small}})
    validate_config({"experiments": {"c": {**small, "dataset": "mnist5k"}}})


def test_mlp_keys_in_a_cnn_experiment_are_refused_not_ignored():
    cnn = {"dataset": "mnist5k", "archs": ["vgg18"]}
    with pytest.raises(ConfigError, match=r"experiments\.c\.widths': widths applies"):
        validate_config({"experiments": {"c": {**cnn, "widths": [10]}}})
    cfg = validate_config({"experiments": {"c": cnn}})
    assert validate_config(cfg) is cfg  # defaults filled in are not "set"


def test_table5_epochs_must_fit_the_random_labels_run():
    bad = {
        "table5_epochs": [0, 100],
        "experiments": {
            "random_labels": {"dataset": "random", "training": {"epochs": 30}}
        },
    }
    with pytest.raises(ConfigError, match="table5_epochs"):
        validate_config(bad)


def test_experiments_sharing_a_yaml_anchor_are_refused():
    text = """
experiments:
  a: {widths: [3], training: &t {epochs: 2}}
  b: {widths: [4], training: *t}
"""
    with pytest.raises(ConfigError, match="a.training and b.training share one"):
        validate_config(yaml.safe_load(text))


def test_paper_preset_overlays_the_quick_config_per_experiment(config):
    # Snakemake merges --configfile values into the loaded config key by key.
    with open(REPO / "presets/paper.yaml") as fh:
        paper = yaml.safe_load(fh)

    def merge(base, over):
        for key, value in over.items():
            if isinstance(value, dict) and isinstance(base.get(key), dict):
                merge(base[key], value)
            else:
                base[key] = value

    merge(config, paper)
    validate_config(config)
    exps = config["experiments"]
    assert exps["width"]["training"]["epochs"] == 2000
    assert exps["diameters"]["training"]["epochs"] == 500
    assert exps["time_cifar"]["training"]["batch_size"] == 64
    assert exps["time_cifar"]["training"]["lr_step"] == 20
    assert exps["size_mnist"]["dataset"] == "mnist"


def test_cnn_experiments_name_their_models_by_architecture():
    cfg = validate_config(
        {
            "experiments": {
                "cnn": {
                    "archs": ["vgg18", "resnet20"],
                    "multiplier": 0.25,
                    "seeds": [0, 1],
                    "training": {"optimizer": "sgd"},
                }
            }
        }
    )
    models = experiment_models("cnn", cfg["experiments"]["cnn"])
    assert [m["model_id"] for m in models] == [
        "vgg18-s0",
        "resnet20-s0",
        "vgg18-s1",
        "resnet20-s1",
    ]
    assert models[1]["model"] == {"arch": "cnn", "name": "resnet20", "multiplier": 0.25}
    with pytest.raises(ConfigError, match="archs"):
        validate_config({"experiments": {"cnn": {"archs": ["alexnet"]}}})


def test_runtime_requests_scale_with_the_work_and_obey_fixed_values():
    from neuralcode.config import memory_mb, mlp_parameters, runtime_minutes

    # 784*10 + 10 weights and biases in, 10*10 + 10 out.
    assert mlp_parameters(784, 10, 1) == 7960
    assert mlp_parameters(4, 3, 2) == 4 * 3 + 3 + 3 * 3 + 3 + 3 * 10 + 10
    cfg = validate_config(
        {
            "experiments": {
                "m": {
                    "dataset": "mnist5k",
                    "widths": [10],
                    "seeds": [0],
                    "code_epochs": [10],
                    "training": {"epochs": 10},
                },
                "c": {
                    "dataset": "digits",
                    "archs": ["vgg18", "resnet18"],
                    "seeds": [0],
                    "code_epochs": [3],
                    "training": {"epochs": 3},
                },
            },
            # 4000 examples / batch 128 = 32 steps x 10 epochs x 7960
            # parameters = 2,547,200 parameter-steps: 60 s at this speed.
            "compute": {"mlp_parameter_steps_per_second": 2547200 / 60},
        }
    )
    mlp, cnn = cfg["experiments"]["m"], cfg["experiments"]["c"]
    mlps, cnns = experiment_models("m", mlp), experiment_models("c", cnn)
    # 10 min + 1.5 x 1 min, rounded up.
    assert runtime_minutes("train", mlp, mlps, cfg) == 12
    # 2 CNNs x 3 epochs x 1,500 examples at 60 s per 10,000: 54 s.
    assert runtime_minutes("train", cnn, cnns, cfg) == 10 + 2
    assert runtime_minutes("train", mlp, mlps + mlps, cfg) == 10 + 3
    assert runtime_minutes("code_metrics", mlp, mlps, cfg) == 60
    assert runtime_minutes("code_metrics", cnn, cnns, cfg) == 300
    assert memory_mb("code_metrics", mlp, cfg) == 4000
    assert memory_mb("code_metrics", cnn, cfg) == 16000
    cfg["compute"]["mem_mb"] = {"code_metrics": 64000}
    assert memory_mb("code_metrics", mlp, cfg) == 64000
    assert memory_mb("train", cnn, cfg) == 16000
    cfg["compute"]["runtime_minutes"] = {"code_metrics": 240, "train": 7}
    assert runtime_minutes("code_metrics", cnn, cnns, cfg) == 240
    assert runtime_minutes("train", mlp, mlps, cfg) == 7
