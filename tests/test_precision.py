"""Precision and gradient accumulation: accumulated micro-batches give the whole batch's loss and gradients
without batch norm (and not with it); bf16 trains on the CPU; fp16 on the CPU is a one-line config error."""
import pytest
import torch

from engine.config import parse_config
from engine.errors import ConfigError
from engine.hardware.precision import StepPrecision
from engine.models import build_model
from engine.runfile import read_run
from engine.sweep import run_sweep
from tests.conftest import tiny_table

CPU = torch.device("cpu")


def gradients(batch_norm: bool, accumulation_steps: int):
    config = parse_config(tiny_table(model={"kind": "mlp", "width": 16, "depth": 2, "batch_norm": batch_norm}))
    torch.manual_seed(0)
    model = build_model(config.model, (8,), "vector", 3)
    generator = torch.Generator().manual_seed(1)
    inputs, targets = torch.randn(30, 8, generator=generator), torch.randint(0, 3, (30,), generator=generator)
    loss = StepPrecision("fp32", accumulation_steps, CPU).forward_backward(model, inputs, targets)
    return loss, [p.grad.clone() for p in model.parameters()]


def test_accumulated_micro_batches_give_the_whole_batch_loss_and_gradients_without_batch_norm():
    whole_loss, whole = gradients(batch_norm=False, accumulation_steps=1)
    split_loss, split = gradients(batch_norm=False, accumulation_steps=4)     # micro-batches of 8, 8, 7, 7
    assert split_loss.item() == pytest.approx(whole_loss.item(), rel=1e-6)
    for a, b in zip(whole, split):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_with_batch_norm_the_micro_batch_statistics_make_it_another_training():
    _, whole = gradients(batch_norm=True, accumulation_steps=1)
    _, split = gradients(batch_norm=True, accumulation_steps=3)
    assert max((a - b).abs().max().item() for a, b in zip(whole, split)) > 1e-4


def test_bf16_and_accumulation_train_a_sweep_on_the_cpu(tmp_path):
    config = parse_config(tiny_table(train={"precision": "bf16", "accumulation_steps": 2, "epochs": 1},
                                     sweep={"batch_sizes": [32]}))
    trial = read_run(run_sweep(config, tmp_path)).trials[0]
    assert trial.status == "completed" and trial.epoch["train_loss"][-1] < 10


def test_fp16_on_the_cpu_is_a_config_error_before_any_file(tmp_path):
    with pytest.raises(ConfigError, match=r"train.precision = 'fp16': float16 training needs a CUDA GPU"):
        parse_config(tiny_table(train={"precision": "fp16"}))
    auto = parse_config(tiny_table(train={"precision": "fp16"}, sweep={"device": "auto"}))
    if torch.cuda.is_available():
        pytest.skip("a GPU is here: fp16 with device auto is valid")
    with pytest.raises(ConfigError, match="train.precision = 'fp16'"):
        run_sweep(auto, tmp_path / "runs")
    assert not list(tmp_path.rglob("*.h5"))


def test_the_noise_scale_with_fp16_is_a_config_error():
    # Its measured steps take unscaled float32 gradients, which fp16's gradient scaler would divide again.
    with pytest.raises(ConfigError, match=r"science.noise_scale = true: the noise scale is not measured with "
                                          r"train.precision = 'fp16'"):
        parse_config(tiny_table(train={"precision": "fp16"}, sweep={"device": "auto"}, science={"noise_scale": True}))
    parse_config(tiny_table(train={"precision": "bf16"}, science={"noise_scale": True}))


def test_accumulation_steps_beyond_the_smallest_batch_size_is_named():
    with pytest.raises(ConfigError, match=r"train.accumulation_steps = 32: batch size 16 \(sweep.batch_sizes\)"):
        parse_config(tiny_table(train={"accumulation_steps": 32}))


def test_resuming_an_fp16_run_on_the_cpu_is_the_same_config_error(tmp_path):
    import h5py
    from engine.resume import plan_resume, resume_sweep
    path = run_sweep(parse_config(tiny_table(train={"epochs": 1}, sweep={"batch_sizes": [32]})), tmp_path)
    with h5py.File(path, "r+") as handle:      # as if trained with fp16 on a GPU and stopped
        handle.attrs["config"] = handle.attrs["config"].replace('precision = "fp32"', 'precision = "fp16"').replace(
            'device = "cpu"', 'device = "auto"')
        handle.attrs["status"] = "cancelled"
        handle["trials/bs00032_seed0"].attrs["status"] = "cancelled"
    if torch.cuda.is_available():
        pytest.skip("a GPU is here: fp16 is valid")
    with pytest.raises(ConfigError, match="train.precision = 'fp16'"):
        resume_sweep(plan_resume(path), device="cpu")
