"""Figure 2(b): test accuracy of K-Means, K-NN and logistic regression on codes."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from neuralcode.figures import accuracy_vs_width
from neuralcode.logs import setup_logging

setup_logging()
accuracy_vs_width(
    snakemake.input[0],
    [snakemake.output.pdf, snakemake.output.png],
    epoch=snakemake.params.epoch,
    caption=snakemake.params.caption,
)
