import pytest

from engine.config import (ExperimentConfig, field_help, iter_fields, load_config, loads_config, parse_config,
                           validate)
from engine.errors import ConfigError
from engine.resources import presets
from tests.conftest import tiny_table


def problems_of(table, base_dir=None):
    with pytest.raises(ConfigError) as caught:
        parse_config(table, base_dir)
    return caught.value.problems


def test_defaults_round_trip_through_toml():
    config = ExperimentConfig()
    again = loads_config(config.to_toml())
    assert again == config


def test_every_field_has_help_text():
    for key, field in iter_fields():
        assert field.metadata.get("help"), key
    assert "before each weight update" in field_help("sweep.batch_sizes")


@pytest.mark.parametrize("section,key,value,expected", [
    ("sweep", "batch_sizes", [0, 16], "sweep.batch_sizes = 0: must be at least 1"),
    ("sweep", "batch_sizes", [-4], "sweep.batch_sizes = -4: must be at least 1"),
    ("sweep", "batch_sizes", [], "sweep.batch_sizes = []: must be a non-empty list of whole numbers"),
    ("sweep", "batch_sizes", [16, 16], "contains a value twice"),
    ("sweep", "batch_sizes", [16.5], "sweep.batch_sizes contains 16.5: must be a whole number"),
    ("model", "kind", "transformer", "model.kind = 'transformer': must be one of mlp, cnn, lstm, gru"),
    ("train", "lr", 0, "train.lr = 0: must be greater than 0.0"),
    ("train", "lr", -0.1, "train.lr = -0.1: must be greater than 0.0"),
    ("train", "lr", "fast", "train.lr = 'fast': must be a number"),
    ("train", "lr", float("nan"), "train.lr = nan: must be a finite number"),
    ("train", "epochs", True, "train.epochs = True: must be a whole number"),
    ("train", "momentum", 1.0, "train.momentum = 1.0: must be less than 1.0"),
    ("train", "optimizer", "lbfgs", "train.optimizer = 'lbfgs': must be one of sgd, adam, adamw"),
    ("train", "lr_scaling", "cubic", "train.lr_scaling = 'cubic': must be one of none, linear, sqrt"),
    ("data", "val_fraction", 1.5, "data.val_fraction = 1.5: must be less than 1.0"),
    ("sweep", "device", "tpu", "sweep.device = 'tpu': must be one of auto, cpu, cuda"),
])
def test_bad_values_name_key_and_value(section, key, value, expected):
    problems = problems_of(tiny_table(**{section: {key: value}}))
    assert any(expected in problem for problem in problems), problems


def test_unknown_keys_are_errors_not_ignored():
    table = tiny_table(train={"learning_rate": 0.1})
    table["colour"] = "blue"
    problems = problems_of(table)
    assert any(p.startswith("train.learning_rate: unknown key in [train]") for p in problems)
    assert any(p.startswith("colour: unknown key in the top level") for p in problems)


def test_problems_are_collected_not_one_at_a_time():
    problems = problems_of(tiny_table(train={"lr": -1, "epochs": 0}, model={"kind": "x"}))
    assert len(problems) == 3


def test_batch_size_larger_than_dataset():
    problems = problems_of(tiny_table(sweep={"batch_sizes": [16, 5000]}))
    assert any("5000: larger than the dataset" in p for p in problems)


def test_missing_dataset_file_names_the_path(tmp_path):
    problems = problems_of(tiny_table(data={"dataset": str(tmp_path / "nope.csv")}))
    assert any("nope.csv" in p and "no such file" in p for p in problems)


def test_relative_dataset_path_resolves_against_config_folder(tmp_path):
    (tmp_path / "data.csv").write_text("a,label\n1,0\n")
    (tmp_path / "exp.toml").write_text('[data]\ndataset = "data.csv"\n[sweep]\nbatch_sizes = [1]\n')
    config = load_config(tmp_path / "exp.toml")
    assert config.data.dataset == str((tmp_path / "data.csv").resolve())


def test_batch_norm_does_not_apply_to_recurrent_models():
    problems = problems_of(tiny_table(model={"kind": "lstm", "batch_norm": True}))
    assert any(p.startswith("model.batch_norm = true") for p in problems)


def test_invalid_toml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("name = [unclosed\n")
    with pytest.raises(ConfigError, match="bad.toml: not valid TOML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "missing.toml")


def test_validate_returns_problems_for_the_gui():
    assert validate(tiny_table()) == []
    assert validate(tiny_table(train={"lr": 0})) == ["train.lr = 0: must be greater than 0.0"]


def test_presets_are_valid_and_include_demo():
    found = presets()
    assert "demo" in found and len(found) >= 5
    for name, path in found.items():
        config = load_config(path)
        assert config.name == name
