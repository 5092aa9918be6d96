"""Train one group of models: the `train` rule."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from neuralcode.devices import job_device
from neuralcode.logs import setup_logging
from neuralcode.stages.train import run_training_group

setup_logging()
run_training_group(
    dataset_path=snakemake.input.data,
    group=snakemake.params.group,
    out_dir=snakemake.output[0],
    threads=snakemake.threads,
    device=job_device(
        snakemake.resources.gpu, snakemake.config["compute"]["allow_cpu_fallback"]
    ),
)
