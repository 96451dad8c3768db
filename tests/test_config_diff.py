"""engine.config_diff on constructed configs: which keys differ, each run's value, the order and the labels."""
import tomllib

from engine.config import ExperimentConfig
from engine.config_diff import NOT_SET, config_diff, flatten, value_text


def _table(**changes) -> dict:
    """The canonical config table of a default experiment, with dotted keys changed ("train.lr": 0.1)."""
    table = tomllib.loads(ExperimentConfig().to_toml())
    for key, value in changes.items():
        section, _, name = key.rpartition(".")
        (table[section] if section else table)[name] = value
    return table


def test_only_the_keys_that_differ_are_marked_with_every_runs_value():
    diffs = config_diff([_table(**{"train.lr": 0.05, "sweep.batch_sizes": [16, 32]}),
                         _table(**{"train.lr": 0.1, "sweep.batch_sizes": [16, 32]}),
                         _table(**{"train.lr": 0.05, "sweep.batch_sizes": [16, 64]})])
    different = {diff.key: diff.values for diff in diffs if diff.differs}
    assert different == {"train.lr": (0.05, 0.1, 0.05), "sweep.batch_sizes": ([16, 32], [16, 32], [16, 64])}
    assert len(diffs) == len(flatten(_table())) and sum(not diff.differs for diff in diffs) == len(diffs) - 2


def test_keys_follow_the_configs_field_order_with_the_setup_panels_labels():
    diffs = config_diff([_table(), _table(**{"train.lr": 0.2, "name": "other"})])
    keys = [diff.key for diff in diffs]
    assert keys.index("name") < keys.index("data.dataset") < keys.index("train.lr") < keys.index("sweep.batch_sizes")
    by_key = {diff.key: diff for diff in diffs}
    assert by_key["train.lr"].label == "Learning rate" and by_key["name"].label == "Name"


def test_a_key_one_config_lacks_is_not_set_and_differs():
    old = _table()
    del old["train"]["momentum"]
    old["sweep"]["retired_key"] = 3                  # a key no field knows (an older or newer version's)
    diffs = {diff.key: diff for diff in config_diff([old, _table()])}
    assert diffs["train.momentum"].values[0] is NOT_SET and diffs["train.momentum"].differs
    assert diffs["sweep.retired_key"].values == (3, NOT_SET) and diffs["sweep.retired_key"].label == "sweep.retired_key"
    assert [diff.key for diff in config_diff([old, _table()])][-1] == "sweep.retired_key"
    assert value_text(NOT_SET) == "not set"


def test_numbers_compare_by_value_but_true_is_not_one():
    diffs = {diff.key: diff for diff in config_diff([{"a": 1, "b": True, "c": [1, 2]},
                                                     {"a": 1.0, "b": 1, "c": [1.0, 2]}])}
    assert not diffs["a"].differs and not diffs["c"].differs
    assert diffs["b"].differs


def test_identical_configs_differ_nowhere():
    assert not any(diff.differs for diff in config_diff([_table(), _table(), _table()]))


def test_values_read_as_in_the_config():
    assert [value_text(value) for value in (0.05, [16, 32, 64], True, "sgd", 3, {"a": 1})] == \
        ["0.05", "16, 32, 64", "true", "sgd", "3", "{a = 1}"]
