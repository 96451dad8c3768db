"""Facts about config fields that the GUI and the command line both read from the engine: labels, choice words,
when a field applies, the file types the loaders read, problems keyed by their field, close-match suggestions,
and the quick check of a CSV file's first rows."""
from __future__ import annotations

import pickle

import pytest

from engine import cli
from engine.config import (BUILTIN_DATASETS, DataConfig, applies, dataset_kind, field_info, iter_fields,
                           parse_config, validate)
from engine.data import FILE_FORMATS, HEAD_ROWS, check_head, load_dataset
from engine.errors import ConfigError, DataError, Problem
from tests.conftest import tiny_table

KEYS = [key for key, _ in iter_fields()]
SUFFIX_KINDS = {suffix.lstrip(".") for _, suffixes in FILE_FORMATS for suffix in suffixes}


def test_every_field_has_a_label_and_its_choice_words_name_real_choices():
    labels = [field_info(key)["label"] for key in KEYS]
    assert all(labels) and len(set(labels)) == len(labels)
    for key in KEYS:
        info = field_info(key)
        assert set(info["choice_labels"]) <= set(info.get("choices", ())), key
    assert field_info("train.optimizer")["choice_labels"]["sgd"] == "SGD with momentum"


def test_every_applies_condition_names_a_real_key_and_values_it_can_take():
    for key in KEYS:
        for other, wanted in field_info(key)["applies"].items():
            assert other in KEYS and other != key, key
            if other == "data.dataset":
                possible = set(BUILTIN_DATASETS) | SUFFIX_KINDS | {"folder"}
            elif "choices" in field_info(other):
                possible = set(field_info(other)["choices"])
            else:   # a switch: the field applies when it is on (or off)
                possible = {True, False}
            assert wanted and set(wanted) <= possible, (key, wanted)


@pytest.mark.parametrize("key,table,expected", [
    ("train.momentum", {"train": {"optimizer": "sgd"}}, True),
    ("train.momentum", {"train": {"optimizer": "adam"}}, False),
    ("train.momentum", {}, True),                                        # the default optimizer is sgd
    ("model.batch_norm", {"model": {"kind": "gru"}}, False),
    ("model.batch_norm", {"model": {"kind": "cnn"}}, True),
    ("data.label_column", {"data": {"dataset": "/data/Readings.CSV"}}, True),
    ("data.label_column", {"data": {"dataset": "synthetic"}}, False),
    ("data.num_features", {"data": {"dataset": "synthetic"}}, True),
    ("data.num_features", {"data": {"dataset": "sequence"}}, False),
    ("data.num_samples", {"data": {"dataset": "x.npz"}}, False),
    ("data.x_key", {"data": {"dataset": "x.h5"}}, True),
    ("train.base_batch_size", {"train": {"lr_scaling": "none"}}, False),
    ("train.samples", {"train": {"budget": "samples"}}, True),
    ("train.epochs", {"train": {"budget": "samples"}}, False),
    ("train.momentum", {"train": "not a table"}, True),                  # what a user typed may be anything
    ("data.label_column", {"data": {"dataset": 5}}, False),
])
def test_applies(key, table, expected):
    assert applies(key, table) is expected


def test_dataset_kind_of_folders_and_relative_paths(tmp_path):
    (tmp_path / "images.v2").mkdir()
    assert dataset_kind(str(tmp_path / "images.v2")) == "folder"
    assert dataset_kind("images.v2", base_dir=tmp_path) == "folder"
    assert dataset_kind("mnist1d") == "mnist1d" and dataset_kind("") == "" and dataset_kind("data") == ""
    assert applies("data.image_size", {"data": {"dataset": "images.v2"}}, base_dir=tmp_path)


def test_dataset_kind_of_a_path_the_file_system_refuses():
    # Typed into the app's dataset field, such a path must still hide and show fields, not raise in a slot.
    assert dataset_kind("a" * 5000 + ".csv") == "csv"
    assert dataset_kind("x\x00y.npz") == "npz"


def test_the_file_types_offered_are_the_ones_the_loaders_read(tmp_path):
    assert [name for name, _ in FILE_FORMATS] == ["CSV", "NumPy array", "NumPy archive", "HDF5"]
    for _, suffixes in FILE_FORMATS:
        for suffix in suffixes:
            path = tmp_path / f"junk{suffix}"
            path.write_bytes(b"not data")
            with pytest.raises(DataError) as caught:
                load_dataset(DataConfig(dataset=str(path), labels=str(path)))
            assert "not a kind of file" not in str(caught.value), suffix
    assert ".hdf" not in {suffix for _, suffixes in FILE_FORMATS for suffix in suffixes}
    hdf = tmp_path / "junk.hdf"
    hdf.write_bytes(b"not data")
    with pytest.raises(DataError, match="not a kind of file"):
        load_dataset(DataConfig(dataset=str(hdf)))


def write_csv(path, rows: list[str]):
    path.write_text("a,b,label\n" + "".join(row + "\n" for row in rows), encoding="utf-8")
    return path


def test_check_head_finds_text_in_a_number_column_in_the_first_rows(tmp_path):
    path = write_csv(tmp_path / "readings.csv", ["1,2,x", "3,oops,y"] + ["5,6,x"] * 50)
    with pytest.raises(DataError, match=r"line 3, column 'b': 'oops' is not a number"):
        check_head(DataConfig(dataset=str(path)))
    with pytest.raises(DataError, match="no column named 'target'"):
        check_head(DataConfig(dataset=str(path), label_column="target"))


def test_check_head_reads_only_the_head(tmp_path):
    """A bad row past the head is for load_dataset to find; check_head stays cheap on a big file."""
    path = write_csv(tmp_path / "late.csv", ["1,2,x"] * HEAD_ROWS + ["3,oops,y"])
    check_head(DataConfig(dataset=str(path)))
    with pytest.raises(DataError, match=f"line {HEAD_ROWS + 2}, column 'b'"):
        load_dataset(DataConfig(dataset=str(path)))


def test_check_head_leaves_what_is_not_a_csv_file_alone(tmp_path):
    for dataset in ("mnist1d", str(tmp_path / "missing.csv"), str(tmp_path)):
        check_head(DataConfig(dataset=dataset))


def test_every_problem_names_its_key():
    table = tiny_table(train={"lr": 0, "optimizer": "adamm", "seeds": ["x"]}, model={"kind": "lstm",
                                                                                   "batch_norm": True},
                       sweep={"batch_sizes": [16, 16]}, data={"dataset": "nope"})
    table["name"] = "a/b"
    problems = validate(table)
    assert {p.key for p in problems} == {"train.lr", "train.optimizer", "train.seeds", "model.batch_norm",
                                         "sweep.batch_sizes", "data.dataset", "name"}
    assert all(isinstance(p, Problem) and str(p).startswith(p.key) for p in problems)


def test_a_list_reports_every_bad_item():
    problems = validate(tiny_table(sweep={"batch_sizes": ["abc", -4, 0, 2.5]}))
    assert [p.key for p in problems] == ["sweep.batch_sizes"] * 4
    for shown in ("'abc'", "-4", "= 0", "2.5"):
        assert sum(shown in p for p in problems) == 1, (shown, problems)


@pytest.mark.parametrize("section,key,value,suggestion", [
    ("data", "dataset", "MNIST1D", "did you mean 'mnist1d'?"),
    ("data", "dataset", "synthtic", "did you mean 'synthetic'?"),
    ("model", "kind", "MLP", "did you mean 'mlp'?"),
    ("train", "optimizer", "Adam", "did you mean 'adam'?"),
    ("train", "lr_scaling", "Linear", "did you mean 'linear'?"),
])
def test_close_matches_are_suggested(section, key, value, suggestion):
    problems = validate(tiny_table(**{section: {key: value}}))
    assert len(problems) == 1 and problems[0].endswith(suggestion), problems


def test_no_suggestion_when_nothing_is_close():
    problems = validate(tiny_table(data={"dataset": "my-own-data.csv"}, model={"kind": "transformer"}))
    assert problems and not any("did you mean" in p for p in problems)


def test_the_command_line_prints_the_suggestion(tmp_path, capsys):
    config = tmp_path / "typo.toml"
    config.write_text('[data]\ndataset = "MNIST1D"\n', encoding="utf-8")
    assert cli.main(["run", str(config), "--out", str(tmp_path)]) == 2
    assert "did you mean 'mnist1d'?" in capsys.readouterr().err


def test_config_error_keeps_keys_through_pickle_and_takes_plain_strings():
    error = ConfigError([Problem("train.lr", "train.lr = 0: must be greater than 0.0"), "output folder x: bad"])
    assert error.problems == ["train.lr = 0: must be greater than 0.0", "output folder x: bad"]
    again = pickle.loads(pickle.dumps(error))
    assert [p.key for p in again.problems] == ["train.lr", None] and str(again) == str(error)
    with pytest.raises(ConfigError) as caught:
        parse_config(tiny_table(train={"lr": 0}))
    assert [p.key for p in caught.value.problems] == ["train.lr"]
