"""Memory that belongs to the trial: on the CPU, the tensors alive at once during the trial's second step, so the
same trial gives the same figure wherever it runs in a sweep, and the figure grows with the batch size."""
import math
import shutil
import threading

import h5py

from engine import schema
from engine.hardware.memory_model import sweep_memory
from engine.hardware.step_memory import CPU_METHOD
from engine.runfile import read_run
from engine.sweep import run_sweep


def step_memory(path) -> dict[int, float]:
    return {trial.batch_size: trial.step_memory_bytes for trial in read_run(path).trials}


def test_the_same_trial_measures_the_same_first_or_last_and_more_with_a_larger_batch(tiny_config, tmp_path):
    forward = run_sweep(tiny_config(name="forward", sweep={"batch_sizes": [16, 128, 32]}), tmp_path)
    backward = run_sweep(tiny_config(name="backward", sweep={"batch_sizes": [32, 128, 16]}), tmp_path)
    first, last = step_memory(forward), step_memory(backward)
    for batch_size in (16, 32, 128):
        assert math.isclose(first[batch_size], last[batch_size], rel_tol=0.05), batch_size
    assert first[16] < first[32] < first[128]
    # The batch alone (8 float32 inputs and an int64 label per example) is part of what grows.
    assert first[128] - first[16] > (128 - 16) * (8 * 4 + 8)
    with h5py.File(forward) as handle:
        attrs = handle["trials/bs00016_seed0"].attrs
        assert attrs["step_memory_method"] == CPU_METHOD and set(schema.TRIAL_MEMORY_ATTRS) <= set(attrs)
        device = int(handle.attrs["device_memory_bytes"])

    # The sweep's memory model: a line through the measured steps, extrapolated to the device's memory.
    memory = sweep_memory(read_run(forward))
    for batch_size, measured in first.items():
        assert math.isclose(memory.model.bytes_at(batch_size), measured, rel_tol=0.05)
    assert memory.largest_batch == math.floor((device - memory.model.fixed_bytes) / memory.model.per_example_bytes)
    assert f"Batch sizes above ~{memory.largest_batch:,} will not fit" in memory.text()
    assert memory.document()["largest_batch_that_fits"] == memory.largest_batch

    # A file written before the step memory and the device's memory were recorded: unavailable, with the reason.
    older = tmp_path / "older.h5"
    shutil.copy(forward, older)
    with h5py.File(older, "r+") as handle:
        del handle.attrs["device_memory_bytes"]
        for trial in handle["trials"].values():
            for key in schema.TRIAL_MEMORY_ATTRS:
                del trial.attrs[key]
    assert sweep_memory(read_run(older)).text() == ("Memory model: unavailable (no trial measured its step memory: "
                                                    "the file was written before it was recorded)")


def test_a_trial_stopped_before_its_second_step_has_no_figure_rather_than_a_made_up_one(tiny_config, tmp_path):
    from engine.events import TrialStarted
    stop = threading.Event()
    path = run_sweep(tiny_config(sweep={"batch_sizes": [16]}), tmp_path, stop=stop,
                     on_event=lambda event: stop.set() if isinstance(event, TrialStarted) else None)
    trial = read_run(path).trials[0]
    assert trial.status == schema.CANCELLED and math.isnan(trial.step_memory_bytes) and trial.step_memory_method == ""
