"""One owner per fact (DESIGN.md, round-2 principles), checked on the source: trial-status words are written
only in engine/schema.py, no two classes in the app share a name (a reader finding `Theme` must find one), and
the trial attributes the schema lists are the ones read (tests/test_sweep.py checks they are the ones written)."""
from __future__ import annotations

import ast
from collections import defaultdict
from dataclasses import fields
from pathlib import Path

from engine import schema
from engine.runfile import TrialData

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted(path for package in ("engine", "gui") for path in (ROOT / package).rglob("*.py"))
STATUS_WORDS = set(schema.STATUSES) | {schema.QUEUED, schema.NOT_RUN}


def _docstrings(tree: ast.Module) -> set[int]:
    """The string constants that are docstrings: prose may name a status."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def test_trial_status_words_are_written_only_in_the_schema_module():
    literals = []
    for path in SOURCES:
        if path == ROOT / "engine" / "schema.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = _docstrings(tree)
        literals += [f"{path.relative_to(ROOT)}:{node.lineno}: {node.value!r}" for node in ast.walk(tree)
                     if isinstance(node, ast.Constant) and node.value in STATUS_WORDS and id(node) not in docstrings]
    assert not literals, "use engine.schema's status constants instead of:\n" + "\n".join(literals)


def test_no_two_classes_share_a_name():
    where = defaultdict(list)
    for path in SOURCES:
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.ClassDef):
                where[node.name].append(str(path.relative_to(ROOT)))
    assert not {name: paths for name, paths in where.items() if len(paths) > 1}


def test_every_trial_attribute_the_schema_names_is_read_into_trial_data():
    read = {field.name for field in fields(TrialData)}
    assert set(schema.TRIAL_ATTRS) | set(schema.SEARCH_TRIAL_ATTRS) <= read


def test_every_status_has_a_colour_in_both_themes():
    from gui.theme import STATUS_COLORS
    for theme, colours in STATUS_COLORS.items():
        assert set(colours) == {*schema.STATUSES, schema.QUEUED, schema.NOT_RUN}, theme
