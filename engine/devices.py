"""Which devices exist here, what they are called, and how much memory a trial used on them."""
from __future__ import annotations

import platform

import psutil
import torch

from engine.errors import ConfigError


def available_devices() -> list[str]:
    return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]


def resolve_device(name: str) -> torch.device:
    """'auto' → the GPU when usable, else the CPU. Asking for CUDA where there is none is a user error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError(["sweep.device = 'cuda': no usable NVIDIA GPU here (use auto or cpu)"])
    if name not in ("cpu", "cuda"):
        raise ConfigError([f"sweep.device = {name!r}: must be one of auto, cpu, cuda"])
    return torch.device(name)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return _cpu_model() or platform.processor() or platform.machine()


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


class PeakMemory:
    """Peak memory over an interval. On CUDA: the allocator's peak of tensor memory. On the CPU there is no
    per-tensor peak, so it is the process's resident memory sampled at each `sample()` call (it includes the
    dataset and the Python runtime, and the system may not return freed memory)."""

    def __init__(self, device: torch.device):
        self.device = device
        self._process = psutil.Process()
        self._peak = 0

    def reset(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        self._peak = 0

    def sample(self) -> None:
        if self.device.type != "cuda":
            self._peak = max(self._peak, self._process.memory_info().rss)

    def peak(self) -> int:
        if self.device.type == "cuda":
            return int(torch.cuda.max_memory_allocated(self.device))
        self.sample()
        return self._peak


def is_out_of_memory(error: BaseException) -> bool:
    if isinstance(error, torch.OutOfMemoryError):
        return True
    # The CPU allocator reports exhaustion as a plain RuntimeError.
    text = str(error)
    return isinstance(error, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)
