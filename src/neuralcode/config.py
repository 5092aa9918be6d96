"""Validation of the workflow config and expansion of experiments into models.

The Snakefile calls :func:`validate_config` before any job is scheduled, so a
misspelled key or an impossible grid stops the run with a message that names the
key. The functions that turn an experiment into model ids and training groups
live here, not in the rules, so they can be tested without Snakemake.
"""

from __future__ import annotations

import copy
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
    cls = _with_defaults(jsonschema.validators.validator_for(schema))
    errors = sorted(cls(schema).iter_errors(config), key=lambda e: list(e.path))
    problems = [f"  config key '{_key_path(e)}': {e.message}" for e in errors]
    if not errors:
        problems = _semantic_problems(config)
    if problems:
        raise ConfigError(
            "invalid config (see schemas/config.schema.yaml for every key):\n"
            + "\n".join(problems)
        )
    return config


def _semantic_problems(config: dict) -> list[str]:
    """Rules that JSON schema cannot state: sorted epoch lists within range."""
    problems = []
    for name, exp in config["experiments"].items():
        key = f"experiments.{name}.code_epochs"
        epochs = exp["code_epochs"]
        if list(epochs) != sorted(set(epochs)):
            problems.append(
                f"  config key '{key}': {epochs} must be strictly increasing "
                "(sorted, no repeats)"
            )
        last = exp["training"]["epochs"]
        if epochs and epochs[-1] > last:
            problems.append(
                f"  config key '{key}': epoch {epochs[-1]} is past "
                f"experiments.{name}.training.epochs = {last}"
            )
    return problems


def model_id(width: int, seed: int) -> str:
    """Id of a model in paths and tables, e.g. ``w040-s0``."""
    return f"w{width:03d}-s{seed}"


def experiment_models(name: str, exp: dict) -> list[dict]:
    """The models of an experiment, each a dict of plain values.

    Every dict has ``model_id``, ``seed`` and ``model`` (the
    ``MLPConfig`` fields other than the input size and classes).
    """
    if name != "width":
        raise ConfigError(f"unknown experiment {name!r}")
    return [
        {
            "model_id": model_id(w, s),
            "seed": s,
            "model": {
                "width": w,
                "depth": exp["depth"],
                "batch_norm": exp["batch_norm"],
            },
        }
        for s in exp["seeds"]
        for w in exp["widths"]
    ]


def training_groups(name: str, exp: dict, group_size: int = 0) -> list[dict]:
    """Split an experiment's models into training jobs.

    Models of one seed share a group (they see the same data order, which lets
    a later engine batch them). ``group_size`` > 0 caps the models per group.

    Returns
    -------
    list of dict
        ``{"name": "<experiment>-s<seed>-g<k>", "models": [...]}``.
    """
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
