"""Figure 2(a): redundancy ratio against width, train and test."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from neuralcode.figures import redundancy_vs_width
from neuralcode.logs import setup_logging

setup_logging()
redundancy_vs_width(
    snakemake.input[0],
    [snakemake.output.pdf, snakemake.output.png],
    epoch=snakemake.params.epoch,
    caption=snakemake.params.caption,
)
