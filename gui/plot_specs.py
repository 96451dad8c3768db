"""What the live plots show: for each, its title, the series drawn in it and how each is drawn. The six of PLOTS
are always shown; NOISE_PLOT only for runs that measure the gradient noise scale."""
from __future__ import annotations

from dataclasses import dataclass

from engine import schema

# How a series is drawn. MAIN: the epoch measurement a plot is about (thick, with a symbol per seed);
# TRAIN: its training-set twin (thin, faded); STEP: a per-step metric; FAINT: per-step loss behind the rest.
MAIN, TRAIN, STEP, FAINT = "main", "train", "step", "faint"
EPOCH, STEP_GROUP, NOISE_GROUP = schema.EPOCH_GROUP, schema.STEP_GROUP, schema.NOISE_GROUP


@dataclass(frozen=True)
class Series:
    metric: str            # a name from engine.schema
    group: str             # schema.EPOCH_GROUP, schema.STEP_GROUP or schema.NOISE_GROUP
    role: str
    smooth: bool = False   # the smoothing slider applies to it


@dataclass(frozen=True)
class PlotSpec:
    name: str
    title: str
    unit_metric: str       # the metric whose presentation (unit, scale) the y axis uses
    series: tuple[Series, ...]
    help: str


PLOTS: tuple[PlotSpec, ...] = (
    PlotSpec("loss", "Loss", "val_loss",
             (Series("val_loss", EPOCH, MAIN), Series("train_loss", EPOCH, TRAIN),
              Series("loss", STEP_GROUP, FAINT, smooth=True)),
             "Validation loss (thick), train loss (thin) and the loss of each batch (faint). Lower is better."),
    PlotSpec("accuracy", "Accuracy", "val_accuracy",
             (Series("val_accuracy", EPOCH, MAIN), Series("train_accuracy", EPOCH, TRAIN)),
             "Validation accuracy (thick) and train accuracy (thin). Higher is better."),
    PlotSpec("grad_norm", schema.METRICS["grad_norm"].label, "grad_norm",
             (Series("grad_norm", STEP_GROUP, STEP, smooth=True),),
             "Size of the gradient at each step. Smaller batches give noisier gradients."),
    PlotSpec("lr", schema.METRICS["lr"].label, "lr", (Series("lr", STEP_GROUP, STEP),),
             "The learning rate used at each step (after scaling and warm-up)."),
    PlotSpec("throughput", schema.METRICS["samples_per_s"].label, "samples_per_s",
             (Series("samples_per_s", EPOCH, MAIN),),
             "Training examples processed per second in each epoch. Higher is faster."),
    PlotSpec("memory", schema.METRICS["peak_memory_bytes"].label, "peak_memory_bytes",
             (Series("peak_memory_bytes", EPOCH, MAIN),),
             "Most memory used during each epoch. Must fit on the device."),
)
# B_simple is already a moving average (engine.science.noise_scale): the smoothing slider leaves it alone.
NOISE_PLOT = PlotSpec("noise", "Noise scale B_simple", "b_simple", (Series("b_simple", NOISE_GROUP, STEP),),
                      "The gradient noise scale B_simple = tr(Σ)/|G|² (McCandlish et al. 2018), measured every "
                      "science.noise_every steps and averaged. Log scale.")
NOISE_CAPTION = ("B_simple rises as the loss falls; batch sizes well below it scale almost perfectly, those well "
                 "above it pay examples without saving steps.")
# Every live plot in the order they are laid out: the noise scale beside the loss it explains.
LIVE_PLOTS: tuple[PlotSpec, ...] = (PLOTS[0], NOISE_PLOT, *PLOTS[1:])
PLOT_NAMES = tuple(spec.name for spec in PLOTS)
SPECS = {spec.name: spec for spec in LIVE_PLOTS}
