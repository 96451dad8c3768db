import subprocess
import sys

import pytest

from engine import schema
from engine.config import (SEED_MAX, ExperimentConfig, field_help, iter_fields, load_config, loads_config,
                           parse_config, validate)
from engine.errors import ConfigError
from engine.resources import presets
from tests.conftest import ROOT, tiny_table


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


# ----- hostile configs: every number bounded, every text printable, every file one error -------------------------

def test_every_number_the_engine_uses_has_a_lower_and_an_upper_bound():
    for key, field in iter_fields():
        if field.type in ("int", "float", "list[int]", "list[float]", int, float):
            meta = field.metadata
            assert "min" in meta or "min_exclusive" in meta, key
            assert "max" in meta or "max_exclusive" in meta, key


def test_the_seed_bound_is_what_every_seeder_accepts():
    import numpy as np
    import torch

    np.random.RandomState(SEED_MAX)           # MNIST-1D's generator: the narrowest
    torch.manual_seed(SEED_MAX)
    np.random.default_rng([SEED_MAX, 1])
    with pytest.raises(ValueError):
        np.random.RandomState(SEED_MAX + 1)


@pytest.mark.parametrize("section,key,value,expected", [
    ("data", "data_seed", 2**32, "data.data_seed = 4294967296: must be at most 4294967295"),
    ("data", "data_seed", 10**29, "data.data_seed = 100000000000000000000000000000: must be at most"),
    ("train", "seeds", [0, 10**29], "train.seeds = 100000000000000000000000000000: must be at most 4294967295"),
    ("train", "samples", 10**12 + 1, "train.samples = 1000000000001: must be at most"),
    ("train", "eval_batch_size", 2**31, "train.eval_batch_size = 2147483648: must be at most 2147483647"),
    ("train", "base_batch_size", 2**63, "train.base_batch_size = 9223372036854775808: must be at most"),
    ("sweep", "batch_sizes", [2**31], "sweep.batch_sizes = 2147483648: must be at most 2147483647"),
    ("sweep", "learning_rates", [1e308], "sweep.learning_rates = 1e+308: must be at most 100.0"),
    pytest.param("train", "warmup_epochs", 10**400, "train.warmup_epochs = <a 401-digit number>: must be at most",
                 id="train-warmup_epochs-401-digits"),
    pytest.param("train", "epochs", 10**5000,
                 "train.epochs = <a number of more than 4300 digits>: must be at most 100000",
                 id="train-epochs-5001-digits"),
    ("train", "lr", float("inf"), "train.lr = inf: must be a finite number"),
])
def test_numbers_out_of_range_name_key_and_value(section, key, value, expected):
    problems = problems_of(tiny_table(**{section: {key: value}}))
    assert any(expected in problem for problem in problems), problems


def test_largest_seeds_are_accepted():
    config = parse_config(tiny_table(data={"data_seed": SEED_MAX}, train={"seeds": [0, SEED_MAX]}))
    assert config.data.data_seed == SEED_MAX and config.train.seeds == [0, SEED_MAX]


@pytest.mark.parametrize("bad", ["exp\x00b", "exp\nb", "exp\tb", "exp\rb", "exp\x7f", "exp\x85", "exp\u2028b",
                                 "exp\ud800"])
def test_control_characters_in_a_name_are_an_error_naming_the_key(bad):
    problems = problems_of(tiny_table(name=bad))
    assert len(problems) == 1
    assert problems[0].startswith("name = ") and "must not contain control characters" in problems[0]
    assert "\n" not in problems[0] and "\r" not in problems[0]
    problems[0].encode("utf-8")


def test_long_and_unicode_names_are_accepted():
    assert parse_config(tiny_table(name="x" * 300)).name == "x" * 300
    assert parse_config(tiny_table(name="Größe 🙂 批量")).name == "Größe 🙂 批量"


def test_description_may_span_lines_but_other_text_may_not():
    assert parse_config(tiny_table(description="line one\n\tline two")).description == "line one\n\tline two"
    assert problems_of(tiny_table(description="a\x00b"))[0].startswith("description = ")
    assert problems_of(tiny_table(data={"label_column": "la\nbel"}))[0].startswith("data.label_column = ")
    assert problems_of(tiny_table(data={"dataset": "data\x00.csv"}))[0].startswith("data.dataset = ")


def test_unknown_keys_with_control_characters_are_shown_escaped():
    table = tiny_table()
    table["evil\nkey"] = 1
    problems = problems_of(table)
    assert problems == ["'evil\\nkey': unknown key in the top level (known: name, description, data, model, train, "
                        "sweep, science)"]


def test_paths_the_file_system_refuses_are_problems_not_crashes():
    assert "File name too long" in problems_of(tiny_table(data={"dataset": "a" * 5000}))[0]
    assert "home directory" in problems_of(tiny_table(data={"dataset": "~nosuchuser12345/x.csv"}))[0]
    assert problems_of(tiny_table(data={"labels": "b" * 5000}))[0].startswith("data.labels = ")


@pytest.mark.parametrize("sections,expected", [
    ({"model": {"batch_norm": True}, "sweep": {"batch_sizes": [1, 16]}},
     "sweep.batch_sizes contains 1: batch normalization"),
    ({"model": {"kind": "cnn", "width": 16, "depth": 20}}, "model.depth = 20: a cnn doubles its channels"),
    ({"data": {"num_samples": 2_000_000, "num_features": 100_000}}, "data.num_samples = 2000000 with "
                                                                     "data.num_features = 100000"),
    ({"train": {"seeds": list(range(101))}, "sweep": {"batch_sizes": list(range(1, 101))}}, "make 10,100 trials"),
    ({"train": {"lr": 1e-9, "base_batch_size": 100_000}, "sweep": {"batch_sizes": [16]}},
     "train.lr = 1e-09: scaled for batch size 16"),
])
def test_combinations_that_could_not_train_are_problems(sections, expected):
    problems = problems_of(tiny_table(**sections))
    assert any(expected in problem for problem in problems), problems


HOSTILE_DOCUMENTS = {
    "arrays nested 1000 deep": ("x = " + "[" * 1000 + "]" * 1000, "nested too deeply"),
    "inline tables nested 600 deep": ("x = " + "{a = " * 600 + "1" + "}" * 600, "nested too deeply"),
    "an integer of 5000 digits": ("[train]\nepochs = " + "9" * 5000, "a number too long to read"),
}


@pytest.mark.parametrize("case", HOSTILE_DOCUMENTS)
def test_documents_that_break_the_toml_reader_are_one_error(case, tmp_path):
    text, expected = HOSTILE_DOCUMENTS[case]
    with pytest.raises(ConfigError) as caught:
        loads_config(text)
    assert len(caught.value.problems) == 1 and expected in caught.value.problems[0]
    path = tmp_path / "hostile.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.problems == [f"{path}: " + caught.value.problems[0].split(": ", 1)[1]]


@pytest.mark.parametrize("content,expected", [
    (b"\x89HDF\r\n\x1a\n\x00\x00\xff\xfe", "not a text file (byte 0 is not UTF-8)"),
    (b'name = "ok"\n\x80', "not a text file (byte 12 is not UTF-8)"),
    (b"name = 'x'\n" + b"#" * (1 << 20), "larger than 1024 KiB"),
    (b"\x00\x00\x00", "not valid TOML"),
])
def test_files_that_are_not_configs_are_one_error(content, expected, tmp_path):
    path = tmp_path / "not-a-config.toml"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert len(caught.value.problems) == 1 and expected in caught.value.problems[0]


def test_a_folder_is_not_a_config(tmp_path):
    with pytest.raises(ConfigError, match="is a folder, not a config file"):
        load_config(tmp_path)


@pytest.mark.parametrize("case", ["arrays nested 1000 deep", "an integer of 5000 digits"])
def test_command_line_exits_2_with_one_line_and_no_traceback(case, tmp_path):
    text, expected = HOSTILE_DOCUMENTS[case]
    path = tmp_path / "hostile.toml"
    path.write_text(text, encoding="utf-8")
    done = subprocess.run([sys.executable, str(ROOT / "main.py"), "run", str(path), "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [f"error: {path}: " + done.stderr.split(f"{path}: ", 1)[1].rstrip("\n")]
    assert expected in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()


# ----- trial names ---------------------------------------------------------------------------------------------

def test_learning_rates_that_print_alike_are_two_trials_and_both_complete(tmp_path):
    from engine.runfile import read_run
    from engine.sweep import run_sweep

    config = parse_config(tiny_table(train={"epochs": 1},
                                     sweep={"batch_sizes": [32], "learning_rates": [0.1, 0.1000001]}))
    run = read_run(run_sweep(config, tmp_path))
    assert sorted(t.base_lr for t in run.trials) == [0.1, 0.1000001]
    assert [t.status for t in run.trials] == [schema.COMPLETED, schema.COMPLETED]
    assert len({t.name for t in run.trials}) == 2


def test_trial_names_keep_their_short_form_where_it_is_exact():
    assert schema.trial_name(16, 0) == "bs00016_seed0"
    assert schema.trial_name(16, 0, 0.05) == "bs00016_seed0_lr0.05"
    assert schema.trial_name(16, 0, 1e-05) == "bs00016_seed0_lr1e-05"
    assert schema.trial_name(16, 0, 0.1000001) == "bs00016_seed0_lr0.1000001"
    assert schema.trial_name(16, 0, 1 / 3) == "bs00016_seed0_lr0.3333333333333333"


def test_a_plan_never_names_two_trials_alike():
    from engine.sweep import plan_trials

    config = ExperimentConfig()
    config.sweep.batch_sizes = [16, 16]   # past the validator: built in code
    with pytest.raises(ConfigError, match="give the trial bs00016_seed0 twice"):
        plan_trials(config)


def test_a_byte_order_mark_is_not_part_of_the_config(tmp_path):
    path = tmp_path / "notepad.toml"
    path.write_bytes(b"\xef\xbb\xbfname = \"bom\"\n")
    assert load_config(path).name == "bom"


def test_a_config_path_the_file_system_refuses_is_one_error(tmp_path, capsys):
    from engine import cli

    assert cli.main(["run", "a" * 5000, "--out", str(tmp_path)]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].endswith(": cannot be read (File name too long)")
