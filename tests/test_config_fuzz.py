"""Property-based fuzzing of the config validator and of `run` (hypothesis).

Two promises are checked on generated input, hostile and extreme:
- the validator answers every table, text or file with a config or a ConfigError of one-line problems, never
  another exception; what it accepts can be planned, written back as TOML and read again unchanged;
- every config it accepts then runs on the command line (tiny budgets, real code paths) without a traceback
  and without a trial that fails: the only outcomes are completed, diverged and out of memory, or exit 2 with
  a one-line reason when the loaded data is too small for the split or a batch size, or there is no GPU.

The runs go to ONE child process (restarted after a crash or a hang) so that a crash in native code fails the
test instead of taking pytest down. The examples are derandomized: the same cases on every run. More of them:
`make fuzz-long` (FUZZ_EXAMPLES=10000 multiplies every count here by 10000/500).
"""
from __future__ import annotations

import contextlib
import io
import json
import math
import os
import select
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

import hypothesis.strategies as st
import pytest
import tomli_w
from hypothesis import HealthCheck, assume, event, given, settings

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))   # the child process runs this file as a script, without conftest.py

from engine import schema  # noqa: E402
from engine.config import (BUILTIN_DATASETS, ExperimentConfig, iter_fields, load_config, loads_config,  # noqa: E402
                           parse_config)
from engine.errors import ConfigError  # noqa: E402

# Each property's share at FUZZ_EXAMPLES=500 (710 in all); `make test` runs half of that (355).
SCALE = int(os.environ.get("FUZZ_EXAMPLES", "250")) / 500
VALIDATOR_EXAMPLES, TEXT_EXAMPLES, FILE_EXAMPLES, RUN_EXAMPLES = (max(1, round(n * SCALE)) for n in (450, 150, 50, 60))
# A run of these tiny configs takes well under a second; this long means the child hangs.
RUN_TIMEOUT_S = 60


def fuzz_settings(examples: int) -> settings:
    return settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                           HealthCheck.data_too_large])


# ----- hostile values ------------------------------------------------------------------------------------------

EDGE_INTEGERS = [0, 1, -1, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**53 + 1, 2**63 - 1, 2**63, 2**64 - 1, 2**64,
                 10**29, -(10**29), 10**400]
EDGE_FLOATS = [0.0, -0.0, 5e-324, 1e-300, 0.1, 0.1000001, 0.9999999999999999, 1.0, 100.0, 100.00000000000001,
               1e308, math.inf, -math.inf, math.nan]
HOSTILE_TEXT = ["", " ", "exp\x00b", "exp\nb", "a\tb", "\x7f", "\x85", "\u2028", "\ud800", "exp\udfff",
                "x" * 300, "é" * 200, "../../etc", "CON", "a/b", "\u202eevil", "🙂", "~nosuchuser/x", "a" * 5000]

any_text = st.one_of(st.sampled_from(HOSTILE_TEXT),
                     st.text(st.characters(exclude_categories=()), max_size=40))
scalars = st.one_of(st.sampled_from(EDGE_INTEGERS), st.integers(), st.sampled_from(EDGE_FLOATS), st.floats(),
                    st.booleans(), any_text)
junk = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                      st.dictionaries(any_text, inner, max_size=3)),
                    max_leaves=8)


def near_bounds(meta) -> list:
    """The bounds of a field and their neighbours: where off-by-one and overflow live."""
    values = []
    for bound in ("min", "max", "min_exclusive", "max_exclusive"):
        if bound in meta:
            b = meta[bound]
            values += [b, b + 1, b - 1] if isinstance(b, int) else [b, math.nextafter(b, math.inf),
                                                                   math.nextafter(b, -math.inf)]
    return values


def value_for(field) -> st.SearchStrategy:
    """Mostly values of the right kind at and around the edges, sometimes anything at all."""
    meta = field.metadata
    kind = meta.get("kind")
    if kind in ("int_list", "float_list"):
        item = st.sampled_from(EDGE_INTEGERS + EDGE_FLOATS + near_bounds(meta)) | st.integers(1, 300)
        plausible = st.lists(item, max_size=4)
    elif kind == "choice_list":
        plausible = st.lists(st.sampled_from(meta["choices"]) | any_text, max_size=4)
    elif "choices" in meta:
        plausible = st.sampled_from(meta["choices"]) | any_text
    elif field.type in ("bool", bool):
        plausible = st.booleans()
    elif field.type in ("int", int, "float", float):
        plausible = st.sampled_from(EDGE_INTEGERS + EDGE_FLOATS + near_bounds(meta))
        if "min" in meta and "max" in meta:
            plausible |= (st.integers(meta["min"], meta["max"]) if field.type in ("int", int)
                          else st.floats(meta["min"], meta["max"]))
    elif field.name == "dataset":
        plausible = st.sampled_from(BUILTIN_DATASETS) | any_text
    else:
        plausible = any_text
    return st.one_of(plausible, plausible, plausible, junk)


@st.composite
def config_tables(draw) -> dict:
    """A table with any subset of the known keys (hostile values), sometimes unknown keys or a section
    that is not a table."""
    table: dict = {}
    for key, field in iter_fields():
        if draw(st.integers(0, 2)) == 0:
            continue
        section, _, name = key.rpartition(".")
        target = table.setdefault(section, {}) if section else table
        if isinstance(target, dict):
            target[name] = draw(value_for(field))
        if section and draw(st.integers(0, 40)) == 0:
            table[section] = draw(junk)
    if draw(st.integers(0, 10)) == 0:
        table[draw(any_text)] = draw(junk)
    return table


def assert_problems_are_lines(error: ConfigError) -> None:
    assert error.problems
    for problem in error.problems:
        assert isinstance(problem, str) and problem
        assert "\n" not in problem and "\r" not in problem, problem
        problem.encode("utf-8")   # printable to any terminal and storable: no lone surrogates


def assert_accepted_config_is_usable(config: ExperimentConfig) -> None:
    """What the engine does with a config before training: plan every trial, count the budget, write it back."""
    from engine.sweep import plan_trials
    from engine.train import total_steps

    trials = plan_trials(config)
    names = [t.name for t in trials]
    assert len(set(names)) == len(names)
    for trial in trials:
        assert math.isfinite(trial.lr) and trial.lr > 0
        steps = total_steps(config.train, max(1, config.data.num_samples // trial.batch_size), trial.batch_size)
        assert 0 < steps * trial.batch_size < 2**63
    again = loads_config(config.to_toml())
    assert again == config


@st.composite
def one_key_mutated(draw) -> dict:
    """A config that the validator should accept, with one key (any) set to a hostile value: each key's own
    check is then the one that answers."""
    table = draw(extreme_valid_tables())
    key, field = draw(st.sampled_from(list(iter_fields())))
    section, _, name = key.rpartition(".")
    (table.setdefault(section, {}) if section else table)[name] = draw(value_for(field))
    return table


@fuzz_settings(VALIDATOR_EXAMPLES)
@given(st.one_of(config_tables(), one_key_mutated()))
def test_the_validator_answers_every_table_with_a_config_or_one_line_problems(table):
    try:
        config = parse_config(table)
    except ConfigError as error:
        event("refused")
        assert_problems_are_lines(error)
        return
    event("accepted")
    assert_accepted_config_is_usable(config)


HOSTILE_DOCUMENTS = ["x = " + "[" * 1000 + "]" * 1000, "x = " + "{a = " * 600 + "1" + "}" * 600,
                     "x = " + "9" * 5000, "[train]\nseeds = [" + "7" * 4301 + "]", "name = 'a'\x00",
                     'name = "\\ud800"', "a" + ".a" * 3000 + " = 1", "[[data]]\n[[data]]"]


@fuzz_settings(TEXT_EXAMPLES)
@given(st.one_of(st.sampled_from(HOSTILE_DOCUMENTS),
                 st.text(max_size=200),
                 config_tables().map(lambda table: _toml_or_text(table))))
def test_any_text_is_a_config_or_one_error(text):
    try:
        config = loads_config(text)
    except ConfigError as error:
        assert_problems_are_lines(error)
        return
    assert_accepted_config_is_usable(config)


def _toml_or_text(table: dict) -> str:
    try:
        return tomli_w.dumps(table)
    except (TypeError, ValueError, UnicodeEncodeError):  # tomli_w refuses some of what the strategy makes
        return repr(table)


@fuzz_settings(FILE_EXAMPLES)
@given(st.one_of(st.binary(max_size=300),
                 st.sampled_from([b"\xff\xfe" + "name = 'x'".encode("utf-16-le"), b"\x89HDF\r\n\x1a\n" + bytes(64),
                                  b"name = 'ok'\n" + b"\x80" * 10, b"x" * (2**20 + 1)]),
                 st.sampled_from(HOSTILE_DOCUMENTS).map(str.encode)))
def test_any_file_is_a_config_or_one_error(content):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "config.toml"
        path.write_bytes(content)
        try:
            config = load_config(path)
        except ConfigError as error:
            assert_problems_are_lines(error)
            return
        assert_accepted_config_is_usable(config)


def test_folders_and_devices_are_one_error(tmp_path):
    for path, words in ((tmp_path, "is a folder"), (Path("/dev/null"), "not a regular file"),
                        (tmp_path / "a\x00b.toml", "cannot be read")):
        with pytest.raises(ConfigError) as caught:
            load_config(path)
        assert len(caught.value.problems) == 1 and words in caught.value.problems[0]


# ----- every accepted config runs ------------------------------------------------------------------------------

@st.composite
def extreme_valid_tables(draw) -> dict:
    """Configs the validator should accept, pushed to the edges that cost nothing to train: seeds at 2**32 - 1,
    learning rates that print alike (0.1, 0.1000001), momentum a hair under 1, warm-up of 100000 epochs, the
    largest batch size the data allows, unicode names and names longer than a file name may be. What costs time
    or memory (data size, width, budget) stays tiny; its extremes are planned, not trained, by the validator
    property above."""
    dataset = draw(st.sampled_from(BUILTIN_DATASETS))
    kind = draw(st.sampled_from(["mlp", "cnn", "lstm", "gru"]))
    num_samples = draw(st.sampled_from([20, 21, 40, 64, 120]))
    seed = st.sampled_from([0, 1, 2**31 - 1, 2**31, 2**32 - 2, 2**32 - 1]) | st.integers(0, 2**32 - 1)
    lr = st.sampled_from([1e-5, 0.05, 0.1, 0.1000001, 1.0, 99.99999999999999, 100.0]) | st.floats(1e-5, 100.0)
    name_chars = st.characters(exclude_categories=("Cc", "Cs", "Zl", "Zp"), exclude_characters='/\\:*?"<>|')
    train_size_guess = num_samples // 2   # the validation split takes at most half here
    batch_size = st.sampled_from([1, 2, 3, train_size_guess]) | st.integers(1, train_size_guess)
    budget = draw(st.sampled_from(["samples", "samples", "epochs"]))
    table = {
        "name": draw(st.text(name_chars, min_size=1, max_size=40).filter(str.strip)
                     | st.sampled_from(["x" * 300, "é" * 200, "🙂" * 100, " leading and trailing ", "..", "CON"])),
        "description": draw(st.text(st.characters(exclude_categories=("Cc", "Cs", "Zl", "Zp")) | st.just("\n"),
                                    max_size=60)),
        "data": {"dataset": dataset, "num_samples": num_samples, "data_seed": draw(seed),
                 "num_features": draw(st.sampled_from([1, 2, 8, 64])),
                 "num_classes": draw(st.sampled_from([2, 3, 10, 1000])),
                 "label_noise": draw(st.sampled_from([0.0, 0.5, 1.0]) | st.floats(0.0, 1.0)),
                 "sequence_length": draw(st.sampled_from([4, 5, 16])),
                 "val_fraction": draw(st.sampled_from([0.05, 0.2, 0.5]) | st.floats(0.05, 0.5)),
                 "use_test_split": draw(st.booleans())},
        "model": {"kind": kind, "batch_norm": kind in ("mlp", "cnn") and draw(st.booleans()),
                  "width": draw(st.sampled_from([1, 2, 7, 16])),
                  "depth": draw(st.sampled_from([1, 2, 3] + ([64] if kind == "mlp" else [6 if kind == "cnn" else 4])))},
        "train": {"optimizer": draw(st.sampled_from(["sgd", "adam", "adamw"])), "lr": draw(lr),
                  "momentum": draw(st.sampled_from([0.0, 0.9, 0.9999999999999999])),
                  "weight_decay": draw(st.sampled_from([0.0, 1e-4, 1.0])),
                  "lr_scaling": draw(st.sampled_from(["none", "linear", "sqrt"])),
                  "base_batch_size": draw(st.sampled_from([1, 32, 2**31 - 1])),
                  "warmup_epochs": draw(st.sampled_from([0.0, 0.5, 3.0, 100_000.0])),
                  "schedule": draw(st.sampled_from(["constant", "cosine"])),
                  "budget": budget, "epochs": 1,
                  # budget "samples" of at most one batch: exactly one step on every real code path
                  "samples": draw(st.integers(1, 3)),
                  "seeds": draw(st.lists(seed, min_size=1, max_size=2, unique=True)),
                  "eval_batch_size": draw(st.sampled_from([1, 7, 1024, 2**31 - 1]))},
        "sweep": {"batch_sizes": draw(st.lists(batch_size, min_size=1, max_size=2, unique=True)),
                  "learning_rates": draw(st.sampled_from([[], [0.1, 0.1000001], [1e-5, 100.0]])
                                         | st.lists(lr, max_size=2, unique=True)),
                  "device": draw(st.sampled_from(["cpu", "cpu", "auto", "cuda"])), "strategy": "grid"},
        # An evaluation after every example and a noise measurement at every step, with micro-batches from 2 to
        # more than any batch here: the densest schedules, at the cost of a step or three.
        "science": {"eval_schedule": draw(st.sampled_from(["log", "every", "epoch"])),
                    "eval_per_decade": draw(st.sampled_from([1, 100])),
                    "eval_every": draw(st.sampled_from([1, 10**12])),
                    "noise_scale": draw(st.booleans()), "noise_every": 1,
                    "noise_microbatches": draw(st.sampled_from([2, 3, 1024]))},
    }
    return table


class RunWorker:
    """One child process that runs configs through the real command line, one per request, and says how each
    ended. Restarted after it crashes or hangs, so one bad case is reported, not fatal."""

    def __init__(self):
        self.process: subprocess.Popen | None = None

    def run(self, config_text: str) -> dict:
        if self.process is None or self.process.poll() is not None:
            self.process = subprocess.Popen([sys.executable, __file__], cwd=ROOT, stdin=subprocess.PIPE,
                                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                            encoding="utf-8")
        self.process.stdin.write(json.dumps({"config": config_text}) + "\n")
        self.process.stdin.flush()
        ready, _, _ = select.select([self.process.stdout], [], [], RUN_TIMEOUT_S)
        line = self.process.stdout.readline() if ready else ""
        if not line:
            hung = self.process.poll() is None
            self.close()
            return {"crash": "hung" if hung else f"child died with exit status {self.process.returncode}"}
        return json.loads(line)

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
        if self.process is not None:
            self.process.wait()


@pytest.fixture(scope="module")
def run_worker():
    worker = RunWorker()
    yield worker
    worker.close()


ENDED_WELL = {schema.COMPLETED, schema.DIVERGED, schema.OUT_OF_MEMORY}
# What only the loaded data or the machine can tell: the split's sizes, whether there is a GPU. Any other exit 2
# is something the validator should have said.
LATE_ERRORS = ("examples are too few", "larger than the training set", "no usable NVIDIA GPU")


@fuzz_settings(RUN_EXAMPLES)
@given(table=extreme_valid_tables())
def test_every_config_the_validator_accepts_runs_without_a_traceback(table, run_worker):
    try:
        config = parse_config(table)
    except ConfigError:
        assume(False)   # the strategy aims at valid configs; the few it misses say nothing here
    reply = run_worker.run(tomli_w.dumps(table))
    assert not reply.get("crash"), reply
    assert "Traceback" not in reply["stderr"], reply["stderr"]
    assert reply["exit"] in (0, 2), reply
    if reply["exit"] == 2:
        event("data refused")
        errors = [line for line in reply["stderr"].splitlines() if line.startswith("error: ")]
        assert errors and all(any(words in e for words in LATE_ERRORS) for e in errors), reply["stderr"]
        return
    event("ran")
    from engine.sweep import plan_trials
    planned = {t.name: t for t in plan_trials(config)}
    assert set(reply["trials"]) == set(planned)
    for name, trial in reply["trials"].items():
        assert trial["status"] in ENDED_WELL, (name, trial)
        assert (trial["batch_size"], trial["seed"]) == (planned[name].batch_size, planned[name].seed)


def _serve() -> None:
    """The child's side: one JSON request per line in (a config's text), one JSON reply per line out."""
    from engine import cli
    from engine.runfile import read_run

    replies = sys.stdout
    for line in sys.stdin:
        request = json.loads(line)
        reply: dict = {"trials": {}}
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "fuzz.toml"
            path.write_text(request["config"], encoding="utf-8")
            out, err = io.StringIO(), io.StringIO()
            try:
                with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                    reply["exit"] = cli.main(["run", str(path), "--out", str(Path(folder) / "out")])
                if reply["exit"] == 0:
                    run = read_run(out.getvalue().splitlines()[-1])
                    reply["trials"] = {t.name: {"status": t.status, "error": t.error, "batch_size": t.batch_size,
                                                "seed": t.seed} for t in run.trials}
            except BaseException:  # noqa: BLE001 - the parent judges; the child only reports
                reply["exit"] = None
                err.write(traceback.format_exc())
            reply["stderr"] = err.getvalue()
        replies.write(json.dumps(reply) + "\n")
        replies.flush()


if __name__ == "__main__":
    _serve()
