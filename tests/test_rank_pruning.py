"""A search's pruner with each trial on two data-parallel ranks (sweep.data_parallel = 2, gloo on the CPU): rank 0
asks the parent, which owns the search, after each evaluation, and every rank stops at the answer. Real spawned
ranks, real run files, compared with the same search in this process."""
import math

import numpy as np

from engine import schema
from engine.config import parse_config
from engine.runfile import read_run
from engine.sweep import run_sweep
from tests.conftest import tiny_table

SEARCH = tiny_table(train={"epochs": 3}, sweep={"strategy": "random", "trials": 8, "batch_size_min": 4,
                                                 "batch_size_max": 128, "pruner": "median", "lr_min": 0.0005,
                                                 "lr_max": 1.0, "device": "cpu"})


def test_a_pruned_search_on_ranks_prunes_what_it_prunes_in_one_process(tmp_path, one_thread_each):
    here = read_run(run_sweep(parse_config(SEARCH), tmp_path / "here")).trials
    ranked = {**SEARCH, "sweep": {**SEARCH["sweep"], "data_parallel": 2}}
    on_ranks = read_run(run_sweep(parse_config(ranked), tmp_path / "ranks")).trials
    assert schema.PRUNED in {t.status for t in here} and schema.COMPLETED in {t.status for t in here}
    assert [(t.name, t.status, t.pruned_step) for t in on_ranks] == [(t.name, t.status, t.pruned_step) for t in here]
    for trial, expected in zip(on_ranks, here):
        assert trial.ranks == 2
        # Two ranks with half batches train as one process to floating-point tolerance (test_data_parallel.py).
        np.testing.assert_allclose(trial.epoch["val_loss"], expected.epoch["val_loss"], rtol=1e-4)
        if trial.status == schema.PRUNED:
            assert trial.error.split(":")[0] == expected.error.split(":")[0]   # "pruned at step N (... seen)"
        assert math.isclose(trial.objective, expected.objective, rel_tol=1e-4) or \
            math.isnan(trial.objective) and math.isnan(expected.objective)


def test_torchrun_refuses_a_pruner_it_would_not_apply(tmp_path, capsys, monkeypatch):
    from engine.execution import torchrun
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    config = tmp_path / "search.toml"
    config.write_text(parse_config(SEARCH).to_toml(), encoding="utf-8")
    assert torchrun.main([str(config), "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err == ("error: sweep.pruner = 'median': a search on torchrun's ranks is not pruned; "
                                       "set the pruner to none, or use sweep.data_parallel on one machine\n")
