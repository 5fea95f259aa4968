"""A zoo artefact's record: metrics.json, and the table of measured metrics its CARD.md shows.

Every zoo script measures what it trained, writes the record next to the weights and generates the
card from it, so the card never disagrees with the numbers `tests/zoo` re-measures.
"""

import json
from pathlib import Path


def metrics_table(metrics: dict) -> str:
    """A Markdown table of {name: {"value", "tolerance", "requirement"?}}; the requirement column
    appears when any metric has one (a (">=" or "<=", bound) pair, as `zoo.meets` reads it)."""
    with_requirements = any("requirement" in entry for entry in metrics.values())
    columns = ["metric", "value", "retrain tolerance"] + ["requirement"] * with_requirements
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for name, entry in metrics.items():
        cells = [name, str(entry["value"]), f"± {entry['tolerance']}"]
        if with_requirements:
            cells.append(" ".join(map(str, entry.get("requirement", []))))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_record(directory: Path, record: dict, card: str) -> None:
    """Write metrics.json (the record) and CARD.md (generated from it) into `directory`."""
    (directory / "metrics.json").write_text(json.dumps(record, indent=2) + "\n")
    (directory / "CARD.md").write_text(card)
