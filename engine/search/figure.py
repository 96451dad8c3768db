"""`report --png` for a search: the Search tab's three panels as a static figure (matplotlib, headless), with
the same titles and captions (engine.search.summary)."""
from __future__ import annotations

import math
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: no window system is touched
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from engine.errors import UserError  # noqa: E402
from engine.search.summary import PANEL_CAPTIONS, PANEL_TITLES, SearchSummary, search_headline  # noqa: E402

SCORE_MAP = "plasma"    # as the app's Search tab: scores never share the batch sizes' viridis


def search_figure_path(summary_png: Path) -> Path:
    """Where the search figure goes beside `report --png OUT.png`: OUT-search.png."""
    return summary_png.with_name(f"{summary_png.stem}-search{summary_png.suffix or '.png'}")


def search_figure(search: SearchSummary, path: Path) -> None:
    figure, axes = plt.subplots(1, 3, figsize=(15, 5), constrained_layout=True)
    scores = np.array([p.score(search.objective) for p in search.points])
    scored = np.isfinite(scores)
    pruned = np.array([p.pruned for p in search.points], dtype=bool)
    unscored = ~scored & ~pruned
    goodness = np.zeros(len(scores))
    if scored.any():
        span = float(np.ptp(scores[scored])) or 1.0
        goodness[scored] = (scores[scored] - scores[scored].min()) / span
        if search.lower_is_better:
            goodness[scored] = 1 - goodness[scored]
    colors = plt.get_cmap(SCORE_MAP)(0.1 + 0.85 * goodness)
    numbers = np.arange(1, len(search.points) + 1)
    sizes = np.array([p.batch_size for p in search.points])
    lrs = np.array([p.lr for p in search.points])
    floor = (np.nanmax(scores) if search.lower_is_better else np.nanmin(scores)) if scored.any() else 0.0

    progress, where, batch = axes
    progress.scatter(numbers[scored], scores[scored], c=colors[scored], zorder=3)
    progress.plot(numbers, search.best_so_far(), color="0.3", linewidth=1.5, label="best so far")
    progress.scatter(numbers[pruned], np.full(pruned.sum(), floor), marker="x", color="0.4", label="pruned early")
    progress.scatter(numbers[unscored], np.full(unscored.sum(), floor), facecolors="none", edgecolors="0.4",
                     label="no score")
    progress.set_xlabel("point, in the order tried")
    where.scatter(sizes[scored], lrs[scored], c=colors[scored], s=60, zorder=3)
    where.scatter(sizes[pruned], lrs[pruned], marker="x", color="0.4", s=60)
    where.scatter(sizes[unscored], lrs[unscored], facecolors="none", edgecolors="0.4", s=60)
    where.set_xscale("log", base=2)
    where.set_yscale("log")
    where.set_xlabel("batch size")
    where.set_ylabel("learning rate")
    for point, color in zip(search.points, colors):
        values = [v for v in point.values if math.isfinite(v)]
        batch.scatter([point.batch_size] * len(values), values, color="0.5", s=10)
        score = point.score(search.objective)
        if math.isfinite(score):
            batch.errorbar([point.batch_size], [score], yerr=[[score - min(values)], [max(values) - score]],
                           fmt="o", color=color, ecolor="0.4", capsize=3)
    batch.set_xscale("log", base=2)
    batch.set_xlabel("batch size")
    for axis, key in zip(axes, PANEL_TITLES):
        if axis is not where:
            axis.set_ylabel(search.objective_label)
        axis.set_title(PANEL_TITLES[key])
        axis.grid(True, alpha=0.3)
        # The caption under each panel, as in the app.
        axis.text(0, -0.16, "\n".join(textwrap.wrap(PANEL_CAPTIONS[key], 70)), transform=axis.transAxes,
                  va="top", fontsize=8)
    progress.legend(fontsize=8)
    figure.suptitle("\n".join(textwrap.wrap(search_headline(search), 160)), fontsize=10)
    try:
        figure.savefig(path, dpi=110, bbox_inches="tight")
    except OSError as error:
        raise UserError(f"--png {path}: cannot be written ({error.strerror})") from None
    finally:
        plt.close(figure)
