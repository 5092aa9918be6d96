"""Stochastic diameters of one training group's checkpoints."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from neuralcode.logs import setup_logging
from neuralcode.stages.diameters import run_diameters

setup_logging()
run_diameters(
    models_dir=snakemake.input.models,
    dataset_path=snakemake.input.data,
    items=snakemake.params.checkpoints,
    settings=snakemake.params.settings,
    experiment=snakemake.wildcards.experiment,
    out_csv=snakemake.output[0],
)
