rule train:
    input:
        data=get_dataset_file,
    output:
        directory("results/models/{experiment}/{group}"),
    log:
        "logs/models/{experiment}/{group}.log",
    benchmark:
        "benchmarks/models/{experiment}/{group}.tsv"
    conda:
        ENV
    # torch uses the threads for its matrix products.
    threads: 2
    resources:
        mem_mb=get_mem_mb("train"),
        runtime=get_runtime("train"),
        gpu=0,
    params:
        group=get_group,
        code=model_code_hash("train.py"),
    script:
        "../scripts/train.py"
