"""Execute learners' notebooks and report every exercise: `course check NOTEBOOK_OR_FOLDER ...`.

Each notebook runs in a fresh kernel with errors allowed, so a notebook that breaks half-way still
reports every exercise it reached. The harness in that kernel appends each verdict to the file
named by COURSE_RESULTS in the kernel's environment; exercises it never reached are reported as
such. A notebook that cannot be read or run becomes one error row; the others are still graded.

The grader trusts the notebook's process: a learner's code runs with the checks in one kernel and
could fake a verdict. It gives feedback; it is not proctoring.
"""

from __future__ import annotations

import csv
import json
import multiprocessing
import os
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import nbclient
import nbformat
from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import run_sync

from tests.harness import RESULTS_ENV


@dataclass
class Row:
    learner: str
    notebook: str
    section: str
    exercise: str
    status: str  # passed, failed, error, not implemented, wrong type, not reached
    message: str

    @property
    def passed(self) -> bool:
        return self.status == "passed"


def find_notebooks(paths: list[Path]) -> tuple[list[Path], list[Path]]:
    """The notebooks under paths, and the paths that do not exist."""
    found, missing = [], []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
        elif path.exists():
            found.append(path)
        else:
            missing.append(path)
    return found, missing


def learner_name(notebook: Path, roots: list[Path]) -> str:
    """A submission folder holds one notebook per learner, named after them (or in their folder)."""
    for root in roots:
        if root.is_dir() and root in notebook.parents:
            relative = notebook.relative_to(root)
            return relative.parts[0] if len(relative.parts) > 1 else notebook.stem
    return notebook.stem


def execute_notebook(
    nb: nbformat.NotebookNode, folder: Path, timeout: int, allow_errors: bool, env: dict[str, str] | None = None
) -> str:
    """Run nb in a fresh kernel with `folder` as working directory and `env` added to the kernel's
    environment, filling in its outputs. Return "" or, when the kernel died or a cell timed out, what happened."""
    with tempfile.TemporaryDirectory() as sockets:
        # IPC sockets in a temp folder: no TCP ports, and no warning about unencrypted TCP.
        kernel = AsyncKernelManager(kernel_name="python3", transport="ipc", ip=str(Path(sockets) / "kernel"))
        try:
            nbclient.NotebookClient(
                nb, km=kernel, timeout=timeout, allow_errors=allow_errors, resources={"metadata": {"path": str(folder)}}
            ).execute(env={**os.environ, **(env or {})})
        except (nbclient.exceptions.DeadKernelError, nbclient.exceptions.CellTimeoutError) as crash:
            return f"{type(crash).__name__}: {str(crash).splitlines()[0] if str(crash) else ''}"
        finally:
            if kernel.has_kernel:
                run_sync(kernel.shutdown_kernel)(now=True)
    return ""


def grade_notebook(path: Path, learner: str, timeout: int = 600) -> tuple[list[Row], list[str]]:
    """Run one notebook; return a row per exercise and the errors raised outside checks.
    A notebook that cannot be read or run is one error row, never an exception."""
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as error:  # noqa: BLE001 - corrupt JSON, not a notebook, unreadable file
        return [Row(learner, path.name, "?", "-", "error", f"unreadable notebook ({_one_line(error)})")], []
    meta = nb.metadata.get("course")
    if not meta:
        return [Row(learner, path.name, "?", "-", "error", "not a course notebook (no 'course' metadata)")], []
    with tempfile.TemporaryDirectory() as tmp:
        results_file = Path(tmp) / "results.jsonl"
        try:
            crashed = execute_notebook(
                nb, path.parent, timeout, allow_errors=True, env={RESULTS_ENV: str(results_file)}
            )
        except Exception as error:  # noqa: BLE001 - e.g. a kernel that cannot start
            crashed = f"could not run the notebook ({_one_line(error)})"
        records = [json.loads(line) for line in results_file.read_text().splitlines()] if results_file.exists() else []
    latest = {r["exercise"]: r for r in records}  # a re-run check overrides the earlier verdict
    rows = []
    for exercise in meta["exercises"]:
        if exercise in latest:
            r = latest[exercise]
            first_line = r["message"].splitlines()[0].removeprefix(f"✗ {exercise}: ").removeprefix("✓ ")
            rows.append(Row(learner, path.name, meta["section"], exercise, r["status"], first_line))
        else:
            rows.append(
                Row(
                    learner,
                    path.name,
                    meta["section"],
                    exercise,
                    "not reached",
                    crashed or "an earlier cell failed, or the check cell was removed",
                )
            )
    return rows, _cell_errors(nb) + ([crashed] if crashed else [])


def grade_all(
    notebooks: list[Path], roots: list[Path], timeout: int = 600, jobs: int = 1, progress=lambda items: items
) -> tuple[list[Row], dict[str, list[str]]]:
    """Grade every notebook, `jobs` at a time (each in its own process and kernel); rows keep notebook order."""
    learners = [learner_name(n, roots) for n in notebooks]
    if jobs > 1:
        # spawn, not fork: the grader has imported torch, whose thread pools do not survive a fork.
        with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            results = list(progress(pool.map(grade_notebook, notebooks, learners, [timeout] * len(notebooks))))
    else:
        results = [grade_notebook(n, name, timeout) for n, name in progress(list(zip(notebooks, learners)))]
    rows, errors = [], {}
    for learner, (notebook_rows, notebook_errors) in zip(learners, results):
        rows += notebook_rows
        errors.setdefault(learner, []).extend(notebook_errors)
    return rows, errors


def _one_line(error: Exception) -> str:
    text = str(error).splitlines()
    return f"{type(error).__name__}: {text[0][:120] if text else ''}"


def _cell_errors(nb: nbformat.NotebookNode) -> list[str]:
    errors = []
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error" and output.get("ename") != "CheckFailed":
                errors.append(f"cell {index}: {output['ename']}: {output['evalue']}"[:160])
    return errors


def summary(rows: list[Row], errors: dict[str, list[str]]) -> str:
    width = max([len(r.exercise) for r in rows] + [8])
    lines = []
    for learner in dict.fromkeys(r.learner for r in rows):
        mine = [r for r in rows if r.learner == learner]
        lines.append(f"\n{learner} ({mine[0].notebook}): {sum(r.passed for r in mine)}/{len(mine)} exercises passed")
        for r in mine:
            mark = "✓" if r.passed else "✗"
            lines.append(f"  {mark} {r.exercise:<{width}}  {r.status:<15}  {'' if r.passed else r.message[:100]}")
        for error in errors.get(learner, []):
            lines.append(f"  ! {error}")
    learners = {r.learner for r in rows}
    if len(learners) > 1:
        # Keyed by (section, exercise): `Linear` in 0.2 and `Linear` in 0.4 are different exercises.
        lines.append("\nPass rate per exercise:")
        for section, exercise in dict.fromkeys((r.section, r.exercise) for r in rows if r.exercise != "-"):
            mine = [r for r in rows if (r.section, r.exercise) == (section, exercise)]
            lines.append(f"  {section:<4} {exercise:<{width}}  {sum(r.passed for r in mine)}/{len(mine)}")
    return "\n".join(lines)


def write_csv(rows: list[Row], path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["learner", "notebook", "section", "exercise", "status", "message"])
        writer.writerows([r.learner, r.notebook, r.section, r.exercise, r.status, r.message] for r in rows)
