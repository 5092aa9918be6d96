"""The `download_dataset` rule: fetch or verify raw files, write a manifest."""

from __future__ import annotations

import json
import os
from pathlib import Path


def run_download(name, raw_dir, mirrors, manifest) -> None:
    """Fetch (or verify files placed by hand) and record them in a manifest.

    Parameters
    ----------
    name : str
        ``mnist``, ``fashion_mnist`` or ``cifar10``.
    raw_dir : path-like
        Directory of the raw files (torchvision's layout under it).
    mirrors : list of str
        Base URLs tried in order; empty means torchvision's own.
    manifest : path-like
        JSON written last, listing the files and their md5s.
    """
    from ..data import download_raw, expected_files

    where = download_raw(name, raw_dir, mirrors=list(mirrors) or None)
    record = {
        "dataset": name,
        "raw_dir": str(raw_dir),
        "files": [{"name": f, "md5": md5} for f, md5 in expected_files(name)],
        "location": str(where),
    }
    path = Path(manifest)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(record, indent=2))
    os.replace(tmp, path)
