"""Draw one registered figure from the tables the workflow computed."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from neuralcode.figures import FIGURES
from neuralcode.logs import setup_logging

setup_logging()
FIGURES[snakemake.wildcards.figure](
    dict(snakemake.input.items()),
    [snakemake.output.pdf, snakemake.output.png],
    caption=snakemake.params.caption,
    **snakemake.params.options,
)
