"""sweep.ensemble = "auto": the trials of a batch size trained together as one vectorized model
(engine/execution/ensemble.py) are the trials trained alone, to float32 rounding, each a trial of its own in the
run file; where the model does not allow it, or the first step does not match, they train alone and say why."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from engine import schema
from engine.events import StepsLogged
from engine.execution import ensemble
from engine.live import LiveRun
from engine.resume import plan_resume, resume_sweep
from engine.runfile import read_run
from engine.sweep import run_sweep

# float32 rounding of sums taken in another order, grown over a few dozen steps: far below any real difference.
RTOL, ATOL = 1e-5, 1e-6


def _sweep(tiny_config, tmp_path, name, ensemble_setting, **sections):
    events = []
    path = run_sweep(tiny_config(**{"sweep": {"batch_sizes": [16], "ensemble": ensemble_setting},
                                    **sections}), tmp_path / name, on_event=events.append)
    return read_run(path), events


def _assert_trained_alike(alone, together, exact=False):
    assert [t.name for t in alone.trials] == [t.name for t in together.trials]
    for a, b in zip(alone.trials, together.trials):
        assert b.status == a.status == schema.COMPLETED
        check = np.testing.assert_array_equal if exact else \
            (lambda x, y: np.testing.assert_allclose(x, y, rtol=RTOL, atol=ATOL))
        for group in ("step", "epoch", "eval"):
            rows_a, rows_b = getattr(a, group), getattr(b, group)
            for key in ("step", "samples") + (("lr",) if group == "step" else ()):
                np.testing.assert_array_equal(rows_a[key], rows_b[key])
            for key in {"step": ("loss", "grad_norm"), "eval": ("val_loss", "val_accuracy"),
                        "epoch": ("train_loss", "train_accuracy", "val_loss", "val_accuracy")}[group]:
                check(rows_a[key], rows_b[key])


@pytest.mark.parametrize("sections", [
    # Seeds, with momentum, weight decay, warm-up and a cosine schedule.
    {"train": {"seeds": [0, 1, 2], "optimizer": "sgd", "weight_decay": 0.01, "warmup_epochs": 0.5,
               "schedule": "cosine", "epochs": 1}},
    # Learning rates with Adam: each member its own learning rate in the one optimizer.
    {"train": {"seeds": [3], "optimizer": "adamw", "weight_decay": 0.01, "epochs": 1},
     "sweep": {"batch_sizes": [16], "ensemble": "auto", "learning_rates": [0.002, 0.01, 0.05]}},
], ids=["seeds", "learning-rates"])
def test_an_ensemble_trains_each_member_as_it_trains_alone(tiny_config, tmp_path, sections):
    off = {**sections, "sweep": {**sections.get("sweep", {"batch_sizes": [16]}), "ensemble": "off"}}
    alone, _ = _sweep(tiny_config, tmp_path, "alone", "off", **off)
    together, events = _sweep(tiny_config, tmp_path, "together", "auto", **sections)
    _assert_trained_alike(alone, together)
    assert {t.execution for t in together.trials} == {"ensemble of 3"}
    assert {t.execution for t in alone.trials} == {""}      # off: the question did not arise, nothing written
    # Every member is a whole trial: memory and telemetry as a trial alone records them.
    assert all(t.step_memory_bytes > 0 and "measured alone" in t.step_memory_method for t in together.trials)
    assert all(len(t.telemetry["time_s"]) and len(t.training_clock["training_time_s"]) for t in together.trials)
    # The live view, folded from the events, says what the file says.
    live = LiveRun()
    for event in events:
        live.apply(event)
    assert [t.execution for t in live.run.trials] == [t.execution for t in together.trials]


def test_a_member_that_diverges_leaves_and_the_others_train_on(tiny_config, tmp_path):
    sections = {"train": {"seeds": [0]}, "sweep": {"batch_sizes": [16], "learning_rates": [0.05, 100.0]}}
    alone, _ = _sweep(tiny_config, tmp_path, "alone", "off", **sections)
    together, _ = _sweep(tiny_config, tmp_path, "together", "auto",
                         **{**sections, "sweep": {**sections["sweep"], "ensemble": "auto"}})
    assert [(t.status, t.error) for t in together.trials] == [(t.status, t.error) for t in alone.trials] == [
        (schema.COMPLETED, ""), (schema.DIVERGED, "the loss became nan at step 18")]
    _assert_trained_alike(type(alone)(**{**vars(alone), "trials": alone.trials[:1]}),
                          type(together)(**{**vars(together), "trials": together.trials[:1]}))


def test_batch_norm_trains_alone_and_says_why(tiny_config, tmp_path, one_thread_each):
    train = {"seeds": [0, 1], "epochs": 1}
    run, _ = _sweep(tiny_config, tmp_path, "bn", "auto", model={"batch_norm": True}, train=train)
    alone, _ = _sweep(tiny_config, tmp_path, "alone", "off", model={"batch_norm": True}, train=train)
    _assert_trained_alike(alone, run, exact=True)     # the ordinary trial code: bit for bit
    reason = "sequential (batch norm: its running statistics are updated in place, which vmap cannot batch)"
    assert [t.execution for t in run.trials] == [reason, reason]
    # What `report` prints of it.
    assert ensemble.execution_text(run.trials) == f"Execution: 2 trials {reason}"
    assert ensemble.execution_text(alone.trials) == ""


def test_a_first_step_that_does_not_match_falls_back_to_training_alone(tiny_config, tmp_path, one_thread_each,
                                                                      monkeypatch):
    # A vectorized step that is off by 1e-4 relative: the check before the first update must catch it.
    batched = ensemble.batched_forward
    monkeypatch.setattr(ensemble, "batched_forward",
                        lambda model: lambda *args: batched(model)(*args) * (1 + 1e-4))
    run, _ = _sweep(tiny_config, tmp_path, "checked", "auto", train={"seeds": [0, 1], "epochs": 1})
    alone, _ = _sweep(tiny_config, tmp_path, "alone", "off", train={"seeds": [0, 1], "epochs": 1})
    _assert_trained_alike(alone, run, exact=True)
    assert all(t.execution.startswith("sequential (the ensemble fell back: its first step differed from training "
                                      "alone") for t in run.trials), run.trials[0].execution


def test_stop_cancels_every_member_at_once_and_resume_trains_them_again(tiny_config, tmp_path):
    config = tiny_config(train={"seeds": [0, 1], "epochs": 1}, sweep={"batch_sizes": [16, 32], "ensemble": "auto"})
    stop, stopped_at = threading.Event(), []

    def on_event(event):
        if isinstance(event, StepsLogged) and event.trial.batch_size == 16 and not stop.is_set() \
                and event.step[-1] >= 5:
            stopped_at.append(int(event.step[-1]))
            stop.set()

    path = run_sweep(config, tmp_path / "stopped", on_event=on_event, stop=stop)
    stopped = read_run(path)
    assert stopped.header.status == schema.CANCELLED
    # Both members leave at the step the flag was set after: none trains another step.
    assert [(t.name, t.status) for t in stopped.trials] == [("bs00016_seed0", schema.CANCELLED),
                                                            ("bs00016_seed1", schema.CANCELLED)]
    assert [int(t.step["step"][-1]) for t in stopped.trials] == [stopped_at[0]] * 2

    plan = plan_resume(path)
    assert [s.name for s in plan.to_train] == ["bs00016_seed0", "bs00016_seed1", "bs00032_seed0", "bs00032_seed1"]
    resume_sweep(plan)
    resumed = read_run(path)
    uninterrupted = read_run(run_sweep(config, tmp_path / "whole"))
    _assert_trained_alike(uninterrupted, resumed, exact=True)    # the same ensembles again: bit for bit
    assert {t.execution for t in resumed.trials} == {"ensemble of 2"}


def test_what_the_plan_puts_together():
    from engine.config import parse_config
    from engine.sweep import plan_trials
    from tests.conftest import tiny_table

    def plan(**sections):
        config = parse_config(tiny_table(**sections))
        return ensemble.plan_ensembles(config, plan_trials(config), lambda event: None)

    seeds = plan(train={"seeds": list(range(10))}, sweep={"batch_sizes": [16, 32], "ensemble": "auto"})
    # At most ENSEMBLE_MAX together: ten seeds are an ensemble of 8 and one of 2, per batch size.
    assert sorted({len(group) for group in seeds.groups.values()}) == [2, 8]
    assert seeds.groups["bs00016_seed0"] != seeds.groups["bs00032_seed0"]
    single = plan(sweep={"batch_sizes": [16, 32], "ensemble": "auto"})
    assert single.execution["bs00016_seed0"] == "sequential (no other trial at batch size 16 to train with)"
    lstm = plan(model={"kind": "lstm"}, data={"dataset": "sequence"}, train={"seeds": [0, 1]},
                sweep={"batch_sizes": [16], "ensemble": "auto"})
    assert lstm.execution["bs00016_seed0"] == "sequential (model.kind = lstm: vmap cannot batch the recurrent layers)"
    assert plan(train={"seeds": [0, 1]}) is None    # off by default: bit for bit as before
