"""Print the config reference table for the README from the config dataclasses (the one source of truth).

tests/test_readme.py checks that README.md holds exactly this table, so the two cannot drift apart."""
from __future__ import annotations

import sys
from dataclasses import MISSING
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.config import iter_fields  # noqa: E402

BOUND_WORDS = {"min": "≥ {}", "max": "≤ {}", "min_exclusive": "> {}", "max_exclusive": "< {}"}


def _default(field) -> str:
    value = field.default if field.default is not MISSING else field.default_factory()
    if isinstance(value, bool):
        return "true" if value else "false"
    return f'"{value}"' if isinstance(value, str) else str(value)


def _allowed(field) -> str:
    meta = field.metadata
    if "choices" in meta:
        return " \\| ".join(meta["choices"])
    bounds = [words.format(meta[key]) for key, words in BOUND_WORDS.items() if key in meta]
    return ", ".join(bounds) + (', or "auto"' if meta.get("kind") == "count_or_auto" else "")


def reference_table() -> str:
    lines = ["| key | default | allowed | meaning |", "| --- | --- | --- | --- |"]
    for key, field in iter_fields():
        help_text = field.metadata["help"].replace("|", "\\|")
        lines.append(f"| `{key}` | `{_default(field)}` | {_allowed(field)} | {help_text} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(reference_table())
