"""Validation of the workflow config and expansion of experiments into models.

The Snakefile calls :func:`validate_config` before any job is scheduled, so a
misspelled key or an impossible grid stops the run with a message that names the
key. The functions that turn an experiment into model ids and training groups
live here, not in the rules, so they can be tested without Snakemake.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import jsonschema
import yaml

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """The config breaks the schema or a rule the schema cannot express."""


def _with_defaults(validator_class):
    """A validator class that fills in schema defaults while it validates."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def properties(validator, props, instance, schema):
        if isinstance(instance, dict):
            for name, sub in props.items():
                if "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, props, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": properties})


def _shared_mappings(experiments) -> list[str]:
    """Names of experiments whose nested mappings are the same object."""
    if not isinstance(experiments, dict):
        return []
    owner, shared = {}, []
    for name, exp in experiments.items():
        if not isinstance(exp, dict):
            continue
        for key, value in exp.items():
            if isinstance(value, dict):
                first = owner.setdefault(id(value), f"{name}.{key}")
                if first != f"{name}.{key}":
                    shared.append(f"{first} and {name}.{key}")
    return shared


def _key_path(error) -> str:
    parts = []
    for p in error.absolute_path:
        parts.append(f"[{p}]" if isinstance(p, int) else f".{p}")
    return "".join(parts).lstrip(".") or "(top level)"


def load_schema(path=SCHEMA_PATH) -> dict:
    with open(path) as fh:
        return yaml.safe_load(fh)


def validate_config(config: dict, schema=None) -> dict:
    """Check ``config`` and fill in defaults, in place.

    Parameters
    ----------
    config : dict
        Merged config (config.yaml plus presets and ``--config`` overrides).
    schema : dict, optional
        Defaults to ``schemas/config.schema.yaml``.

    Returns
    -------
    dict
        The same object, completed with defaults.

    Raises
    ------
    ConfigError
        Naming every offending key.
    """
    schema = schema or load_schema()
    shared = _shared_mappings(config.get("experiments"))
    if shared:
        raise ConfigError(
            "experiments "
            + ", ".join(shared)
            + " share one mapping object (a YAML anchor and alias): an overlay "
            "config merged over one would silently change the others; write the "
            "values out in each experiment"
        )
    cls = _with_defaults(jsonschema.validators.validator_for(schema))
    errors = sorted(cls(schema).iter_errors(config), key=lambda e: list(e.path))
    problems = [f"  config key '{_key_path(e)}': {e.message}" for e in errors]
    if not errors:
        problems = _semantic_problems(config) + _ignored_keys(config, schema)
    if problems:
        raise ConfigError(
            "invalid config (see schemas/config.schema.yaml for every key):\n"
            + "\n".join(problems)
        )
    return config


# Training-split sizes, to check train_sizes before any work starts.
TRAIN_SPLIT_SIZES = {
    "mnist5k": 4000,
    "digits": 1500,
    "mnist": 60000,
    "fashion_mnist": 60000,
    "cifar10": 50000,
}

# Height (= width) of each dataset's images, and the smallest images each CNN
# runs on (every other CNN runs on any size; DenseNet-28's three transition
# pools need 13 pixels). tests/test_cnn.py checks both against forward passes.
IMAGE_SIZES = {
    "mnist5k": 28,
    "digits": 8,
    "random": 28,
    "mnist": 28,
    "fashion_mnist": 28,
    "cifar10": 32,
}
MIN_CNN_IMAGE_SIZE = {"densenet28": 13}
IMAGE_CHANNELS = {"cifar10": 3}  # every other dataset: 1

# Runtime requests (minutes) of the rules after training, by model kind: MLP
# jobs take minutes on a CPU; CNN codes are 10^4-10^5 bits per example
# (benchmarks/CNN.md estimates up to 72 min of extraction and 188 min of
# metrics per CIFAR-10 CNN at full width on a CPU).
RUNTIME_MINUTES = {
    "mlp": {"extract_codes": 30, "code_metrics": 60, "diameters": 30},
    "cnn": {"extract_codes": 120, "code_metrics": 300, "diameters": 60},
}
# Memory requests (MB). A full-width CIFAR-10 CNN's code store reaches 4 GB
# packed (benchmarks/CNN.md) and K-NN's index holds the training codes once
# more, so CNN metrics ask for 16 GB; MLP jobs stay under 2 GB here.
MEMORY_MB = {
    "mlp": {
        "train": 4000,
        "extract_codes": 2000,
        "code_metrics": 4000,
        "diameters": 2000,
    },
    "cnn": {
        "train": 16000,
        "extract_codes": 8000,
        "code_metrics": 16000,
        "diameters": 8000,
    },
}

REGULARISER_SUFFIX = {"batch_norm": "bn", "weight_decay": "wd", "grad_clip": "gc"}


def _sorted_epochs(key: str, epochs: list, last: int) -> list[str]:
    problems = []
    if list(epochs) != sorted(set(epochs)):
        problems.append(
            f"  config key '{key}': {epochs} must be strictly increasing "
            "(sorted, no repeats)"
        )
    if epochs and max(epochs) > last:
        problems.append(
            f"  config key '{key}': epoch {max(epochs)} is past the training's "
            f"{last} epochs"
        )
    return problems


# Keys of an experiment that only MLP grids use.
MLP_ONLY_KEYS = ("widths", "depth", "batch_norm", "regularisers")


def _ignored_keys(config: dict, schema: dict) -> list[str]:
    """MLP-only keys set away from their defaults in a CNN experiment, where
    they would be silently ignored."""
    defaults = schema["$defs"]["experiment"]["properties"]
    problems = []
    for name, exp in config["experiments"].items():
        if not exp["archs"]:
            continue
        for key in MLP_ONLY_KEYS:
            if exp[key] != defaults[key]["default"]:
                problems.append(
                    f"  config key 'experiments.{name}.{key}': {key} applies to "
                    f"MLP grids only, but this experiment trains the CNNs "
                    f"{exp['archs']}; remove it, or make another experiment"
                )
    return problems


def _semantic_problems(config: dict) -> list[str]:
    """Rules that JSON schema cannot state: epochs, sizes and ratios in range."""
    problems = []
    sizes = dict(TRAIN_SPLIT_SIZES, random=config["datasets"]["random"]["n_train"])
    for name, exp in config["experiments"].items():
        metrics = {**config["metrics"], **exp["metrics"]}
        key = f"experiments.{name}"
        last = exp["training"]["epochs"]
        problems += _sorted_epochs(f"{key}.code_epochs", exp["code_epochs"], last)
        problems += _sorted_epochs(
            f"{key}.diameters.epochs", exp["diameters"]["epochs"], last
        )
        n_train = sizes[exp["dataset"]]
        for size in exp["train_sizes"]:
            if size > n_train:
                problems.append(
                    f"  config key '{key}.train_sizes': {size} is more than the "
                    f"{n_train} training examples of {exp['dataset']}"
                )
        smallest = min(exp["train_sizes"], default=n_train)
        for what in ("knn_k", "kmeans_clusters"):
            if exp["code_epochs"] and metrics[what] > smallest:
                problems.append(
                    f"  config key 'metrics.{what}': {metrics[what]} is more than "
                    f"the {smallest} training examples of experiment {name!r}; "
                    f"raise its smallest train size or lower {what}"
                )
        size = IMAGE_SIZES[exp["dataset"]]
        for arch in exp["archs"]:
            if size < MIN_CNN_IMAGE_SIZE.get(arch, 1):
                problems.append(
                    f"  config key '{key}.archs': {arch} needs images of at least "
                    f"{MIN_CNN_IMAGE_SIZE[arch]}x{MIN_CNN_IMAGE_SIZE[arch]} pixels, "
                    f"but {exp['dataset']} has {size}x{size}; pick another dataset "
                    f"or drop {arch}"
                )
        for ratio in exp["label_noise"]:
            if abs(ratio * 100 - round(ratio * 100)) > 1e-9:
                problems.append(
                    f"  config key '{key}.label_noise': {ratio} is not a whole "
                    "percentage (e.g. 0.1 or 0.25)"
                )
    labels = config["experiments"].get("random_labels")
    if labels is not None:
        problems += _sorted_epochs(
            "table5_epochs", config["table5_epochs"], labels["training"]["epochs"]
        )
    return problems


def mlp_parameters(input_dim: int, width: int, depth: int, n_classes=10) -> int:
    """Weights and biases of an MLP (batch-norm parameters left out)."""
    hidden = input_dim * width + width + (depth - 1) * (width * width + width)
    return hidden + width * n_classes + n_classes


def model_kind(exp: dict) -> str:
    """ "cnn" for an experiment of named CNNs, else "mlp"."""
    return "cnn" if exp["archs"] else "mlp"


def memory_mb(rule: str, exp: dict, config: dict) -> int:
    """Megabytes a job of ``rule`` asks the scheduler for, for experiment
    ``exp``: ``compute.mem_mb`` when set, else the value for its model kind."""
    fixed = config["compute"]["mem_mb"]
    return fixed.get(rule, MEMORY_MB[model_kind(exp)][rule])


def runtime_minutes(rule: str, exp: dict, models: list[dict], config: dict) -> int:
    """Minutes a job of ``rule`` asks the scheduler for, for ``models`` (one
    training group) of experiment ``exp``; see the ``compute`` keys of
    schemas/config.schema.yaml."""
    compute = config["compute"]
    if rule in compute["runtime_minutes"]:
        return compute["runtime_minutes"][rule]
    kind = model_kind(exp)
    if rule != "train":
        return RUNTIME_MINUTES[kind][rule]
    n_train = dict(TRAIN_SPLIT_SIZES, random=config["datasets"]["random"]["n_train"])
    n_train = n_train[exp["dataset"]]
    epochs = exp["training"]["epochs"]
    if kind == "cnn":
        speed = compute["cnn_seconds_per_10k_examples"]
        seconds = len(models) * epochs * n_train / 1e4 * speed
    else:
        # Subsets are tiled to the full length: every model takes as many steps.
        steps = epochs * math.ceil(n_train / exp["training"]["batch_size"])
        size = IMAGE_SIZES[exp["dataset"]]
        input_dim = size * size * IMAGE_CHANNELS.get(exp["dataset"], 1)
        parameters = sum(
            mlp_parameters(input_dim, m["model"]["width"], m["model"]["depth"])
            for m in models
        )
        seconds = parameters * steps / compute["mlp_parameter_steps_per_second"]
    return 10 + math.ceil(1.5 * seconds / 60)


def model_id(
    width: int, seed: int, regulariser="none", train_size=None, noise_pct=None
) -> str:
    """Id of a model in paths and tables, e.g. ``w040-s0`` or ``w040-wd-n100-s1``."""
    parts = [f"w{width:03d}"]
    if regulariser != "none":
        parts.append(REGULARISER_SUFFIX[regulariser])
    if train_size is not None:
        parts.append(f"n{train_size}")
    if noise_pct is not None:
        parts.append(f"p{noise_pct}")
    return "-".join([*parts, f"s{seed}"])


def experiment_models(name: str, exp: dict) -> list[dict]:
    """The models of an experiment, each a dict of plain values.

    Every dict has ``model_id``, ``seed``, ``model`` (the ``MLPConfig`` fields
    other than the input size and classes), ``regulariser``, ``view`` (what
    the model sees of the training split: ``train_size``, ``label_noise``,
    ``seed``) and ``optim`` (its ``weight_decay`` and ``grad_clip``).
    """
    if exp["archs"]:
        return _cnn_models(exp)
    noise_in_id = list(exp["label_noise"]) != [0.0]
    values = exp["regulariser_values"]
    models = []
    for seed in exp["seeds"]:
        for reg in exp["regularisers"]:
            for size in exp["train_sizes"] or [None]:
                for noise in exp["label_noise"]:
                    pct = round(noise * 100)
                    for width in exp["widths"]:
                        optim = {
                            "weight_decay": exp["training"]["weight_decay"],
                            "grad_clip": exp["training"]["grad_clip"],
                        }
                        if reg in optim:
                            optim[reg] = values[reg]
                        models.append(
                            {
                                "model_id": model_id(
                                    width, seed, reg, size, pct if noise_in_id else None
                                ),
                                "seed": seed,
                                "model": {
                                    "width": width,
                                    "depth": exp["depth"],
                                    "batch_norm": exp["batch_norm"]
                                    or reg == "batch_norm",
                                },
                                "regulariser": reg,
                                "view": {
                                    "train_size": size,
                                    "label_noise": pct / 100,
                                    "seed": exp["subset_seed"],
                                },
                                "optim": optim,
                            }
                        )
    return models


def _cnn_models(exp: dict) -> list[dict]:
    """One CNN per architecture name and seed, trained on the whole split."""
    optim = {
        "weight_decay": exp["training"]["weight_decay"],
        "grad_clip": exp["training"]["grad_clip"],
    }
    return [
        {
            "model_id": f"{name}-s{seed}",
            "seed": seed,
            "model": {"arch": "cnn", "name": name, "multiplier": exp["multiplier"]},
            "regulariser": "none",
            "view": {
                "train_size": None,
                "label_noise": 0.0,
                "seed": exp["subset_seed"],
            },
            "optim": optim,
        }
        for seed in exp["seeds"]
        for name in exp["archs"]
    ]


def training_groups(name: str, exp: dict, group_size: int = 0) -> list[dict]:
    """Split an experiment's models into training jobs.

    Models of one seed share a group (they see the same data order, which lets
    a later engine batch them). ``group_size`` > 0 caps the models per group;
    the experiment's own ``group_size``, when set, takes precedence.

    Returns
    -------
    list of dict
        ``{"name": "<experiment>-s<seed>-g<k>", "models": [...]}``.
    """
    if exp.get("group_size") is not None:
        group_size = exp["group_size"]
    by_seed: dict[int, list] = {}
    for m in experiment_models(name, exp):
        by_seed.setdefault(m["seed"], []).append(m)
    groups = []
    for seed, models in by_seed.items():
        size = group_size or len(models)
        for k, start in enumerate(range(0, len(models), size)):
            groups.append(
                {"name": f"{name}-s{seed}-g{k}", "models": models[start : start + size]}
            )
    return groups
