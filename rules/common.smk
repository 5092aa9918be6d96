import hashlib
import json
import sys
from pathlib import Path

# The Snakemake process itself only needs the light config module of the
# package, so the workflow parses even where the package is not installed.
sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from neuralcode.config import (  # noqa: E402
    experiment_models,
    load_schema,
    training_groups,
    validate_config,
)

validate_config(
    config, load_schema(Path(workflow.basedir) / "schemas/config.schema.yaml")
)


wildcard_constraints:
    dataset="[a-z0-9_]+",
    experiment="[a-z][a-z0-9_]*",
    group="s[0-9]+-g[0-9]+",
    model="[a-z0-9]+(-[a-z0-9]+)*",
    epoch="[0-9]+",


ENV = "../envs/neuralcode.yaml"
EMBEDDED_DATASETS = ("mnist5k", "digits")

_GROUPS = {
    name: training_groups(name, exp, config["group_size"])
    for name, exp in config["experiments"].items()
}
_GROUP_OF = {
    (name, m["model_id"]): g["name"].removeprefix(f"{name}-")
    for name, groups in _GROUPS.items()
    for g in groups
    for m in g["models"]
}


def canonical(value):
    """Plain values with sorted keys: Snakemake compares params as stored, so
    reordering config keys or spelling out a default must not rerun jobs."""
    return json.loads(json.dumps(value, sort_keys=True))


_SOURCE_HASHES = {}


def get_source_hash(*modules):
    """sha256 of package modules, passed as a param so that editing the code
    behind a rule reruns its jobs (Snakemake tracks only the scripts)."""
    if modules not in _SOURCE_HASHES:
        digest = hashlib.sha256()
        for name in modules:
            digest.update(
                (Path(workflow.basedir) / "src/neuralcode" / name).read_bytes()
            )
        _SOURCE_HASHES[modules] = digest.hexdigest()[:16]
    return _SOURCE_HASHES[modules]


TRAIN_CODE = get_source_hash(
    "models.py", "grouped.py", "training.py", "checkpoints.py", "data.py", "pipeline.py"
)
EXTRACT_CODE = get_source_hash(
    "models.py", "extraction.py", "checkpoints.py", "codes.py", "data.py", "pipeline.py"
)
METRICS_CODE = get_source_hash("metrics.py", "bigcodes.py", "codes.py", "pipeline.py")
DATA_CODE = get_source_hash("data.py", "pipeline.py")
FIGURES_CODE = get_source_hash("figures.py")


def get_raw_input(wildcards):
    """Manifest of a dataset's raw download; nothing for embedded ones."""
    if wildcards.dataset in EMBEDDED_DATASETS:
        return {}
    return {"manifest": f"resources/raw/{wildcards.dataset}.json"}


def get_raw_dir(wildcards):
    if wildcards.dataset in EMBEDDED_DATASETS:
        return None
    return f"resources/raw/{wildcards.dataset}"


def get_mirrors(wildcards):
    return config["datasets"]["mirrors"].get(wildcards.dataset, [])


def get_dataset_file(wildcards):
    dataset = config["experiments"][wildcards.experiment]["dataset"]
    return f"results/data/{dataset}.npz"


def get_group(wildcards):
    """Everything a training job needs, as plain values (tracked as params)."""
    exp = config["experiments"][wildcards.experiment]
    name = f"{wildcards.experiment}-{wildcards.group}"
    (group,) = [g for g in _GROUPS[wildcards.experiment] if g["name"] == name]
    return canonical(
        {
            "models": group["models"],
            "training": exp["training"],
            "save_epochs": exp["code_epochs"],
        }
    )


def get_train_runtime(wildcards):
    """Minutes for a training job: generous for CPU runs of the quick preset."""
    exp = config["experiments"][wildcards.experiment]
    n_models = len(get_group(wildcards)["models"])
    return 10 + n_models * exp["training"]["epochs"] // 20


def get_group_dir(wildcards):
    key = (wildcards.experiment, wildcards.model)
    if key not in _GROUP_OF:
        raise ValueError(
            f"model {wildcards.model!r} is not part of experiment "
            f"{wildcards.experiment!r} in the config"
        )
    return f"results/models/{wildcards.experiment}/{_GROUP_OF[key]}"


def get_checkpoint(wildcards):
    group_dir = get_group_dir(wildcards)
    return f"{group_dir}/{wildcards.model}/e{wildcards.epoch}.pt"


def get_metric_tables(wildcards):
    exp = config["experiments"][wildcards.experiment]
    return [
        f"results/metrics/{wildcards.experiment}/{m['model_id']}/e{epoch}.csv"
        for m in experiment_models(wildcards.experiment, exp)
        for epoch in exp["code_epochs"]
    ]


def get_last_code_epoch(experiment):
    """Epoch a figure of final models shows; None if the experiment is off."""
    exp = config["experiments"].get(experiment)
    return exp["code_epochs"][-1] if exp else None


def get_metric_settings(wildcards):
    return canonical(config["metrics"])


def get_expected_models(wildcards):
    """(model id, epoch) pairs an experiment's table must hold."""
    exp = config["experiments"][wildcards.experiment]
    return [
        [m["model_id"], epoch]
        for m in experiment_models(wildcards.experiment, exp)
        for epoch in exp["code_epochs"]
    ]


def get_caption(experiment):
    """Dataset, preset, seeds and epochs, for figure titles."""
    exp = config["experiments"].get(experiment)
    if exp is None:
        return ""
    n_seeds = len(exp["seeds"])
    bn = ", batch norm" if exp["batch_norm"] else ""
    return (
        f"{exp['dataset']}, preset {config['preset']}, depth {exp['depth']}{bn}, "
        f"{n_seeds} seed{'s' if n_seeds > 1 else ''}, "
        f"epoch {exp['code_epochs'][-1]} of {exp['training']['epochs']}"
    )


def get_final_outputs():
    """Every artifact of the configured experiments."""
    outputs = []
    if "width" in config["experiments"]:
        outputs += expand(
            "results/figures/{fig}.{ext}", fig=["fig2a", "fig2b"], ext=["pdf", "png"]
        )
    return outputs
