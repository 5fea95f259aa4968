"""Time every solved notebook here, against a baseline notebook that only starts a kernel and
imports the course's common stack (so the ratio says what the section itself costs).

    .venv/bin/python benchmarks/notebooks.py            # every solved notebook
    .venv/bin/python benchmarks/notebooks.py 0.1        # sections whose number starts with 0.1
"""

import sys
import time

import nbformat

from course.authoring import ROOT, all_sections
from course.grading import execute_notebook

BUDGET_SECONDS = 120  # each solved notebook must run in under 2 minutes here
BASELINE = nbformat.v4.new_notebook(
    cells=[
        nbformat.v4.new_code_cell(
            "import einops, plotly.express, torch\nfrom jaxtyping import Float\nfrom tests.harness import Checker"
        )
    ]
)


def timed(nb: nbformat.NotebookNode, folder=ROOT) -> float:
    start = time.perf_counter()
    crashed = execute_notebook(nb, folder, timeout=BUDGET_SECONDS * 5, allow_errors=False)
    if crashed:
        raise RuntimeError(crashed)
    return time.perf_counter() - start


def main(prefixes: list[str]) -> int:
    sections = [s for s in all_sections() if not prefixes or s.number.startswith(tuple(prefixes))]
    names = [str(s.notebook_path("solved").relative_to(ROOT)) for s in sections]
    width = max(len(n) for n in [*names, "baseline (kernel start + imports)"])
    baseline = timed(BASELINE)
    print(f"{'notebook':<{width}} {'seconds':>8} {'x baseline':>10}")
    print(f"{'baseline (kernel start + imports)':<{width}} {baseline:>8.1f} {1:>10.1f}")
    over = 0
    for section, name in zip(sections, names):
        path = section.notebook_path("solved")
        seconds = timed(nbformat.read(path, as_version=4), path.parent)
        over += seconds >= BUDGET_SECONDS
        flag = "  OVER BUDGET" if seconds >= BUDGET_SECONDS else ""
        print(f"{name:<{width}} {seconds:>8.1f} {seconds / baseline:>10.1f}{flag}")
    print(f"budget: {BUDGET_SECONDS} s per notebook; {over} over")
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
