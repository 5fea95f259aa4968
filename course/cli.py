"""The `course` command: `course build` writes the notebooks, `course check` grades them."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="course", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="generate every exercise and solved notebook from its source")
    build.add_argument("--check", action="store_true", help="write nothing; exit 1 if any notebook is stale")
    check = commands.add_parser("check", help="run learners' notebooks and report each exercise")
    check.add_argument("paths", nargs="+", type=Path, help="notebooks, or folders of submissions")
    check.add_argument("--csv", type=Path, help="also write the per-exercise table as CSV here")
    check.add_argument("--timeout", type=int, default=600, help="seconds allowed per cell")
    args = parser.parse_args(argv)
    return _build(args.check) if args.command == "build" else _check(args.paths, args.csv, args.timeout)


def _build(check_only: bool) -> int:
    from course.authoring import ROOT, AuthoringError, build

    try:
        changed = build(check_only=check_only)
    except AuthoringError as error:
        print(f"course build: {error}", file=sys.stderr)
        return 2
    for path in changed:
        print(f"{'stale' if check_only else 'wrote'}: {path.relative_to(ROOT)}")
    if check_only and changed:
        print("Generated notebooks are stale: run `course build` and commit the result.", file=sys.stderr)
        return 1
    print("all notebooks up to date" if not changed else f"{len(changed)} notebook(s) written")
    return 0


def _check(paths: list[Path], csv_path: Path | None, timeout: int) -> int:
    from tqdm import tqdm

    from course.grading import find_notebooks, grade_notebook, learner_name, summary, write_csv

    notebooks = find_notebooks(paths)
    if not notebooks:
        print("course check: no notebooks found", file=sys.stderr)
        return 2
    rows, errors = [], {}
    for notebook in tqdm(notebooks, desc="running notebooks", unit="notebook", disable=len(notebooks) == 1):
        learner = learner_name(notebook, paths)
        notebook_rows, errors[learner] = grade_notebook(notebook, learner, timeout)
        rows += notebook_rows
    print(summary(rows, errors))
    if csv_path:
        write_csv(rows, csv_path)
        print(f"\nwrote {csv_path}")
    return 0 if all(r.passed for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
