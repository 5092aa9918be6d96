"""Encoding metrics of one training group's code stores, as a tidy CSV."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from neuralcode.logs import setup_logging
from neuralcode.stages.measure import run_metrics

setup_logging()
run_metrics(
    codes_dir=snakemake.input.codes,
    models=snakemake.params.models,
    epochs=snakemake.params.epochs,
    settings=snakemake.params.settings,
    experiment=snakemake.wildcards.experiment,
    out_csv=snakemake.output[0],
    layers=snakemake.params.layers,
)
