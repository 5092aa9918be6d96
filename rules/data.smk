# Raw downloads stay on the submit host: cluster nodes often have no internet.
localrules:
    download_dataset,


# The output is a manifest, not the raw directory: Snakemake deletes a job's
# outputs before it reruns it, and files placed there by hand must survive.
rule download_dataset:
    output:
        "resources/raw/{dataset}.json",
    log:
        "logs/download/{dataset}.log",
    wildcard_constraints:
        dataset="mnist|fashion_mnist|cifar10",
    conda:
        ENV
    params:
        raw_dir="resources/raw/{dataset}",
        mirrors=get_mirrors,
        code=code_hash("download_dataset.py"),
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
        raw_dir=get_raw_dir,
        random_sizes=lambda wc: (
            canonical(config["datasets"]["random"]) if wc.dataset == "random" else None
        ),
        code=code_hash("prepare_dataset.py"),
    script:
        "../scripts/prepare_dataset.py"
