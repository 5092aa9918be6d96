# Reproduces "Neural networks behave as hash encoders": datasets, MLP training,
# neural codes in zarr, encoding metrics and the paper's figures.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/train.smk"
include: "rules/codes.smk"
include: "rules/metrics.smk"
include: "rules/figures.smk"


rule all:
    default_target: True
    input:
        get_final_outputs(),
