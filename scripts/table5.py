"""Table 5: training accuracy and loss of MLPs fitted to random labels."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from neuralcode.figures import random_label_table
from neuralcode.logs import setup_logging

setup_logging()
random_label_table(
    snakemake.input[0],
    snakemake.output.csv,
    snakemake.output.md,
    epochs=snakemake.params.epochs,
)
