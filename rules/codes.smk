# Codes and diameters are computed per training group, the unit that retrains
# when anything about its models changes: one process loads torch and the data
# once for all of the group's checkpoints.
rule extract_codes:
    input:
        models="results/models/{experiment}/{group}",
        data=get_dataset_file,
    output:
        directory("results/codes/{experiment}/{group}"),
    log:
        "logs/codes/{experiment}/{group}.log",
    benchmark:
        "benchmarks/codes/{experiment}/{group}.tsv"
    conda:
        ENV
    resources:
        mem_mb=get_mem_mb("extract_codes"),
        runtime=get_runtime("extract_codes"),
        gpu=0,
    params:
        stores=get_code_items,
        batch_size=config["extraction"]["batch_size"],
        probes=lambda wc: get_experiment(wc)["probes"],
        probe_seed=lambda wc: get_experiment(wc)["subset_seed"],
        code=model_code_hash("extract_codes.py"),
    script:
        "../scripts/extract_codes.py"


rule diameters:
    input:
        models="results/models/{experiment}/{group}",
        data=get_dataset_file,
    output:
        "results/diameters/{experiment}/{group}.csv",
    log:
        "logs/diameters/{experiment}/{group}.log",
    benchmark:
        "benchmarks/diameters/{experiment}/{group}.tsv"
    conda:
        ENV
    resources:
        mem_mb=get_mem_mb("diameters"),
        runtime=get_runtime("diameters"),
    params:
        checkpoints=get_diameter_items,
        settings=lambda wc: canonical(get_experiment(wc)["diameters"]),
        code=model_code_hash("diameters.py"),
    script:
        "../scripts/diameters.py"
