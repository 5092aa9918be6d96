"""Download one dataset's raw files (runs on the submit host)."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from neuralcode.data import download_raw
from neuralcode.logs import setup_logging

setup_logging()
download_raw(
    snakemake.wildcards.dataset,
    snakemake.output[0],
    mirrors=snakemake.params.mirrors or None,
)
