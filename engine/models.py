"""The models a sweep can train. Each adapts the dataset's per-example shape to what it needs."""
from __future__ import annotations

import math

import torch
from torch import nn

from engine.config import ModelConfig


def _as_channels_length(input_shape: tuple[int, ...]) -> tuple[int, int]:
    """(C, L) for a 1-D convolution: vectors are one channel, sequences (L, F) have F channels."""
    if len(input_shape) == 1:
        return 1, input_shape[0]
    if len(input_shape) == 2:
        return input_shape[0], input_shape[1]
    raise ValueError(f"no 1-D layout for input shape {input_shape}")


class MLP(nn.Module):
    def __init__(self, input_shape: tuple[int, ...], num_classes: int, width: int, depth: int, batch_norm: bool):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        features = math.prod(input_shape)
        for _ in range(depth):
            layers.append(nn.Linear(features, width))
            if batch_norm:
                layers.append(nn.BatchNorm1d(width))
            layers.append(nn.ReLU())
            features = width
        layers.append(nn.Linear(features, num_classes))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class CNN(nn.Module):
    """Conv → (BN) → ReLU → pool blocks, doubling channels per block; 2-D for images, 1-D otherwise."""

    def __init__(self, input_shape: tuple[int, ...], kind: str, num_classes: int, width: int, depth: int,
                 batch_norm: bool):
        super().__init__()
        self.images = len(input_shape) == 3
        if self.images:
            channels, size = input_shape[0], min(input_shape[1:])
            conv, norm, pool, adaptive = nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d, nn.AdaptiveAvgPool2d
        else:
            # Sequences arrive as (L, F); a 1-D convolution wants features as channels.
            size, channels = input_shape if kind == "sequence" else _as_channels_length(input_shape)[::-1]
            conv, norm, pool, adaptive = nn.Conv1d, nn.BatchNorm1d, nn.MaxPool1d, nn.AdaptiveAvgPool1d
        self.transpose = kind == "sequence"
        self.input_shape = input_shape
        blocks: list[nn.Module] = []
        out_channels = width
        for _ in range(depth):
            blocks.append(conv(channels, out_channels, kernel_size=3, padding=1, bias=not batch_norm))
            if batch_norm:
                blocks.append(norm(out_channels))
            blocks.append(nn.ReLU())
            if size >= 2:  # pool while there is something left to pool
                blocks.append(pool(2))
                size //= 2
            channels, out_channels = out_channels, out_channels * 2
        blocks += [adaptive(1), nn.Flatten(), nn.Linear(channels, num_classes)]
        self.layers = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.transpose:
            x = x.transpose(1, 2)
        elif not self.images:
            x = x.reshape(x.shape[0], *_as_channels_length(self.input_shape))
        return self.layers(x)


class Recurrent(nn.Module):
    """LSTM or GRU over time steps; the last step's hidden state is classified."""

    def __init__(self, input_shape: tuple[int, ...], kind: str, num_classes: int, width: int, depth: int,
                 cell: str):
        super().__init__()
        self.kind = kind
        if kind == "sequence":                      # (L, F)
            features = input_shape[1]
        elif kind == "image":                       # rows as time steps: (H, C·W)
            features = input_shape[0] * input_shape[2]
        elif len(input_shape) == 2:                 # a signal (C, L): time along L, channels as features
            features = input_shape[0]
        else:                                       # a vector: one feature per step
            features = 1
        rnn = nn.LSTM if cell == "lstm" else nn.GRU
        self.rnn = rnn(features, width, num_layers=depth, batch_first=True)
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "image":
            x = x.permute(0, 2, 1, 3).flatten(2)
        elif self.kind != "sequence":
            x = x.transpose(1, 2) if x.dim() == 3 else x.unsqueeze(-1)
        output, _ = self.rnn(x)
        return self.head(output[:, -1])


def build_model(config: ModelConfig, input_shape: tuple[int, ...], data_kind: str, num_classes: int) -> nn.Module:
    if config.kind == "mlp":
        return MLP(input_shape, num_classes, config.width, config.depth, config.batch_norm)
    if config.kind == "cnn":
        return CNN(input_shape, data_kind, num_classes, config.width, config.depth, config.batch_norm)
    return Recurrent(input_shape, data_kind, num_classes, config.width, config.depth, config.kind)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
