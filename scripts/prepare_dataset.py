"""Prepare one dataset as a cached .npz (embedded or from raw downloads)."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from neuralcode.data import prepare, save_dataset
from neuralcode.logs import setup_logging

setup_logging()
dataset = prepare(
    snakemake.wildcards.dataset,
    seed=snakemake.params.seed,
    raw_dir=snakemake.params.raw_dir,
    random_sizes=snakemake.params.random_sizes,
)
save_dataset(dataset, snakemake.output[0])
