"""One trial on two processes (sweep.data_parallel = 2, torch.distributed with gloo on the CPU): each rank takes
half of every batch, and the training is that of one process with the whole batch, to floating-point
tolerance. Real spawned ranks, a real run file."""
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import tomli_w
import torch

from engine.config import parse_config
from engine.errors import ConfigError
from engine.execution.ranks import Ranks
from engine.live import LiveRun
from engine.runfile import read_run
from engine.sweep import run_sweep
from tests.conftest import ROOT, tiny_table

TABLE = tiny_table(train={"epochs": 2}, sweep={"batch_sizes": [32]})


def test_two_ranks_with_half_batches_train_as_one_process_with_the_whole_batch(tmp_path, one_thread_each):
    [single] = read_run(run_sweep(parse_config(TABLE), tmp_path / "one")).trials
    live = LiveRun()
    ranked = {**TABLE, "sweep": {**TABLE["sweep"], "data_parallel": 2}}
    [double] = read_run(run_sweep(parse_config(ranked), tmp_path / "two", on_event=live.apply)).trials
    [shown] = live.run.trials   # the live view shows what the file holds
    assert (shown.ranks, shown.communication_s) == (double.ranks, double.communication_s)
    assert double.status == single.status == "completed"
    assert (single.ranks, double.ranks) == (1, 2)
    assert math.isnan(single.communication_s)   # not measured, never a made-up zero
    assert double.communication_s > 0
    assert double.steps_per_epoch == single.steps_per_epoch
    np.testing.assert_array_equal(double.step["samples"], single.step["samples"])   # the global batch
    for name in ("train_loss", "val_loss", "train_accuracy", "val_accuracy"):
        np.testing.assert_allclose(double.epoch[name], single.epoch[name], rtol=1e-5, err_msg=name)
    # The logged loss is the whole batch's, the gradient norm the all-reduced gradient's.
    np.testing.assert_allclose(double.step["loss"], single.step["loss"], rtol=1e-5)
    np.testing.assert_allclose(double.step["grad_norm"], single.step["grad_norm"], rtol=1e-4)


def test_a_batch_size_that_does_not_divide_among_the_ranks_is_a_config_error():
    with pytest.raises(ConfigError) as error:
        parse_config(tiny_table(sweep={"batch_sizes": [16, 30], "data_parallel": 4}))
    assert error.value.problems == ["sweep.data_parallel = 4: batch size 30 does not divide into 4 equal shares "
                                    "(use a batch size that is a multiple of 4, or another number of ranks)"]
    with pytest.raises(ConfigError, match="not both"):
        parse_config(tiny_table(sweep={"data_parallel": 2, "parallel": 2}))


def test_each_rank_takes_its_own_equal_share_of_the_batch():
    inputs, targets = torch.arange(12.0).view(6, 2), torch.arange(6)
    shares = [Ranks(rank, 3, False, torch.device("cpu")).share(inputs, targets) for rank in range(3)]
    assert [share_targets.tolist() for _, share_targets in shares] == [[0, 1], [2, 3], [4, 5]]
    assert torch.equal(torch.cat([share_inputs for share_inputs, _ in shares]), inputs)
    with pytest.raises(ValueError, match="batch size 6 does not divide among 4 ranks"):
        Ranks(0, 4, False, torch.device("cpu")).share(inputs, targets)


def test_torchrun_ranks_train_the_sweep_and_rank_0_writes_the_file(tmp_path, one_thread_each):
    """The documented several-machines command, on this machine: torchrun starts two ranks on the CPU."""
    config_path = tmp_path / "experiment.toml"
    config_path.write_text(tomli_w.dumps(TABLE))
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                             "-m", "engine.execution.torchrun", str(config_path), "--out", str(tmp_path / "runs"),
                             "--threads", "1"], capture_output=True, text=True, timeout=300, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr[-2000:]
    [launched] = read_run(result.stdout.strip().splitlines()[-1]).trials
    [single] = read_run(run_sweep(parse_config(TABLE), tmp_path / "one")).trials
    assert (launched.status, launched.ranks) == ("completed", 2)
    np.testing.assert_allclose(launched.epoch["val_loss"], single.epoch["val_loss"], rtol=1e-5)
    np.testing.assert_allclose(launched.step["loss"], single.step["loss"], rtol=1e-5)
