"""Table 1 or 2: classifiers on CNN codes, beside the paper's values."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from neuralcode.logs import setup_logging
from neuralcode.tables import cnn_table

setup_logging()
cnn_table(
    snakemake.input[0],
    [snakemake.output.csv, snakemake.output.md, snakemake.output.tex],
    table=snakemake.wildcards.table,
    caption=snakemake.params.caption,
)
