"""Static figures for the command line's `report --png` (matplotlib, no display needed)."""
from __future__ import annotations

import math
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: no window system is touched
import matplotlib.pyplot as plt  # noqa: E402

from engine.analysis import TrialSummary, by_batch_size  # noqa: E402
from engine.errors import UserError  # noqa: E402
from engine.runfile import RunData  # noqa: E402
from engine.science.findings import Finding  # noqa: E402
from engine.science.recommendation import Verdict  # noqa: E402
from engine.science.report import VERDICT_COLORS, VERDICT_WORDS  # noqa: E402

FINDINGS_COLUMNS = 3
LINE_STYLES = ("--", ":", "-.")        # the lines after the first: rules and fits told apart by style


def summary_figure(run: RunData, summaries: list[TrialSummary], path: Path, verdict: Verdict) -> None:
    """Validation accuracy and throughput against batch size (log2 axis), mean ± std over seeds, with the
    no-skill baseline and the target on the accuracy axis and the recommended batch size ringed."""
    stats = by_batch_size(summaries)
    figure, (accuracy_axis, speed_axis) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for base_lr in sorted({s.base_lr for s in stats}):
        points = [s for s in stats if s.base_lr == base_lr]
        sizes = [s.batch_size for s in points]
        label = f"base lr {base_lr:g}" if len({s.base_lr for s in stats}) > 1 else None
        for axis, key in ((accuracy_axis, "best_val_accuracy"), (speed_axis, "samples_per_s")):
            axis.errorbar(sizes, [s.mean[key] for s in points], yerr=[s.std[key] for s in points],
                          marker="o", capsize=3, label=label)
    accuracy_axis.axhline(verdict.baseline.accuracy, color="0.5", linestyle=":", linewidth=1,
                          label=f"no-skill baseline ({verdict.baseline.accuracy:.1%})")
    if verdict.target_accuracy is not None:
        accuracy_axis.axhline(verdict.target_accuracy, color="0.3", linestyle="--", linewidth=1,
                              label=f"target ({verdict.target_accuracy:.1%})")
    if verdict.pick is not None:
        for axis, key in ((accuracy_axis, "best_val_accuracy"), (speed_axis, "samples_per_s")):
            axis.scatter([verdict.pick.batch_size], [verdict.pick.stats.mean[key]], s=260, facecolors="none",
                         edgecolors="black", linewidths=1.5, zorder=5, label="recommended")
    all_sizes = sorted({s.batch_size for s in stats})
    for axis, title, unit in ((accuracy_axis, "Best validation accuracy", "fraction"),
                              (speed_axis, "Training throughput, whole trial", "samples/s (evaluation excluded)")):
        axis.set_xscale("log", base=2)
        axis.set_xticks(all_sizes, [str(size) for size in all_sizes])
        axis.minorticks_off()
        axis.set_xlabel("batch size")
        axis.set_ylabel(unit)
        axis.set_title(title)
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=8)
    figure.suptitle(f"{run.header.name} · {run.header.dataset} · {run.header.model} · "
                    f"{run.environment.get('device_name', '')} — {verdict.headline}", fontsize=10)
    try:
        figure.savefig(path, dpi=120)
    except OSError as error:
        raise UserError(f"--png {path}: cannot be written ({error.strerror})") from None
    finally:
        plt.close(figure)


def findings_figure_path(summary_png: Path) -> Path:
    """Where the findings figure goes beside `report --png OUT.png`: OUT-findings.png."""
    return summary_png.with_name(f"{summary_png.stem}-findings{summary_png.suffix or '.png'}")


def findings_figure(findings: list[Finding], path: Path) -> None:
    """A panel per finding, as the Science tab's cards draw it: each seed's point against batch size and the
    finding's own lines (engine.science.findings.evidence.EvidencePlot), titled with the verdict; an untestable
    claim's panel says what would test it."""
    rows = math.ceil(len(findings) / FINDINGS_COLUMNS)
    figure, axes = plt.subplots(rows, FINDINGS_COLUMNS, figsize=(5 * FINDINGS_COLUMNS, 4 * rows),
                                constrained_layout=True, squeeze=False)
    for axis, finding in zip(axes.flat, findings):
        title = "\n".join(textwrap.wrap(f"{VERDICT_WORDS[finding.verdict]}: {finding.claim}", 60))
        axis.set_title(title, fontsize=9, color=VERDICT_COLORS.get(finding.verdict, "0.4"), loc="left")
        evidence = finding.plot
        if evidence is None:
            axis.text(0.5, 0.5, "\n".join(textwrap.wrap(finding.evidence, 50)), ha="center", va="center",
                      fontsize=8, color="0.3", transform=axis.transAxes)
            axis.set_axis_off()
            continue
        axis.scatter(evidence.batch_sizes, evidence.values, s=18, color="tab:blue", alpha=0.7, label="each seed",
                     zorder=3)
        dashed = 0
        for index, line in enumerate(evidence.lines):
            style = "-"
            if index and line.dashed:
                style = LINE_STYLES[dashed % len(LINE_STYLES)]
                dashed += 1
            axis.plot(line.batch_sizes, line.values, linestyle=style, color="black" if index == 0 else "0.45",
                      linewidth=1.8 if index == 0 else 1.2, label=line.name)
        axis.set_xscale("log", base=2)
        sizes = sorted(set(evidence.batch_sizes))
        axis.set_xticks(sizes, [str(size) for size in sizes])
        axis.minorticks_off()
        if evidence.log_y:
            axis.set_yscale("log")
        axis.set_xlabel("batch size")
        axis.set_ylabel(evidence.y_label)
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=7)
    for axis in list(axes.flat)[len(findings):]:
        axis.set_axis_off()
    try:
        figure.savefig(path, dpi=100)
    except OSError as error:
        raise UserError(f"--png {path}: cannot be written ({error.strerror})") from None
    finally:
        plt.close(figure)
