"""Neural codes of one checkpoint on the train and test splits."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from neuralcode.logs import setup_logging
from neuralcode.pipeline import run_extraction

setup_logging()
run_extraction(
    checkpoint=snakemake.params.checkpoint,
    dataset_path=snakemake.input.data,
    store_path=snakemake.output[0],
    batch_size=snakemake.params.batch_size,
    threads=snakemake.threads,
    model_id=snakemake.wildcards.model,
    epoch=int(snakemake.wildcards.epoch),
)
