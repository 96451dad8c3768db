"""The gradient noise scale (engine.science.noise_scale) against values known exactly: linear regression with
Gaussian inputs (closed form) and an MLP on MNIST-1D at frozen weights (per-example gradients over the whole
training set). Then the option in a real sweep: measured, stored with units, unavailable with batch norm."""
from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from engine import schema
from engine.config import DataConfig, ModelConfig
from engine.data import load_dataset
from engine.models import build_model
from engine.runfile import read_run
from engine.science.noise_scale import NoiseScaleMeter, averaged_b_simple, estimates
from engine.sweep import run_sweep


def test_the_estimators_invert_their_expectations():
    grad_sq, trace = 3.0, 50.0
    small, big = grad_sq + trace / 8, grad_sq + trace / 32
    assert np.allclose(estimates(small, big, 8, 32), (grad_sq, trace))


@pytest.fixture
def one_thread():
    """Hundreds of tiny backward passes: with two threads on a busy two-core machine each waits for the other
    (40 s instead of 1.6 s measured), as the engine's thread policy avoids during sweeps."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _measure(meter, loss_of, draw, repeats, batch):
    rows = []
    for step in range(1, repeats + 1):
        inputs, targets = draw(batch)
        meter.backward(loss_of, inputs, targets, step, 0.0)
        if step % 50 == 0:
            rows.append(meter.take(batch))
    return {key: np.concatenate([row[key] for row in rows]) for key in rows[0]}


def test_linear_regression_with_gaussian_inputs_within_10_percent(one_thread):
    # Loss 0.5 (w.x - y)^2 with x ~ N(0, I_d), y = w*.x + N(0, sigma^2): per-example gradient (d.x - e) x with
    # d = w - w*, so G = d, and tr(Σ) = d (|d|^2 + sigma^2) + |d|^2 (Isserlis' theorem).
    torch.manual_seed(0)
    dimensions, sigma = 8, 0.5
    true_weights = torch.randn(dimensions)
    model = nn.Linear(dimensions, 1, bias=False)
    offset = torch.full((dimensions,), 0.3)
    with torch.no_grad():
        model.weight.copy_(true_weights + offset)
    exact_grad_sq = float(offset @ offset)
    exact_trace = dimensions * (exact_grad_sq + sigma ** 2) + exact_grad_sq

    def draw(batch):
        x = torch.randn(batch, dimensions)
        return x, x @ true_weights + sigma * torch.randn(batch)

    def loss_of(x, y):
        return 0.5 * ((model(x).squeeze(1) - y) ** 2).mean()

    measured = _measure(NoiseScaleMeter(list(model.parameters()), 4, 1), loss_of, draw, 1500, 64)
    assert measured["grad_sq"].mean() == pytest.approx(exact_grad_sq, rel=0.10)
    assert measured["trace_sigma"].mean() == pytest.approx(exact_trace, rel=0.10)
    assert averaged_b_simple(measured) == pytest.approx(exact_trace / exact_grad_sq, rel=0.10)
    # The smoothed B_simple of the last measurement averages all of them.
    assert measured["b_simple"][-1] == pytest.approx(exact_trace / exact_grad_sq, rel=0.15)


def test_mlp_on_mnist1d_at_frozen_weights_within_25_percent_of_the_full_dataset_value(one_thread):
    data = load_dataset(DataConfig(dataset="mnist1d", num_samples=1500))
    torch.manual_seed(0)
    model = build_model(ModelConfig(width=32, depth=1), data.input_shape, data.kind, data.num_classes)
    parameters = list(model.parameters())
    x, y = data.x_train, data.y_train

    # Exact: every example's own gradient (torch.func), G their mean, tr(Σ) = mean |g|^2 - |G|^2.
    names = [name for name, _ in model.named_parameters()]

    def example_loss(values, example, label):
        params = dict(zip(names, values))
        return F.cross_entropy(torch.func.functional_call(model, params, (example[None],)), label[None])

    per_example = torch.func.vmap(torch.func.grad(example_loss), in_dims=(None, 0, 0))(
        tuple(p.detach() for p in parameters), x, y)
    flat = torch.cat([g.reshape(len(x), -1) for g in per_example], dim=1).double()
    mean = flat.mean(0)
    exact_grad_sq = float(mean @ mean)
    exact_trace = float((flat ** 2).sum(1).mean()) - exact_grad_sq
    exact = exact_trace / exact_grad_sq

    generator = torch.Generator().manual_seed(1)

    def draw(batch):
        index = torch.randperm(len(x), generator=generator)[:batch]
        return x[index], y[index]

    def loss_of(inputs, targets):
        return F.cross_entropy(model(inputs), targets)

    measured = _measure(NoiseScaleMeter(parameters, 4, 1), loss_of, draw, 400, 128)
    assert averaged_b_simple(measured) == pytest.approx(exact, rel=0.25)


def test_the_measured_step_uses_the_whole_batch_gradient():
    torch.manual_seed(0)
    model = nn.Linear(5, 3)
    inputs, targets = torch.randn(30, 5), torch.randint(0, 3, (30,))
    loss = F.cross_entropy(model(inputs), targets)
    loss.backward()
    expected = [p.grad.clone() for p in model.parameters()]
    meter = NoiseScaleMeter(list(model.parameters()), 4, 1)     # 30 = 8 + 8 + 7 + 7: unequal micro-batches
    measured_loss = meter.backward(lambda a, b: F.cross_entropy(model(a), b), inputs, targets, 1, 0.0)
    for parameter, gradient in zip(model.parameters(), expected):
        torch.testing.assert_close(parameter.grad, gradient, rtol=1e-5, atol=1e-6)
    assert float(measured_loss) == pytest.approx(loss.item(), rel=1e-5)
    assert meter.take(30)["micro_batch"][0] == pytest.approx(4 / (2 / 8 + 2 / 7))


def test_a_sweep_with_noise_scale_stores_it_and_batch_norm_says_why_not(tiny_config, tmp_path):
    config = tiny_config(science={"noise_scale": True, "noise_every": 2}, sweep={"batch_sizes": [32]})
    trial = read_run(run_sweep(config, tmp_path / "plain")).trials[0]
    assert trial.noise_scale_unavailable == ""
    # Every noise_every-th step from the first: steps 1, 3, 5, ...
    np.testing.assert_array_equal(trial.noise["step"], np.arange(1, trial.step["step"][-1] + 1, 2))
    assert np.all(trial.noise["micro_batch"] == 8)
    with h5py.File(next((tmp_path / "plain").glob("*.h5"))) as handle:
        group = handle[f"trials/{trial.name}/{schema.NOISE_GROUP}"]
        assert {name: group[name].attrs["units"] for name in group} == {m.name: m.units for m in schema.NOISE_METRICS}

    config = tiny_config(science={"noise_scale": True}, model={"batch_norm": True}, sweep={"batch_sizes": [32]})
    trial = read_run(run_sweep(config, tmp_path / "bn")).trials[0]
    assert "batch normalization" in trial.noise_scale_unavailable and len(trial.noise["step"]) == 0
    assert trial.status == schema.COMPLETED


def test_measured_steps_train_in_the_trial_s_precision(tiny_config, tmp_path):
    # Every step measured, in bf16: each training forward pass, micro-batches included, runs under its autocast.
    dtypes = set()

    def record(module, inputs, output):
        if isinstance(module, nn.Linear) and module.training and torch.is_grad_enabled():
            dtypes.add(output.dtype)

    hook = nn.modules.module.register_module_forward_hook(record)
    try:
        config = tiny_config(train={"precision": "bf16"}, science={"noise_scale": True, "noise_every": 1},
                             sweep={"batch_sizes": [32]})
        trial = read_run(run_sweep(config, tmp_path)).trials[0]
    finally:
        hook.remove()
    assert trial.status == schema.COMPLETED and len(trial.noise["step"]) == trial.step["step"][-1]
    assert dtypes == {torch.bfloat16}


def test_off_means_no_measurement_and_the_same_numbers(tiny_config, tmp_path, monkeypatch):
    def no_meter(*args, **kwargs):
        raise AssertionError("the option is off: no meter, so the loop's only cost is its `is not None` test")

    with monkeypatch.context() as patch:
        patch.setattr("engine.train.NoiseScaleMeter", no_meter)
        plain = read_run(run_sweep(tiny_config(sweep={"batch_sizes": [32]}), tmp_path / "a")).trials[0]
    assert plain.status == schema.COMPLETED
    assert len(plain.noise["step"]) == 0 and plain.noise_scale_unavailable == ""
    measured = read_run(run_sweep(tiny_config(sweep={"batch_sizes": [32]}, science={"noise_scale": True,
                                                                                     "noise_every": 1}),
                                  tmp_path / "b")).trials[0]
    # The measured step trains with the same gradient (up to float rounding), so the run is the same run.
    np.testing.assert_allclose(measured.epoch["val_loss"], plain.epoch["val_loss"], rtol=1e-4)
