rule code_metrics:
    input:
        codes="results/codes/{experiment}/{model}/e{epoch}.zarr",
    output:
        "results/metrics/{experiment}/{model}/e{epoch}.csv",
    log:
        "logs/metrics/{experiment}/{model}/e{epoch}.log",
    benchmark:
        "benchmarks/metrics/{experiment}/{model}/e{epoch}.tsv"
    conda:
        ENV
    resources:
        mem_mb=4000,
        runtime=20,
    params:
        settings=get_metric_settings,
        code=METRICS_CODE,
    script:
        "../scripts/code_metrics.py"


rule collect_metrics:
    input:
        get_metric_tables,
    output:
        "results/tables/{experiment}/metrics.csv",
    log:
        "logs/tables/{experiment}/metrics.log",
    conda:
        ENV
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        expected=get_expected_models,
    script:
        "../scripts/collect_metrics.py"
