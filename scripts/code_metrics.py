"""Encoding metrics of one code store, as a tidy CSV."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from neuralcode.logs import setup_logging
from neuralcode.pipeline import run_metrics

setup_logging()
run_metrics(
    store_path=snakemake.input.codes,
    settings=snakemake.params.settings,
    experiment=snakemake.wildcards.experiment,
    out_csv=snakemake.output[0],
)
