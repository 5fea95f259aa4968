"""The `course` command: `course build` writes the notebooks, `course check` grades them."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="course", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="generate every exercise and solved notebook from its source")
    build.add_argument("sources", nargs="*", type=Path, help="section sources to build (default: every section)")
    build.add_argument("--check", action="store_true", help="write nothing; exit 1 if any notebook is stale")
    check = commands.add_parser("check", help="run learners' notebooks and report each exercise")
    check.add_argument("paths", nargs="+", type=Path, help="notebooks, or folders of submissions")
    check.add_argument("--csv", type=Path, help="also write the per-exercise table as CSV here")
    check.add_argument("--timeout", type=int, default=600, help="seconds allowed per cell")
    check.add_argument("--jobs", type=int, default=1, help="notebooks graded in parallel (one kernel each)")
    args = parser.parse_args(argv)
    if args.command == "build":
        return _build(args.sources, args.check)
    return _check(args.paths, args.csv, args.timeout, args.jobs)


def _build(sources: list[Path], check_only: bool) -> int:
    from course.authoring import ROOT, AuthoringError, build, load_section

    try:
        changed = build([load_section(p.resolve()) for p in sources] or None, check_only=check_only)
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


def _check(paths: list[Path], csv_path: Path | None, timeout: int, jobs: int) -> int:
    from tqdm import tqdm

    from course.grading import find_notebooks, grade_all, summary, write_csv

    notebooks, missing = find_notebooks(paths)
    for path in missing:
        print(f"course check: no such file or folder: {path}", file=sys.stderr)
    if not notebooks:
        print("course check: no notebooks found", file=sys.stderr)
        return 2
    progress = lambda items: tqdm(
        items, desc="running notebooks", unit="notebook", total=len(notebooks), disable=len(notebooks) == 1
    )
    rows, errors = grade_all(notebooks, paths, timeout, max(jobs, 1), progress)
    print(summary(rows, errors))
    if csv_path:
        write_csv(rows, csv_path)
        print(f"\nwrote {csv_path}")
    return 0 if all(r.passed for r in rows) and not missing else 1


if __name__ == "__main__":
    sys.exit(main())
