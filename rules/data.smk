# Raw downloads stay on the submit host: cluster nodes often have no internet.
localrules:
    download_dataset,


rule download_dataset:
    output:
        directory("resources/raw/{dataset}"),
    log:
        "logs/download/{dataset}.log",
    wildcard_constraints:
        dataset="mnist|fashion_mnist|cifar10",
    conda:
        ENV
    params:
        mirrors=get_mirrors,
    script:
        "../scripts/download_dataset.py"


rule prepare_dataset:
    input:
        unpack(get_raw_input),
    output:
        "results/data/{dataset}.npz",
    log:
        "logs/data/{dataset}.log",
    conda:
        ENV
    resources:
        mem_mb=4000,
        runtime=15,
    params:
        seed=config["datasets"]["split_seed"],
    script:
        "../scripts/prepare_dataset.py"
