import json
import sys
from functools import cache
from pathlib import Path

# The Snakemake process itself only needs the light config module of the
# package, so the workflow parses even where the package is not installed.
# Jobs (local, on a cluster, in a conda env) import the package from this
# checkout too, through PYTHONPATH, which they inherit.
SRC = Path(workflow.basedir) / "src"
sys.path.insert(0, str(SRC))

from neuralcode.jobenv import export_source_dir  # noqa: E402
from neuralcode.provenance import source_hash  # noqa: E402

export_source_dir(SRC)

from neuralcode.config import (  # noqa: E402
    experiment_models,
    load_schema,
    memory_mb,
    model_kind,
    runtime_minutes,
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


ENV = "../envs/neuralcode.yaml"
EMBEDDED_DATASETS = ("mnist5k", "digits", "random")

_GROUPS = {
    name: training_groups(name, exp, config["group_size"])
    for name, exp in config["experiments"].items()
}


def canonical(value):
    """Plain values with sorted keys: Snakemake compares params as stored, so
    reordering config keys or spelling out a default must not rerun jobs."""
    return json.loads(json.dumps(value, sort_keys=True))


@cache
def code_hash(script, kind=None):
    """Hash of a rule's script (under scripts/) and of every package module it
    uses, passed as a param: editing the code behind a rule reruns its jobs,
    and only its jobs (comments and formatting aside). The profiles turn
    Snakemake's own `code` trigger off, which reruns on a script's
    modification time alone (a `git checkout`). MLP jobs never run cnn.py,
    so their hash leaves it out."""
    exclude = ("cnn.py",) if kind == "mlp" else ()
    return source_hash(
        Path(workflow.basedir) / "scripts" / script, SRC / "neuralcode", exclude
    )


def model_code_hash(script):
    """code_hash for a rule whose jobs run one experiment's models."""

    def code(wildcards):
        return code_hash(script, model_kind(get_experiment(wildcards)))

    return code


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


def get_experiment(wildcards):
    return config["experiments"][wildcards.experiment]


def get_save_epochs(exp):
    """Epochs whose checkpoints a training run keeps: codes and diameters."""
    return sorted(set(exp["code_epochs"]) | set(exp["diameters"]["epochs"]))


def get_group(wildcards):
    """Everything a training job needs, as plain values (tracked as params)."""
    exp = get_experiment(wildcards)
    name = f"{wildcards.experiment}-{wildcards.group}"
    (group,) = [g for g in _GROUPS[wildcards.experiment] if g["name"] == name]
    return canonical(
        {
            "models": group["models"],
            "training": exp["training"],
            "save_epochs": get_save_epochs(exp),
        }
    )


def get_mem_mb(rule):
    """Megabytes a job of ``rule`` asks for (config ``compute.mem_mb``, else
    by model kind)."""

    def mem_mb(wildcards):
        return memory_mb(rule, get_experiment(wildcards), config)

    return mem_mb


def get_runtime(rule):
    """Minutes a job of ``rule`` asks for (config ``compute``; the estimate for
    training scales with the group's parameters, steps and dataset)."""

    def runtime(wildcards):
        exp = get_experiment(wildcards)
        models = get_group(wildcards)["models"]
        return runtime_minutes(rule, exp, models, config)

    return runtime


def get_group_dirs(wildcards):
    return [
        f"results/models/{wildcards.experiment}/"
        + g["name"].removeprefix(f"{wildcards.experiment}-")
        for g in _GROUPS[wildcards.experiment]
    ]


def get_group_models(wildcards):
    """The config entries of one training group's models."""
    name = f"{wildcards.experiment}-{wildcards.group}"
    (group,) = [g for g in _GROUPS[wildcards.experiment] if g["name"] == name]
    return canonical(group["models"])


def get_code_items(wildcards):
    """[model id, epoch] of every code store of a group."""
    epochs = get_experiment(wildcards)["code_epochs"]
    return [[m["model_id"], e] for m in get_group_models(wildcards) for e in epochs]


def get_diameter_items(wildcards):
    epochs = get_experiment(wildcards)["diameters"]["epochs"]
    return [[m["model_id"], e] for m in get_group_models(wildcards) for e in epochs]


def get_group_tables(wildcards):
    """Per-group tables an experiment's metrics or diameters table joins."""
    exp = get_experiment(wildcards)
    kind = wildcards.table
    epochs = exp["diameters"]["epochs"] if kind == "diameters" else exp["code_epochs"]
    if not epochs:
        raise ValueError(
            f"experiment {wildcards.experiment!r} computes no {kind}: its epoch list "
            "is empty in the config"
        )
    return [
        f"results/{kind}/{wildcards.experiment}/"
        + g["name"].removeprefix(f"{wildcards.experiment}-")
        + ".csv"
        for g in _GROUPS[wildcards.experiment]
    ]


def get_expected_models(wildcards):
    """(model id, epoch) pairs an experiment's table must hold."""
    exp = get_experiment(wildcards)
    kind = wildcards.table
    epochs = exp["diameters"]["epochs"] if kind == "diameters" else exp["code_epochs"]
    return [
        [m["model_id"], epoch]
        for m in experiment_models(wildcards.experiment, exp)
        for epoch in epochs
    ]


def _metric_settings(exp):
    """The config's metric settings with an experiment's own override."""
    return canonical({**config["metrics"], **exp["metrics"]})


def get_metric_settings(wildcards):
    return _metric_settings(get_experiment(wildcards))


def get_caption(experiment):
    """Dataset, preset, depth, seeds and training length, for figure titles."""
    exp = config["experiments"].get(experiment)
    if exp is None:
        return ""
    bn = ", batch norm" if exp["batch_norm"] else ""
    return (
        f"{exp['dataset']}, preset {config['preset']}, depth {exp['depth']}{bn}, "
        f"{counted(len(exp['seeds']), 'seed')}, "
        f"{counted(exp['training']['epochs'], 'epoch')}"
    )


def counted(n, noun):
    """``1 epoch``, ``2 epochs``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


# Every figure and table of the paper the workflow draws: the experiment it
# reads, the table kind, and options picked from that experiment's config.
def _last(epochs):
    return epochs[-1] if epochs else None


def _code_epoch(exp):
    return {"epoch": _last(exp["code_epochs"])}


def _histogram(width, against):
    def options(exp):
        epochs = exp["diameters"]["epochs"]
        if width not in exp["widths"] or not epochs:
            raise ValueError(
                f"the diameter histograms need width {width} in "
                "experiments.diameters.widths and at least one epoch in "
                "experiments.diameters.diameters.epochs"
            )
        if against == "time":
            return {"width": width, "early": epochs[0], "late": epochs[-1]}
        return {
            "width": width,
            "epoch": epochs[-1],
            "probe": exp["diameters"]["probes"],
        }

    return options


def _no_options(exp):
    return {}


def _tsne_model(exp):
    """Figure 1: the widest MLP (the paper's width 100) of the first seed, at
    its last code epoch."""
    if not exp["code_epochs"]:
        raise ValueError("Figure 1 needs a code epoch in experiments.width.code_epochs")
    width, seed = max(exp["widths"]), exp["seeds"][0]
    return {"model_id": f"w{width:03d}-s{seed}", "epoch": exp["code_epochs"][-1]}


ARTIFACTS = {
    "fig2a": ("width", "metrics", _code_epoch),
    "fig2b": ("width", "metrics", _code_epoch),
    "fig2c": (
        "diameters",
        "diameters",
        lambda e: {"epoch": _last(e["diameters"]["epochs"])},
    ),
    "fig2d": ("diameters", "diameters", _histogram(50, "time")),
    "fig2e": ("diameters", "diameters", _histogram(50, "random")),
    "fig7a": ("diameters", "diameters", _histogram(60, "time")),
    "fig7b": ("diameters", "diameters", _histogram(60, "random")),
    "fig7c": ("diameters", "diameters", _histogram(70, "time")),
    "fig7d": ("diameters", "diameters", _histogram(70, "random")),
    "fig2f": ("time_mnist", "metrics", _no_options),
    "fig3a": ("time_mnist", "metrics", _no_options),
    "fig8a": ("time_mnist", "metrics", _no_options),
    "fig8b": ("time_mnist", "metrics", _no_options),
    "fig3b": ("time_cifar", "metrics", _no_options),
    "fig3c": ("time_cifar", "metrics", _no_options),
    "fig4a": ("size_cifar", "metrics", _code_epoch),
    "fig4b": ("size_cifar", "metrics", _code_epoch),
    "fig9a": ("size_mnist", "metrics", _code_epoch),
    "fig9b": ("size_mnist", "metrics", _code_epoch),
    "fig5a": ("layers_time", "metrics", _no_options),
    "fig5b": ("layers_time", "metrics", _no_options),
    "fig5c": ("layers_size", "metrics", _code_epoch),
    "fig5d": ("layers_size", "metrics", _code_epoch),
    "fig6a": ("regularisers", "metrics", _code_epoch),
    "fig6b": ("regularisers", "metrics", _code_epoch),
    "fig10": ("regularisers", "metrics", _code_epoch),
    "fig12a": ("label_noise", "metrics", _code_epoch),
    "fig12b": ("label_noise", "metrics", _code_epoch),
    "fig11": ("random_labels", "dataset", _no_options),
    "fig1": ("width", "codes", _tsne_model),
}

# Tables 1 and 2 of the paper: the CNN experiment each reads.
CNN_TABLES = {"table1": "cnn_mnist", "table2": "cnn_cifar"}


def get_figure_input(wildcards):
    experiment, kind, _ = ARTIFACTS[wildcards.figure]
    if experiment not in config["experiments"]:
        raise ValueError(
            f"{wildcards.figure} is drawn from experiment {experiment!r}, which the "
            "config does not define; add it under experiments (see config.yaml)"
        )
    if kind == "dataset":
        dataset = config["experiments"][experiment]["dataset"]
        return {kind: f"results/data/{dataset}.npz"}
    if kind == "codes":
        exp = config["experiments"][experiment]
        seed = exp["seeds"][0]
        return {kind: f"results/codes/{experiment}/s{seed}-g0"}
    return {kind: f"results/tables/{experiment}/{kind}.csv"}


def get_figure_options(wildcards):
    experiment, _, options = ARTIFACTS[wildcards.figure]
    return canonical(options(config["experiments"][experiment]))


def get_figure_caption(wildcards):
    return get_caption(ARTIFACTS[wildcards.figure][0])


def get_table_caption(wildcards):
    """Dataset, preset, architecture scale, training and metric settings."""
    exp = config["experiments"][CNN_TABLES[wildcards.table]]
    drop = _metric_settings(exp)["drop_constant_columns"]
    return (
        f"{exp['dataset']}, preset {config['preset']}, channel multiplier "
        f"{exp['multiplier']}, {exp['training']['optimizer']} for "
        f"{counted(exp['training']['epochs'], 'epoch')}, constant bits "
        f"{'removed' if drop else 'kept'}"
    )


# Check every enabled artifact's options now, before any job runs.
for _name, (_experiment, _, _options) in ARTIFACTS.items():
    if _experiment in config["experiments"]:
        _options(config["experiments"][_experiment])


def get_final_outputs():
    """Every artifact whose experiment the config enables."""
    enabled = config["experiments"]
    outputs = []
    for name, (experiment, _, _) in ARTIFACTS.items():
        if experiment in enabled:
            outputs += expand(
                "results/figures/{fig}.{ext}", fig=name, ext=["pdf", "png"]
            )
    if "random_labels" in enabled:
        outputs += ["results/tables/table5.csv", "results/tables/table5.md"]
    for table, experiment in CNN_TABLES.items():
        if experiment in enabled:
            outputs += expand(
                "results/tables/{t}.{ext}", t=table, ext=["csv", "md", "tex"]
            )
    for name, exp in enabled.items():
        if exp["code_epochs"]:
            outputs.append(f"results/tables/{name}/metrics.csv")
    return outputs
