"""Static figures for the command line's `report --png` (matplotlib, no display needed)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: no window system is touched
import matplotlib.pyplot as plt  # noqa: E402

from engine.analysis import TrialSummary, by_batch_size  # noqa: E402
from engine.errors import UserError  # noqa: E402
from engine.runfile import RunData  # noqa: E402


def summary_figure(run: RunData, summaries: list[TrialSummary], path: Path) -> None:
    """Validation accuracy and throughput against batch size (log2 axis), mean ± std over seeds."""
    stats = by_batch_size(summaries)
    figure, (accuracy_axis, speed_axis) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for base_lr in sorted({s.base_lr for s in stats}):
        points = [s for s in stats if s.base_lr == base_lr]
        sizes = [s.batch_size for s in points]
        label = f"base lr {base_lr:g}" if len({s.base_lr for s in stats}) > 1 else None
        for axis, key in ((accuracy_axis, "best_val_accuracy"), (speed_axis, "samples_per_s")):
            axis.errorbar(sizes, [s.mean[key] for s in points], yerr=[s.std[key] for s in points],
                          marker="o", capsize=3, label=label)
    for axis, title, unit in ((accuracy_axis, "Best validation accuracy", "fraction"),
                              (speed_axis, "Training throughput", "samples/s")):
        axis.set_xscale("log", base=2)
        axis.set_xlabel("batch size")
        axis.set_ylabel(unit)
        axis.set_title(title)
        axis.grid(True, alpha=0.3)
        if len({s.base_lr for s in stats}) > 1:
            axis.legend()
    figure.suptitle(f"{run.header.name} · {run.header.dataset} · {run.header.model} · "
                    f"{run.environment.get('device_name', '')}", fontsize=10)
    try:
        figure.savefig(path, dpi=120)
    except OSError as error:
        raise UserError(f"--png {path}: cannot be written ({error.strerror})") from None
    finally:
        plt.close(figure)
