"""Per-epoch training logs of one experiment's models, in one table."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from neuralcode.logs import setup_logging
from neuralcode.stages.collect import collect_histories

setup_logging()
collect_histories(
    list(snakemake.input),
    snakemake.params.models,
    snakemake.output[0],
    experiment=snakemake.wildcards.experiment,
    dataset=snakemake.params.dataset,
)
