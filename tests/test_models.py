import pytest
import torch

from engine.config import ModelConfig, TrainConfig
from engine.models import build_model, parameter_count
from engine.train import lr_at, scaled_lr

SHAPES = {"vector": (12,), "signal": (1, 40), "image": (3, 16, 16), "sequence": (20, 3)}


@pytest.mark.parametrize("kind", ["mlp", "cnn", "lstm", "gru"])
@pytest.mark.parametrize("data_kind", list(SHAPES))
def test_every_model_accepts_every_data_kind(kind, data_kind):
    shape = SHAPES[data_kind]
    model = build_model(ModelConfig(kind=kind, width=8, depth=2), shape, data_kind, num_classes=5)
    logits = model(torch.randn(4, *shape))
    assert logits.shape == (4, 5)
    logits.sum().backward()  # gradients flow to every parameter
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_batch_norm_switches_layers(kind):
    with_norm = build_model(ModelConfig(kind=kind, width=8, depth=2, batch_norm=True), (1, 40), "signal", 3)
    without = build_model(ModelConfig(kind=kind, width=8, depth=2, batch_norm=False), (1, 40), "signal", 3)
    norms = lambda m: sum(isinstance(x, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)) for x in m.modules())
    assert norms(with_norm) == 2 and norms(without) == 0


def test_width_and_depth_change_parameter_count():
    small = build_model(ModelConfig(kind="mlp", width=8, depth=1), (10,), "vector", 2)
    # 10*8+8 (hidden) + 8*2+2 (head)
    assert parameter_count(small) == 10 * 8 + 8 + 8 * 2 + 2
    deeper = build_model(ModelConfig(kind="mlp", width=8, depth=3), (10,), "vector", 2)
    assert parameter_count(deeper) == parameter_count(small) + 2 * (8 * 8 + 8)


@pytest.mark.parametrize("rule,batch_size,expected", [
    ("none", 128, 0.1), ("linear", 128, 0.4), ("sqrt", 128, 0.2), ("linear", 8, 0.025), ("sqrt", 32, 0.1)])
def test_lr_scaling_rules(rule, batch_size, expected):
    train = TrainConfig(lr=0.1, lr_scaling=rule, base_batch_size=32)
    assert scaled_lr(train, 0.1, batch_size) == pytest.approx(expected)


def test_warmup_then_constant_and_cosine():
    assert lr_at(0, 1.0, 4, 100, "constant") == pytest.approx(0.25)
    assert lr_at(3, 1.0, 4, 100, "constant") == pytest.approx(1.0)
    assert lr_at(50, 1.0, 4, 100, "constant") == 1.0
    assert lr_at(4, 1.0, 4, 104, "cosine") == pytest.approx(1.0)
    assert lr_at(54, 1.0, 4, 104, "cosine") == pytest.approx(0.5)
    assert lr_at(103, 1.0, 4, 104, "cosine") < 0.01
