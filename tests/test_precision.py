"""Precision and gradient accumulation: accumulated micro-batches give the whole batch's loss and gradients
without batch norm (and not with it); bf16 trains on the CPU; fp16 on the CPU is a one-line config error."""
import json
import re

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


# ----- precision as a sweep axis ----------------------------------------------------------------------------------

def test_precisions_cross_the_batch_sizes_and_name_the_trials():
    from engine.sweep import plan_trials
    trials = plan_trials(parse_config(tiny_table(sweep={"batch_sizes": [16, 32], "precisions": ["fp32", "bf16"]})))
    assert [(t.name, t.precision) for t in trials] == [
        ("bs00016_seed0_fp32", "fp32"), ("bs00016_seed0_bf16", "bf16"),
        ("bs00032_seed0_fp32", "fp32"), ("bs00032_seed0_bf16", "bf16")]
    plain = plan_trials(parse_config(tiny_table(train={"precision": "bf16"}, sweep={"batch_sizes": [16]})))
    assert [(t.name, t.precision) for t in plain] == [("bs00016_seed0", "bf16")]


def test_a_precision_list_is_checked_item_by_item():
    with pytest.raises(ConfigError, match=r"sweep.precisions contains 'bf61': must be one of fp32, bf16, fp16; "
                                          r"did you mean 'bf16'\?"):
        parse_config(tiny_table(sweep={"precisions": ["fp32", "bf61"]}))
    with pytest.raises(ConfigError, match=r"sweep.precisions contains 'fp16': float16 training needs a CUDA GPU"):
        parse_config(tiny_table(sweep={"precisions": ["bf16", "fp16"]}))
    with pytest.raises(ConfigError, match=r"sweep.precisions = \['bf16', 'bf16'\]: contains a value twice"):
        parse_config(tiny_table(sweep={"precisions": ["bf16", "bf16"]}))
    with pytest.raises(ConfigError, match=r"sweep.precisions = 'bf16': must be a list"):
        parse_config(tiny_table(sweep={"precisions": "bf16"}))
    with pytest.raises(ConfigError, match=r"sweep.precisions = \['bf16'\]: crossing precisions applies to the grid"):
        parse_config(tiny_table(sweep={"precisions": ["bf16"], "strategy": "random", "batch_size_min": 16,
                                       "batch_size_max": 64, "trials": 2}))


def test_fp32_and_bf16_trials_of_one_sweep_are_told_apart_in_the_file_the_summary_and_the_report(tmp_path, capsys,
                                                                                                  qtbot):
    import h5py

    from engine.analysis import by_batch_size, summarize_run
    from engine.cli import main
    config = parse_config(tiny_table(train={"epochs": 1}, sweep={"batch_sizes": [32, 64],
                                                                "precisions": ["fp32", "bf16"]}))
    path = run_sweep(config, tmp_path)
    with h5py.File(path, "r") as handle:
        assert {name: handle[f"trials/{name}"].attrs["precision"] for name in handle["trials"]} == {
            "bs00032_seed0_fp32": "fp32", "bs00032_seed0_bf16": "bf16",
            "bs00064_seed0_fp32": "fp32", "bs00064_seed0_bf16": "bf16"}
    run = read_run(path)
    assert all(trial.status == "completed" for trial in run.trials)
    stats = by_batch_size(summarize_run(run))
    assert [(entry.batch_size, entry.precision, entry.trials) for entry in stats] == [
        (32, "bf16", 1), (32, "fp32", 1), (64, "bf16", 1), (64, "fp32", 1)]
    from gui.summary import SummaryView
    summary = SummaryView()
    qtbot.addWidget(summary)
    summary.set_runs([run])
    summary.refresh()
    # A series per precision, as per base learning rate: named in the key, a column of the table.
    assert "bf16" in summary.key_text() and "fp32" in summary.key_text()
    headers = summary.table_headers()
    assert [(row[0], row[headers.index("Precision")]) for row in summary.table_rows()] == [
        (32, "bf16"), (64, "bf16"), (32, "fp32"), (64, "fp32")]
    assert main(["report", str(path), "--json", str(tmp_path / "report.json")]) == 0
    out = capsys.readouterr().out
    document = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert sorted((c["batch_size"], c["precision"]) for c in document["candidates"]) == [
        (32, "bf16"), (32, "fp32"), (64, "bf16"), (64, "fp32")]
    assert {trial["precision"] for trial in document["trials"]} == {"bf16", "fp32"}
    # The memory line is one precision's (both batch sizes of it), never one line through both precisions.
    memory = document["memory_model"]
    assert memory["precision"] in ("bf16", "fp32") and memory["batch_sizes_fitted"] == 2, memory
    assert f"({memory['precision']} trials, the most per example" in out
    assert "precision" in out.splitlines()[1]
    by_precision = out.split("By precision")[1].splitlines()
    assert by_precision[1].startswith("  bf16: 2 trials, ") and by_precision[2].startswith("  fp32: 2 trials, ")
    assert all("samples/s" in line and "step memory" in line and "best val acc" in line for line in by_precision[1:3])
    # The verdict names a batch size with its precision, so that two precisions' batch size 32 are not one.
    assert re.search(r"batch size (32|64) in (bf16|fp32)", out)


def test_a_file_without_the_precision_attribute_reads_as_its_configs(tmp_path):
    import h5py
    path = run_sweep(parse_config(tiny_table(train={"epochs": 1, "precision": "bf16"}, sweep={"batch_sizes": [32]})),
                     tmp_path)
    with h5py.File(path, "r+") as handle:     # as written before trials recorded their precision
        del handle["trials/bs00032_seed0"].attrs["precision"]
    assert read_run(path).trials[0].precision == "bf16"


def test_resuming_a_precision_sweep_retrains_only_the_interrupted_precision(tmp_path):
    import h5py

    from engine.resume import plan_resume
    config = parse_config(tiny_table(train={"epochs": 1}, sweep={"batch_sizes": [32], "precisions": ["fp32", "bf16"]}))
    path = run_sweep(config, tmp_path)
    with h5py.File(path, "r+") as handle:
        handle.attrs["status"] = "cancelled"
        handle["trials/bs00032_seed0_bf16"].attrs["status"] = "cancelled"
    plan = plan_resume(path)
    assert [(spec.name, spec.precision) for spec in plan.to_train] == [("bs00032_seed0_bf16", "bf16")]
