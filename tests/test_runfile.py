"""Run files written by the real writer, read back, damaged on purpose; and the analyses over them."""
import math

import h5py
import numpy as np
import pytest

from engine import schema
from engine.analysis import by_batch_size, summarize_run
from engine.errors import RunFileError
from engine.runfile import RunWriter, read_header, read_run

CONFIG = 'name = "hand-made"\n[data]\ndataset = "synthetic"\n[model]\nkind = "mlp"\n'


def write_run(path, trials):
    """trials: (batch_size, seed, status, val_accuracy per epoch). Step rows: 10 per epoch."""
    writer = RunWriter(path, CONFIG, {"device": "cpu", "device_name": "test cpu"})
    for batch_size, seed, status, accuracies in trials:
        name = schema.trial_name(batch_size, seed)
        writer.start_trial(name, {"batch_size": batch_size, "seed": seed, "lr": 0.1, "base_lr": 0.1,
                                  "parameter_count": 10, "steps_per_epoch": 10})
        for epoch, accuracy in enumerate(accuracies, start=1):
            steps = np.arange((epoch - 1) * 10 + 1, epoch * 10 + 1)
            writer.add_steps(name, {"step": steps, "samples": steps * batch_size, "wall_time_s": steps * 0.01,
                                    "loss": np.full(10, 1.0 / epoch, np.float32), "lr": np.full(10, 0.1, np.float32),
                                    "grad_norm": np.ones(10, np.float32)})
            writer.add_epoch(name, {"epoch": epoch, "step": epoch * 10, "samples": epoch * 10 * batch_size,
                                    "wall_time_s": epoch * 0.1, "train_loss": 0.5, "train_accuracy": accuracy + 0.1,
                                    "val_loss": 0.7, "val_accuracy": accuracy, "samples_per_s": 100.0 * batch_size,
                                    "peak_memory_bytes": 1000 * batch_size})
        writer.end_trial(name, status)
    writer.close(schema.COMPLETED)
    return path


def test_round_trip(tmp_path):
    path = write_run(tmp_path / "run.h5", [(32, 0, "completed", [0.5, 0.7]), (8, 0, "diverged", [0.2])])
    run = read_run(path)
    assert [t.batch_size for t in run.trials] == [8, 32]          # sorted by batch size
    assert run.trials[0].status == "diverged"
    np.testing.assert_allclose(run.trials[1].epoch["val_accuracy"], [0.5, 0.7])
    assert len(run.trials[1].step["loss"]) == 20
    header = read_header(path)
    assert (header.name, header.dataset, header.model, header.batch_sizes) == ("hand-made", "synthetic", "mlp",
                                                                              [8, 32])
    assert header.trial_statuses == {"completed": 1, "diverged": 1}


def test_summaries_and_per_batch_size_means(tmp_path):
    path = write_run(tmp_path / "run.h5", [(32, 0, "completed", [0.5, 0.7]), (32, 1, "completed", [0.6, 0.9]),
                                           (64, 0, "completed", [0.4, 0.5])])
    summaries = summarize_run(read_run(path), target_accuracy=0.6)
    first = summaries[0]
    assert first.best_val_accuracy == pytest.approx(0.7) and first.final_val_accuracy == pytest.approx(0.7)
    assert first.generalization_gap == pytest.approx(0.1) and first.loss_gap == pytest.approx(0.2)
    assert first.steps_to_target == 20 and first.samples_to_target == 640
    assert summaries[1].steps_to_target == 10                      # seed 1 reached 0.6 in epoch 1
    assert math.isnan(summaries[2].steps_to_target)                # batch 64 never did
    assert first.samples_per_s == pytest.approx(640 / 0.2)

    stats = by_batch_size(summaries)
    assert [s.batch_size for s in stats] == [32, 64]
    assert stats[0].trials == 2 and stats[0].reached_target == 2
    assert stats[0].mean["best_val_accuracy"] == pytest.approx(0.8)
    assert stats[0].std["best_val_accuracy"] == pytest.approx(np.std([0.7, 0.9], ddof=1))
    assert stats[1].reached_target == 0 and math.isnan(stats[1].mean["steps_to_target"])


def test_not_a_run_file(tmp_path):
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(RunFileError, match="text.h5: not a Batch Size Lab run file"):
        read_run(tmp_path / "text.h5")
    with h5py.File(tmp_path / "plain.h5", "w") as handle:
        handle.attrs["format"] = "something-else"
    with pytest.raises(RunFileError, match="no format = 'batch-size-lab'"):
        read_header(tmp_path / "plain.h5")
    with pytest.raises(RunFileError, match="no such file"):
        read_run(tmp_path / "missing.h5")


def test_newer_format_version_is_refused(tmp_path):
    path = write_run(tmp_path / "run.h5", [(32, 0, "completed", [0.5])])
    with h5py.File(path, "a") as handle:
        handle.attrs["format_version"] = schema.FORMAT_VERSION + 1
    with pytest.raises(RunFileError, match="newer Batch Size Lab"):
        read_run(path)


def test_format_version_1_files_still_read(tmp_path):
    """A file from round 1: version 1, none of version 2's attributes or groups."""
    path = write_run(tmp_path / "run.h5", [(32, 0, "completed", [0.5, 0.6])])
    with h5py.File(path, "a") as handle:
        handle.attrs["format_version"] = 1
        for key in (*schema.CLASS_BALANCE_ATTRS, schema.RESUMED_ATTR, "cpu_cores_available", "thread_policy"):
            if key in handle.attrs:
                del handle.attrs[key]
        for key in schema.TRIAL_THREAD_ATTRS:
            if key in handle["trials/bs00032_seed0"].attrs:
                del handle["trials/bs00032_seed0"].attrs[key]
    run = read_run(path)
    np.testing.assert_allclose(run.trials[0].epoch["val_accuracy"], [0.5, 0.6])
    assert read_header(path).batch_sizes == [32]


def test_damaged_file_is_a_clear_error(tmp_path):
    path = write_run(tmp_path / "run.h5", [(32, 0, "completed", [0.5, 0.6, 0.7])])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(RunFileError, match="run.h5"):
        read_run(path)
