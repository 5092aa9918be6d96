"""Concatenate the per-model metric tables of one experiment."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from neuralcode.logs import setup_logging
from neuralcode.stages.collect import collect_tables

setup_logging()
collect_tables(
    list(snakemake.input),
    snakemake.output[0],
    expected=snakemake.params.expected,
)
