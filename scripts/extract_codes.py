"""Neural codes of one training group's checkpoints, one zarr store each."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from neuralcode.devices import job_device
from neuralcode.logs import setup_logging
from neuralcode.stages.extract import run_extraction

setup_logging()
run_extraction(
    models_dir=snakemake.input.models,
    dataset_path=snakemake.input.data,
    out_dir=snakemake.output[0],
    items=snakemake.params.stores,
    batch_size=snakemake.params.batch_size,
    threads=snakemake.threads,
    probes=snakemake.params.probes,
    probe_seed=snakemake.params.probe_seed,
    device=job_device(
        snakemake.resources.gpu, snakemake.config["compute"]["allow_cpu_fallback"]
    ),
)
