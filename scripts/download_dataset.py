"""Download one dataset's raw files (runs on the submit host)."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from neuralcode.logs import setup_logging
from neuralcode.stages.download import run_download

setup_logging()
run_download(
    snakemake.wildcards.dataset,
    raw_dir=snakemake.params.raw_dir,
    mirrors=snakemake.params.mirrors,
    manifest=snakemake.output[0],
)
