"""Check every cached dataset and code store against the checksums recorded
when it was written; Snakemake only sees that the files exist.

    python -m neuralcode.verify [results]     # or: make verify

Prints one line per damaged file with how to recompute it and exits with
status 1 if any; 0 when everything matches.
"""

import json
import sys
from pathlib import Path

from .codes import verify_store
from .data import load_dataset
from .stages.extract import STORE_LIST


def verify(results) -> tuple[int, list[str]]:
    """(files checked, problems) under a results directory."""
    results = Path(results)
    problems, checked = [], 0
    for npz in sorted(results.glob("data/*.npz")):
        checked += 1
        try:
            load_dataset(npz)
        except Exception as err:  # every loader failure is a finding here
            problems.append(f"{npz}: {err}")
    for store in sorted(results.glob("codes/*/*/*/*.zarr")):
        checked += 1
        problems += verify_store(store)
    for listing in sorted(results.glob(f"codes/*/*/{STORE_LIST}")):
        group = listing.parent
        for name in json.loads(listing.read_text()):
            if not (group / name).exists():
                problems.append(
                    f"code store {group / name} is missing; extract the codes of "
                    f"its training group again with `snakemake --forcerun {group}`"
                )
    return checked, problems


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    results = Path(argv[0] if argv else "results")
    if not results.is_dir():
        print(f"no results directory at {results}", file=sys.stderr)
        return 2
    checked, problems = verify(results)
    for line in problems:
        print(line)
    found = f"{len(problems)} problem{'' if len(problems) == 1 else 's'}"
    print(f"{checked} files checked, {found}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
