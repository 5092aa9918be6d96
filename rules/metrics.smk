rule code_metrics:
    input:
        codes="results/codes/{experiment}/{group}",
    output:
        "results/metrics/{experiment}/{group}.csv",
    log:
        "logs/metrics/{experiment}/{group}.log",
    benchmark:
        "benchmarks/metrics/{experiment}/{group}.tsv"
    conda:
        ENV
    resources:
        mem_mb=get_mem_mb("code_metrics"),
        runtime=get_runtime("code_metrics"),
    params:
        settings=get_metric_settings,
        models=get_group_models,
        epochs=lambda wc: get_experiment(wc)["code_epochs"],
        layers=lambda wc: get_experiment(wc)["layer_sets"],
        code=code_hash("code_metrics.py"),
    script:
        "../scripts/code_metrics.py"


# Concatenations of small tables: on a cluster they run on the submit host.
localrules:
    collect_table,
    collect_history,


# One table per experiment, from its groups' metric or diameter tables.
rule collect_table:
    input:
        get_group_tables,
    output:
        "results/tables/{experiment}/{table}.csv",
    log:
        "logs/tables/{experiment}/{table}.log",
    wildcard_constraints:
        table="metrics|diameters",
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=5,
    params:
        expected=get_expected_models,
        code=code_hash("collect_metrics.py"),
    script:
        "../scripts/collect_metrics.py"


rule collect_history:
    input:
        get_group_dirs,
    output:
        "results/tables/{experiment}/history.csv",
    log:
        "logs/tables/{experiment}/history.log",
    conda:
        ENV
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        models=lambda wc: canonical(
            experiment_models(wc.experiment, get_experiment(wc))
        ),
        dataset=lambda wc: get_experiment(wc)["dataset"],
        code=code_hash("collect_history.py"),
    script:
        "../scripts/collect_history.py"
