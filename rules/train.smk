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
    # torch uses the threads for its matrix products. One each: on 2 cores,
    # two 1-thread training jobs at once finished the quick preset's 25 in
    # 155 s, one 2-thread job at a time in 254 s (profiles/slurm sets 4).
    threads: 1
    resources:
        mem_mb=get_mem_mb("train"),
        runtime=get_runtime("train"),
        gpu=0,
    params:
        group=get_group,
        code=model_code_hash("train.py"),
    script:
        "../scripts/train.py"
