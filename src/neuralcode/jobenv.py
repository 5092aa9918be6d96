"""What every job of the workflow inherits from the Snakemake process."""

import os


def export_source_dir(src) -> None:
    """Put the package's source directory first on ``PYTHONPATH``.

    Jobs (local, on a cluster node, or in a conda env that holds only the
    dependencies) inherit the variable and import this checkout's package,
    installed or not. Calling it again (Snakemake parses the workflow once
    per job on a cluster) changes nothing.
    """
    src = str(src)
    current = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if src not in current:
        os.environ["PYTHONPATH"] = os.pathsep.join([src, *current])
