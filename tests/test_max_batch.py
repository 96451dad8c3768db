"""find-max-batch: the search against an injected memory figure (where the test is about the search), the
real measurement on the CPU, and the command line end to end."""
import math
import os
import subprocess
import sys
import threading

import h5py
import numpy as np
import pytest
import tomli_w
import torch

from engine import schema
from engine.config import parse_config
from engine.data import load_dataset
from engine.errors import UserError
from engine.hardware.max_batch import RESOLUTION, find_max_batch, parse_memory_size, write_max_batch_file
from engine.hardware.memory_model import fit_memory_model
from engine.hardware.step_memory import StepMemory, measure_step_memory
from tests.conftest import ROOT, tiny_table

CPU = torch.device("cpu")


def linear_memory(fixed: int, per_example: int, log: list[int] | None = None):
    def measure(batch_size: int) -> StepMemory:
        if log is not None:
            log.append(batch_size)
        return StepMemory(batch_size, fixed + per_example * batch_size, fixed, "injected")
    return measure


@pytest.fixture(scope="module")
def tiny():
    config = parse_config(tiny_table(data={"dataset": "synthetic", "num_samples": 3000, "num_features": 8,
                                           "num_classes": 3}))
    return config, load_dataset(config.data)


@pytest.mark.parametrize("text, expected", [("2GiB", 2 * 2**30), ("512 MiB", 512 * 2**20), ("1.5G", 1_500_000_000),
                                            ("800000", 800_000), ("64kb", 64_000), ("3 KiB", 3072)])
def test_memory_sizes_are_read_in_the_units_people_write(text, expected):
    assert parse_memory_size(text) == expected


@pytest.mark.parametrize("text", ["", "lots", "-1GiB", "0", "2 GiBs", "1e9"])
def test_a_memory_size_that_is_not_one_is_a_user_error_naming_it(text):
    with pytest.raises(UserError, match="--memory-limit"):
        parse_memory_size(text)


def test_search_finds_the_largest_fit_within_its_resolution_and_applies_the_margin(tiny):
    config, data = tiny
    tried: list[int] = []
    # 1,000 + 100 per example against 50,000: batch sizes up to 490 fit.
    result = find_max_batch(config, memory_limit=50_000, measure=linear_memory(1000, 100, tried), dataset=data)
    assert 490 * (1 - RESOLUTION) <= result.largest_fit <= 490
    assert tried[:5] == [16, 32, 64, 128, 256] and 512 in tried   # doubling from the smallest configured size
    assert all(p.fits == (p.batch_size <= 490) for p in result.probes)
    assert result.recommended == math.floor(result.largest_fit * 0.9)
    assert result.model.per_example_bytes == pytest.approx(100) and result.model.fixed_bytes == pytest.approx(1000)
    assert result.model.largest_batch_within(50_000) == 490
    assert len(tried) <= 12 and not result.stopped


def test_search_halves_below_the_smallest_configured_size_when_that_does_not_fit(tiny):
    config, data = tiny
    result = find_max_batch(config, memory_limit=2_000, measure=linear_memory(1000, 100), dataset=data)
    assert result.largest_fit == 10 and result.probes[0].batch_size == 16 and not result.probes[0].fits
    nothing = find_max_batch(config, memory_limit=500, measure=linear_memory(1000, 100), dataset=data)
    assert nothing.largest_fit is None and nothing.recommended is None
    assert nothing.probes[-1].batch_size == 1 and "no batch size fits" in nothing.outcome


def test_an_out_of_memory_error_means_it_does_not_fit_and_any_other_error_is_named(tiny):
    config, data = tiny

    def measure(batch_size: int) -> StepMemory:
        if batch_size > 300:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return StepMemory(batch_size, batch_size, 0, "injected")

    result = find_max_batch(config, memory_limit=10**9, measure=measure, dataset=data)
    assert 300 * (1 - RESOLUTION) <= result.largest_fit <= 300
    assert any(p.memory is None and p.reason == "out of memory" for p in result.probes)

    def broken(batch_size: int) -> StepMemory:
        raise ValueError("Expected more than 1 value per channel when training")
    with pytest.raises(UserError, match="batch size 16: training failed .*ValueError: Expected more than 1"):
        find_max_batch(config, memory_limit=10**9, measure=broken, dataset=data)


def test_the_search_stops_at_the_training_set_size_and_says_so(tiny):
    config, data = tiny
    result = find_max_batch(config, memory_limit=10**12, measure=linear_memory(1000, 100), dataset=data)
    assert result.largest_fit == data.train_size and result.reached_train_size
    assert "whole training set" in result.outcome


def test_stop_ends_the_search_after_the_try_under_way_and_the_file_keeps_the_tries(tiny, tmp_path):
    config, data = tiny
    stop = threading.Event()
    seen = []

    def on_probe(probe):
        seen.append(probe.batch_size)
        if len(seen) == 2:
            stop.set()
    result = find_max_batch(config, memory_limit=10**12, measure=linear_memory(1000, 100), dataset=data,
                            on_probe=on_probe, stop=stop)
    assert result.stopped and seen == [16, 32] and "stopped" in result.outcome
    path = write_max_batch_file(result, config, tmp_path, {"device": "cpu"})
    with h5py.File(path) as handle:
        assert handle.attrs["status"] == schema.CANCELLED
        assert list(handle[schema.MAX_BATCH_GROUP]["batch_size"][:]) == [16, 32]


def test_the_real_measurement_grows_with_batch_size_and_does_not_depend_on_what_ran_before(tiny):
    config, data = tiny
    first = measure_step_memory(config, data, 64, CPU)
    large = measure_step_memory(config, data, 2048, CPU)
    again = measure_step_memory(config, data, 64, CPU)
    assert again == first                      # the same figure after a larger step: nothing carried over
    assert large.train_bytes > first.train_bytes
    # 2,048 examples of 8 float32 inputs are 64 KiB for the batch alone; activations add more.
    assert large.train_bytes - first.train_bytes > (2048 - 64) * 8 * 4
    assert first.eval_bytes == large.eval_bytes - (2048 - 64) * (8 * 4 + 8)   # the batch is held during evaluation


def test_memory_model_fits_the_larger_batch_sizes():
    model = fit_memory_model([8, 16, 32, 64, 128, 256], [5000, 5000, 5000, 1000 + 64 * 60, 1000 + 128 * 60,
                                                           1000 + 256 * 60])
    assert model.per_example_bytes == pytest.approx(60) and model.fixed_bytes == pytest.approx(1000)
    assert fit_memory_model([32, 32], [1, 2]) is None


def cli(*args):
    return subprocess.run([sys.executable, str(ROOT / "main.py"), *map(str, args)], capture_output=True,
                          text=True, timeout=300, env=os.environ.copy())


def test_command_line_finds_the_limit_writes_the_tries_and_report_reads_them(tmp_path, capsys):
    config = tmp_path / "experiment.toml"
    config.write_text(tomli_w.dumps(tiny_table(data={"dataset": "synthetic", "num_samples": 3000, "num_features": 8,
                                                     "num_classes": 3})))
    result = cli("find-max-batch", config, "--memory-limit", "200KiB", "--out", tmp_path, "--device", "cpu")
    assert result.returncode == 0, result.stderr
    path = tmp_path / result.stdout.strip().splitlines()[-1]
    assert "batch size 16: fits" in result.stderr and "does not fit" in result.stderr
    with h5py.File(path) as handle:
        assert handle.attrs[schema.RUN_KIND_ATTR] == schema.MAX_BATCH_KIND
        group = handle[schema.MAX_BATCH_GROUP]
        fits, sizes = group["fits"][:].astype(bool), group["batch_size"][:]
        assert fits.any() and not fits.all()
        assert group.attrs["largest_fit"] == sizes[fits].max() < sizes[~fits].min()
        assert np.all(group["train_bytes"][:][fits] <= 200 * 1024)
        assert group.attrs["recommended_batch_size"] == math.floor(group.attrs["largest_fit"] * 0.9)
        assert group["train_bytes"].attrs["units"] == "bytes"
    assert f"with the 10% margin: {math.floor(sizes[fits].max() * 0.9)}" in result.stderr

    from engine.cli import main
    assert main(["report", str(path)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "find-max-batch: one row per try, in the order tried"
    assert [int(line.split()[0]) for line in printed[2:2 + len(sizes)]] == list(sizes)
    assert printed[-1].startswith("largest batch size that fits in 200 KiB (--memory-limit)")



def test_a_bad_memory_limit_is_one_line_and_exit_2(tmp_path, capsys):
    from engine.cli import main
    assert main(["find-max-batch", "demo", "--memory-limit", "lots"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: --memory-limit 'lots': give a memory size such as 2GiB, 512MiB or 1.5GB (at least 1 byte)"]


def test_a_try_that_runs_out_of_memory_leaves_nothing_of_its_step_alive(tiny, monkeypatch):
    """What gpu_check proves on CUDA (memory back within 5%), here on the release itself: the error that reaches
    the search holds no frame of the failed step, so the step's tensors are freed before the cache is emptied."""
    import gc
    import weakref

    from engine.hardware import step_memory
    config, data = tiny
    held = []

    class RunsOutOfMemory(torch.nn.Module):
        def __init__(self, *args):
            super().__init__()
            self.layer = torch.nn.Linear(8, 3)

        def forward(self, inputs):
            activations = torch.ones(4_000_000)      # 16 MB the failed step holds when it fails
            held.append(weakref.ref(activations))
            raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 10 GB")

    monkeypatch.setattr(step_memory, "build_model", lambda *args: RunsOutOfMemory())
    with pytest.raises(RuntimeError, match="can't allocate memory") as raised:
        measure_step_memory(config, data, 64, CPU)
    gc.collect()
    assert raised.value is not None and held and held[0]() is None    # freed while the error is still held
    result = find_max_batch(config, memory_limit=10**9, dataset=data,
                            measure=lambda size: measure_step_memory(config, data, size, CPU))
    assert result.largest_fit is None and result.probes[0].reason == "out of memory"
