"""Formatting and lint of the workflow and package, as the contributors' rules ask."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

CHECKS = {
    "ruff-format": [
        "ruff",
        "format",
        "--check",
        "src",
        "scripts",
        "tests",
        "benchmarks",
    ],
    "ruff": ["ruff", "check", "src", "scripts", "tests", "benchmarks"],
    "snakefmt": ["snakefmt", "--check", "Snakefile", "rules"],
    "snakemake-lint": ["snakemake", "--lint"],
}


@pytest.mark.parametrize("name", list(CHECKS))
def test_lint(name):
    tool, *args = CHECKS[name]
    result = subprocess.run(
        [str(BIN / tool), *args], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
