"""Lint and format: ruff, configured in pyproject.toml, over every Python file (sources included)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUFF = Path(sys.executable).parent / "ruff"


@pytest.mark.parametrize(
    "command", [["check", "--output-format", "concise"], ["format", "--check"]], ids=["lint", "format"]
)
def test_ruff(command):
    result = subprocess.run([str(RUFF), *command, "."], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, (
        f"`ruff {' '.join(command)} .` failed (fix with `ruff check --fix` / "
        f"`ruff format`):\n{result.stdout[-3000:]}{result.stderr[-1000:]}"
    )
