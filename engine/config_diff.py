"""Which config keys differ between runs, key by key: what to look at first when overlaid curves disagree.

A pure function over config tables (as stored in each run file), so the app's view and `main.py diff` show the
same thing. Keys are dotted ("train.lr"), in the order of the config's fields, then any others by name; a key one
run's config lacks (a file made before the key existed) is NOT_SET for that run, never a guessed default.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


class _NotSet:
    def __repr__(self) -> str:
        return "NOT_SET"


NOT_SET: Any = _NotSet()
NOT_SET_TEXT = "not set"


@dataclass(frozen=True)
class KeyDiff:
    key: str                    # "train.lr"
    label: str                  # what the setup panel calls it ("Learning rate"); the key when it has no field
    values: tuple[Any, ...]     # one per run, in the order given; NOT_SET where a run's config lacks the key
    differs: bool


def flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'train': {'lr': 0.1}} -> {'train.lr': 0.1}; lists and other values are kept whole."""
    flat: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _same(first: Any, second: Any) -> bool:
    if isinstance(first, bool) or isinstance(second, bool):
        return type(first) is type(second) and first == second
    if isinstance(first, (int, float)) and isinstance(second, (int, float)):
        # TOML keeps 1 and 1.0 apart; a learning rate written either way is the same setting.
        return first == second or (isinstance(first, float) and isinstance(second, float)
                                   and math.isnan(first) and math.isnan(second))
    if isinstance(first, list) and isinstance(second, list):
        return len(first) == len(second) and all(_same(a, b) for a, b in zip(first, second))
    return type(first) is type(second) and first == second


def config_diff(configs: Sequence[Mapping[str, Any]]) -> list[KeyDiff]:
    """Every key of any of the configs, with each config's value and whether they differ."""
    from engine.config import field_info, iter_fields
    flat = [flatten(config) for config in configs]
    known = [key for key, _ in iter_fields()]
    present = {key for table in flat for key in table}
    order = [key for key in known if key in present] + sorted(present.difference(known))
    result = []
    for key in order:
        values = tuple(table.get(key, NOT_SET) for table in flat)
        differs = any(value is NOT_SET for value in values) and not all(value is NOT_SET for value in values)
        differs = differs or not all(value is NOT_SET or _same(values[0], value) for value in values)
        label = field_info(key)["label"] if key in known else key
        result.append(KeyDiff(key, label, values, differs))
    return result


def value_text(value: Any) -> str:
    """A config value as a person reads it: TOML-like, lists without brackets."""
    if value is NOT_SET:
        return NOT_SET_TEXT
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ", ".join(value_text(item) for item in value)
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{key} = {value_text(item)}" for key, item in value.items()) + "}"
    return str(value)
