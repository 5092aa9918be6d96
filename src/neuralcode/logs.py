"""Logging set-up shared by the workflow's scripts."""

import logging
import sys


def setup_logging(level=logging.INFO) -> None:
    """One compact line per record on stderr (the rule's log file)."""
    logging.basicConfig(
        stream=sys.stderr,
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    # faiss logs each optional CPU build it tries, failures included, at INFO.
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)
