"""End-to-end sweeps through the real engine: real training, real run files."""
import threading

import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from engine import schema
from engine.data import Dataset, load_dataset
from engine.events import EpochEnded, StepsLogged, SweepEnded, SweepStarted, TrialEnded, TrialStarted
from engine.live import LiveRun
from engine.runfile import read_run
from engine.sweep import plan_trials, run_sweep
from engine.models import build_model
from engine.train import TrialContext, _StepLog, make_optimizer, run_trial


def test_three_batch_sizes_end_to_end(tiny_config, tmp_path):
    events = []
    path = run_sweep(tiny_config(), tmp_path, on_event=events.append)
    assert path.parent == tmp_path and path.suffix == ".h5"

    run = read_run(path)
    assert run.header.status == schema.COMPLETED
    assert [t.batch_size for t in run.trials] == [16, 32, 64]
    for trial in run.trials:
        assert trial.status == schema.COMPLETED and trial.error == ""
        assert list(trial.epoch["epoch"]) == [1, 2]
        train_size = 240  # 300 examples, 20% held out
        assert trial.steps_per_epoch == train_size // trial.batch_size
        assert list(trial.epoch["step"]) == [trial.steps_per_epoch, 2 * trial.steps_per_epoch]
        assert len(trial.step["step"]) == 2 * trial.steps_per_epoch   # every step recorded
        assert np.all(np.isfinite(trial.step["loss"])) and np.all(trial.step["grad_norm"] > 0)
        assert np.all(np.diff(trial.step["wall_time_s"]) >= 0)
        assert 0 <= trial.epoch["val_accuracy"][-1] <= 1
        assert trial.epoch["samples_per_s"][-1] > 0 and trial.epoch["peak_memory_bytes"][-1] > 0
        assert trial.parameter_count == 8 * 16 + 16 + 16 * 3 + 3

    # The event stream has the documented shape.
    kinds = [type(e) for e in events]
    assert kinds.count(SweepStarted) == 1 and kinds[-1] is SweepEnded
    assert kinds.count(TrialStarted) == kinds.count(TrialEnded) == 3
    assert kinds.count(EpochEnded) == 6 and StepsLogged in kinds


def test_file_layout_matches_the_contract(tiny_config, tmp_path):
    path = run_sweep(tiny_config(sweep={"batch_sizes": [32]}), tmp_path)
    with h5py.File(path, "r") as handle:
        assert handle.attrs["format"] == "batch-size-lab" and handle.attrs["format_version"] == schema.FORMAT_VERSION == 2
        for key in ("config", "created", "status", *schema.ENVIRONMENT_ATTRS):
            assert key in handle.attrs, key
        trial = handle["trials/bs00032_seed0"]
        # Every trial attribute is one the schema names, so writer and readers agree on one list.
        assert set(schema.TRIAL_ATTRS) <= set(trial.attrs) <= {
            *schema.TRIAL_ATTRS, *schema.TRIAL_THREAD_ATTRS, *schema.SEARCH_TRIAL_ATTRS, schema.NOISE_UNAVAILABLE_ATTR,
            *schema.TRIAL_MEMORY_ATTRS, schema.TELEMETRY_UNAVAILABLE_ATTR, *schema.THREAD_TIMING_ATTRS,
            schema.TRIAL_PRECISION_ATTR}
        for group, metrics in (("epoch", schema.EPOCH_METRICS), ("step", schema.STEP_METRICS)):
            lengths = set()
            for metric in metrics:
                dataset = trial[group][metric.name]
                assert dataset.attrs["units"] == metric.units
                assert dataset.chunks is not None and dataset.maxshape == (None,)
                lengths.add(len(dataset))
            assert len(lengths) == 1, group


def test_live_run_shows_exactly_what_the_file_holds(tiny_config, tmp_path):
    live = LiveRun()
    path = run_sweep(tiny_config(), tmp_path, on_event=live.apply)
    saved = read_run(path)
    assert [t.name for t in live.run.trials] == [t.name for t in saved.trials]
    # The environment too: the live Summary's "will not fit" reads the device's memory from it.
    assert live.run.environment == saved.environment and "device_memory_bytes" in live.run.environment
    for live_trial, saved_trial in zip(live.run.trials, saved.trials):
        assert live_trial.status == saved_trial.status
        for group in ("epoch", "step"):
            for name, values in getattr(saved_trial, group).items():
                np.testing.assert_array_equal(getattr(live_trial, group)[name], values, err_msg=name)


def test_same_seed_same_numbers(tiny_config, tmp_path):
    config = tiny_config(sweep={"batch_sizes": [16]}, model={"batch_norm": True})
    first = read_run(run_sweep(config, tmp_path / "a")).trials[0]
    second = read_run(run_sweep(config, tmp_path / "b")).trials[0]
    np.testing.assert_array_equal(first.step["loss"], second.step["loss"])
    np.testing.assert_array_equal(first.epoch["val_loss"], second.epoch["val_loss"])
    other = read_run(run_sweep(tiny_config(sweep={"batch_sizes": [16]}, model={"batch_norm": True},
                                           train={"seeds": [1]}), tmp_path / "c")).trials[0]
    assert not np.array_equal(first.step["loss"], other.step["loss"])


def test_lr_scaling_and_seeds_make_the_trial_grid(tiny_config):
    config = tiny_config(train={"lr": 0.1, "lr_scaling": "linear", "base_batch_size": 32, "seeds": [0, 1]},
                         sweep={"batch_sizes": [16, 64], "learning_rates": [0.1, 0.2]})
    trials = plan_trials(config)
    assert len(trials) == 8
    assert {(t.batch_size, t.base_lr, t.lr) for t in trials} == {
        (16, 0.1, 0.05), (16, 0.2, 0.1), (64, 0.1, 0.2), (64, 0.2, 0.4)}
    assert len({t.name for t in trials}) == 8


def test_samples_budget_gives_every_batch_size_the_same_examples(tiny_config, tmp_path):
    config = tiny_config(train={"budget": "samples", "samples": 960})
    run = read_run(run_sweep(config, tmp_path))
    for trial in run.trials:
        assert trial.step["samples"][-1] == 960
        assert trial.epoch["samples"][-1] == 960   # the last, partial epoch is evaluated too


def test_stop_flag_cancels_the_running_trial_and_keeps_finished_epochs(tiny_config, tmp_path):
    stop = threading.Event()

    def on_event(event):
        if isinstance(event, EpochEnded) and event.trial.batch_size == 32 and event.metrics["epoch"] == 1:
            stop.set()

    config = tiny_config(train={"epochs": 50})
    path = run_sweep(config, tmp_path, on_event=on_event, stop=stop)
    run = read_run(path)
    assert run.header.status == schema.CANCELLED
    statuses = {t.batch_size: t.status for t in run.trials}
    assert statuses == {16: schema.COMPLETED, 32: schema.CANCELLED}   # the sweep ended there
    cancelled = run.trials[1]
    assert list(cancelled.epoch["epoch"]) == [1]
    assert len(cancelled.step["step"]) == cancelled.steps_per_epoch   # steps after epoch 1 were never run


def test_divergence_is_an_outcome_and_the_sweep_goes_on(tiny_config, tmp_path):
    # An lr of 100 with no scaling blows the loss up to inf/NaN within a few steps at any batch size here;
    # batch size 64 gets a sane lr through its own config below, so one sweep shows both outcomes.
    config = tiny_config(train={"lr": 100.0, "lr_scaling": "none", "momentum": 0.0, "epochs": 3},
                         sweep={"batch_sizes": [16, 64], "learning_rates": [100.0, 0.01]})
    run = read_run(run_sweep(config, tmp_path))
    by_lr = {(t.batch_size, t.base_lr): t for t in run.trials}
    diverged = by_lr[(16, 100.0)]
    assert diverged.status == schema.DIVERGED and "loss became" in diverged.error
    assert by_lr[(16, 0.01)].status == schema.COMPLETED and by_lr[(64, 0.01)].status == schema.COMPLETED
    assert run.header.status == schema.COMPLETED


def test_out_of_memory_is_recorded_and_the_sweep_goes_on(tiny_config, tmp_path):
    # A 100,000 × 100,000 layer needs 40 GB: far more than this machine, so the allocator refuses at once.
    config = tiny_config(model={"width": 100_000, "depth": 2}, sweep={"batch_sizes": [16, 32]})
    run = read_run(run_sweep(config, tmp_path))
    assert [t.status for t in run.trials] == [schema.OUT_OF_MEMORY, schema.OUT_OF_MEMORY]
    assert all("allocate" in t.error or "memory" in t.error for t in run.trials)


def test_an_exception_inside_a_trial_is_recorded_as_failed(tiny_config):
    config = tiny_config()
    x = torch.randn(64, 8)
    labels = torch.full((64,), 7)  # class 7 of 3: cross-entropy raises inside training
    dataset = Dataset(name="broken", x_train=x, y_train=labels, x_val=x, y_val=labels, num_classes=3,
                      input_shape=(8,), kind="vector", val_source="test", class_names=["a", "b", "c"])
    events = []
    spec = plan_trials(config)[0]
    context = TrialContext(config=config, dataset=dataset, device=torch.device("cpu"),
                           train_eval_index=torch.arange(8), emit=events.append, stop=threading.Event())
    assert run_trial(spec, context) == schema.FAILED
    ended = events[-1]
    assert isinstance(ended, TrialEnded) and ended.status == schema.FAILED
    assert "out of bounds" in ended.error


@pytest.mark.parametrize("optimizer, model, data", [
    ("sgd", {}, {}),
    ("adamw", {"batch_norm": True}, {}),
    ("adam", {"kind": "gru"}, {"dataset": "sequence", "sequence_length": 12}),
])
def test_the_engine_trains_exactly_like_a_plain_pytorch_loop(tiny_config, optimizer, model, data):
    """Same seed, same batches: every step's loss and gradient norm are those of a textbook loop that measures
    the norm its own way (torch.nn.utils.get_total_norm over each .grad)."""
    config = tiny_config(model=model, data=data, sweep={"batch_sizes": [16]},
                         train={"optimizer": optimizer, "lr": 0.01, "lr_scaling": "none", "epochs": 3})
    data = load_dataset(config.data)
    spec = plan_trials(config)[0]
    events = []
    context = TrialContext(config=config, dataset=data, device=torch.device("cpu"),
                           train_eval_index=torch.arange(64), emit=events.append, stop=threading.Event())
    assert run_trial(spec, context) == schema.COMPLETED
    logged = [event for event in events if isinstance(event, StepsLogged)]
    engine_loss = np.concatenate([event.loss for event in logged])
    engine_norm = np.concatenate([event.grad_norm for event in logged])

    torch.manual_seed(spec.seed)
    model = build_model(config.model, data.input_shape, data.kind, data.num_classes)
    optimizer = make_optimizer(config.train, model.parameters(), spec.lr)
    generator = torch.Generator().manual_seed(spec.seed)
    losses, norms = [], []
    for _ in range(3):
        order = torch.randperm(data.train_size, generator=generator)
        for start in range(0, data.train_size - 15, 16):
            batch = order[start:start + 16]
            loss = F.cross_entropy(model(data.x_train[batch]), data.y_train[batch])
            optimizer.zero_grad()
            loss.backward()
            norms.append(torch.nn.utils.get_total_norm([p.grad for p in model.parameters()]).item())
            optimizer.step()
            losses.append(loss.item())
    assert len(engine_loss) == len(losses) > 30
    np.testing.assert_allclose(engine_loss, losses, rtol=1e-5)
    np.testing.assert_allclose(engine_norm, norms, rtol=1e-5)


@pytest.mark.parametrize("per_step", [[(3, 4), (5, 12)], [(3, 4), (6,), (5, 12)]])
def test_step_log_combines_parameter_norms_per_step(per_step):
    # The second case is ragged (a parameter without a gradient in one step): each step still gets its own norm.
    log = _StepLog()
    for index, norms in enumerate(per_step, start=1):
        log.loss.append(torch.tensor(1.0))
        log.parameter_norms.append(tuple(torch.tensor(float(n)) for n in norms))
        log.step.append(index)
        log.samples.append(index * 8)
        log.wall.append(0.1 * index)
        log.lr.append(0.1)
    expected = [float(np.hypot(*norms)) if len(norms) == 2 else float(norms[0]) for norms in per_step]
    np.testing.assert_allclose(log.take()["grad_norm"], expected, rtol=1e-6)


def test_batch_size_larger_than_training_set_fails_before_any_file(tiny_config, tmp_path):
    from engine.errors import ConfigError
    with pytest.raises(ConfigError, match="sweep.batch_sizes contains 280: larger than the training set"):
        run_sweep(tiny_config(sweep={"batch_sizes": [16, 280]}), tmp_path / "out")
    assert not list((tmp_path / "out").glob("*.h5"))
