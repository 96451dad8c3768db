"""The one place for the run-file layout, metric names, units and trial statuses.

The writer, the reader, the report, the plots and the command line all read these tables; nothing else
spells a dataset name or a unit.
"""
from __future__ import annotations

from dataclasses import dataclass

FORMAT = "batch-size-lab"
# Version 2 (this round) added the attempts group, the `resumed`, class-balance and thread attributes; every
# addition of this round (statuses, datasets, attributes) belongs to version 2. Readers accept 1 and 2: a
# version-1 file simply lacks them, and each reader says what it assumes then.
FORMAT_VERSION = 2
TRIALS_GROUP = "trials"
EPOCH_GROUP = "epoch"
STEP_GROUP = "step"


@dataclass(frozen=True)
class Metric:
    name: str       # dataset name in the run file, and the key in event records
    label: str      # what a person reads on an axis or a column header
    units: str      # stored as the dataset's `units` attribute
    dtype: str      # numpy dtype in the file


EPOCH_METRICS: tuple[Metric, ...] = (
    Metric("epoch", "Epoch", "epochs", "int64"),
    Metric("step", "Step", "optimizer steps", "int64"),
    Metric("samples", "Samples seen", "samples", "int64"),
    Metric("wall_time_s", "Training time", "s", "float64"),
    Metric("train_loss", "Train loss", "nats", "float64"),
    Metric("train_accuracy", "Train accuracy", "fraction", "float64"),
    Metric("val_loss", "Validation loss", "nats", "float64"),
    Metric("val_accuracy", "Validation accuracy", "fraction", "float64"),
    Metric("samples_per_s", "Throughput", "samples/s", "float64"),
    Metric("peak_memory_bytes", "Peak memory", "bytes", "int64"),
)

STEP_METRICS: tuple[Metric, ...] = (
    Metric("step", "Step", "optimizer steps", "int64"),
    Metric("samples", "Samples seen", "samples", "int64"),
    Metric("wall_time_s", "Training time", "s", "float64"),
    Metric("loss", "Batch loss", "nats", "float32"),
    Metric("lr", "Learning rate", "1", "float32"),
    Metric("grad_norm", "Gradient norm", "1", "float32"),
)

# Evaluations on the schedule of [science] eval_schedule, in examples seen: the same points for every batch size,
# taken at the first step that reaches each. Files without this group (version 1, or written before it) fall
# back to the epoch rows.
EVAL_GROUP = "eval"
EVAL_METRICS: tuple[Metric, ...] = (
    Metric("step", "Step", "optimizer steps", "int64"),
    Metric("samples", "Samples seen", "samples", "int64"),
    Metric("wall_time_s", "Training time", "s", "float64"),
    Metric("val_loss", "Validation loss", "nats", "float64"),
    Metric("val_accuracy", "Validation accuracy", "fraction", "float64"),
)

# The gradient noise scale ([science] noise_scale): every noise_every steps, the batch's gradient from
# noise_microbatches micro-batches at the same parameters (McCandlish et al. 2018, appendix A). grad_sq and
# trace_sigma are one measurement's raw estimates of |G|^2 and tr(Σ); b_simple is the ratio of their bias-
# corrected moving averages up to that step. micro_batch is the micro-batches' effective size (their harmonic
# mean, the b of the estimator).
NOISE_GROUP = "noise"
NOISE_METRICS: tuple[Metric, ...] = (
    Metric("step", "Step", "optimizer steps", "int64"),
    Metric("samples", "Samples seen", "samples", "int64"),
    Metric("wall_time_s", "Training time", "s", "float64"),
    Metric("micro_batch", "Micro-batch size", "samples", "float64"),
    Metric("grad_sq", "|G|² estimate", "nats²", "float64"),
    Metric("trace_sigma", "tr(Σ) estimate (per example)", "nats²", "float64"),
    Metric("b_simple", "Noise scale B_simple", "samples", "float64"),
)
# Trial attribute: why the noise scale was not measured ("" when it was, or was not asked for): a batch-norm model's
# gradient changes with the micro-batch, so the estimate would be wrong, and a batch too small to split.
NOISE_UNAVAILABLE_ATTR = "noise_scale_unavailable"

# Telemetry sampled about ten times a second while a trial trains (engine/hardware/telemetry.py). A figure that
# cannot be read here (no NVIDIA GPU, no permission, no counter) is NaN in every row, never 0, and the trial attribute
# TELEMETRY_UNAVAILABLE_ATTR says why, source by source. Energies count from the trial's start.
TELEMETRY_GROUP = "telemetry"
TELEMETRY_METRICS: tuple[Metric, ...] = (
    Metric("time_s", "Time since the trial started", "s", "float64"),
    Metric("cpu_percent", "CPU utilisation of the process", "% of one core", "float32"),
    Metric("process_rss_bytes", "Process memory", "bytes", "float64"),
    Metric("cpu_energy_j", "CPU energy (RAPL)", "J", "float64"),
    Metric("gpu_utilization", "GPU utilisation", "%", "float32"),
    Metric("gpu_memory_utilization", "GPU memory bandwidth utilisation", "%", "float32"),
    Metric("gpu_memory_used_bytes", "GPU memory used", "bytes", "float64"),
    Metric("gpu_power_w", "GPU power", "W", "float32"),
    Metric("gpu_energy_j", "GPU energy", "J", "float64"),
    Metric("gpu_temperature_c", "GPU temperature", "degrees C", "float32"),
    Metric("gpu_sm_clock_mhz", "GPU SM clock", "MHz", "float32"),
    Metric("gpu_throttle_reasons", "GPU clock event reasons (NVML bit mask)", "bit mask", "float64"),
)
TELEMETRY_UNAVAILABLE_ATTR = "telemetry_unavailable"
# Where the training clock stood on the telemetry clock, so that a counter can be read at a training-clock moment
# such as the crossing of a target (engine/hardware/energy.py): a row each time the trial logged its steps (just
# after a step) and each time an evaluation ended. time_s is the telemetry's clock (from the trial's start, setup
# and evaluations included); training_time_s the clock of the steps' and evaluations' wall_time_s (evaluation
# excluded), which stands still across an evaluation. Files written before it lack the group.
TRAINING_CLOCK_GROUP = "training_clock"
TRAINING_CLOCK_METRICS: tuple[Metric, ...] = (
    Metric("time_s", "Time since the trial started", "s", "float64"),
    Metric("training_time_s", "Training time", "s", "float64"),
)

# Each group of a trial and its datasets; the writer, the reader and the live run go through this table.
TRIAL_GROUPS: dict[str, tuple[Metric, ...]] = {EPOCH_GROUP: EPOCH_METRICS, STEP_GROUP: STEP_METRICS,
                                               EVAL_GROUP: EVAL_METRICS, NOISE_GROUP: NOISE_METRICS,
                                               TELEMETRY_GROUP: TELEMETRY_METRICS,
                                               TRAINING_CLOCK_GROUP: TRAINING_CLOCK_METRICS}
# Groups that files written before them lack: read as empty.
OPTIONAL_TRIAL_GROUPS = (EVAL_GROUP, NOISE_GROUP, TELEMETRY_GROUP, TRAINING_CLOCK_GROUP)

METRICS: dict[str, Metric] = {m.name: m for m in EPOCH_METRICS + STEP_METRICS}

# Trial statuses. `running` is what a killed writer leaves behind.
RUNNING = "running"
COMPLETED = "completed"
CANCELLED = "cancelled"
DIVERGED = "diverged"
OUT_OF_MEMORY = "out_of_memory"
FAILED = "failed"
# A search stopped the trial early because its evaluations were clearly worse than earlier points' (version 2).
PRUNED = "pruned"
STATUSES = (RUNNING, COMPLETED, CANCELLED, DIVERGED, OUT_OF_MEMORY, FAILED, PRUNED)
# Trials of a plan that have no group in the file: waiting to start, or left unstarted when the sweep ended.
QUEUED = "queued"
NOT_RUN = "not_run"
# What a person reads for each status, in tables, messages and exports.
STATUS_LABELS = {QUEUED: "queued", NOT_RUN: "not run", RUNNING: "running", COMPLETED: "completed",
                 CANCELLED: "cancelled", DIVERGED: "diverged", OUT_OF_MEMORY: "out of memory", FAILED: "failed",
                 PRUNED: "pruned"}

# How a whole run ended (the root `status`), in words. A `running` run that no process writes any more was
# interrupted: its writer crashed or was killed.
RUN_STATUS_LABELS = {RUNNING: "running", COMPLETED: "finished", CANCELLED: "stopped", FAILED: "failed"}
INTERRUPTED_LABEL = "interrupted (not closed by its writer)"

# Root attributes the user sets on a finished run (engine.annotations; version 2, files without them have none):
# the name shown instead of the config's, free-text notes, and tags (an array of texts). Rules in engine.annotations.
DISPLAY_NAME_ATTR = "display_name"
NOTES_ATTR = "notes"
TAGS_ATTR = "tags"
ANNOTATION_ATTRS = (DISPLAY_NAME_ATTR, NOTES_ATTR, TAGS_ATTR)

# Root attributes describing the environment the run was made in.
ENVIRONMENT_ATTRS = ("python_version", "torch_version", "app_version", "device", "device_name", "cpu_count",
                     "platform", "cpu_cores_available", "thread_policy", "device_memory_bytes")
# device_memory_bytes: the memory of the device trained on, in bytes (the GPU's total, or the machine's RAM), which
# the memory model extrapolates to; files written before it lack it, and then that extrapolation is unavailable.
# Trial attributes: the CPU threads it trained with and why (engine.hardware.threads decides per trial).
TRIAL_THREAD_ATTRS = ("torch_threads", "threads_reason")
# Trial attributes where the count was timed on the trial's own step (engine.hardware.threads): the thread counts
# tried and the median seconds per step of each, as two equal-length arrays. Absent when not timed (the reason says
# why), and in files written before them.
THREAD_TIMING_ATTRS = ("thread_candidates", "thread_step_seconds")
# Trial attribute: the precision it trained with (train.precision, or its value of sweep.precisions). Files written
# before it trained every trial with their config's train.precision, which readers take instead.
TRIAL_PRECISION_ATTR = "precision"
# Trial attributes: the memory of the trial's second training step in bytes, and how it was measured in words
# (engine.hardware.step_memory: on CUDA the allocator's peak, on the CPU the tensors alive at once, dataset excluded).
# Absent when the trial ended before that step, and in files written before them: read as NaN and "".
TRIAL_MEMORY_ATTRS = ("step_memory_bytes", "step_memory_method")
# Trial attributes of a data-parallel trial (sweep.data_parallel): its rank count and the seconds its gradient
# all-reduces were in flight. A trial without them trained in one process.
RANK_ATTRS = ("ranks", "communication_s")
# Trial attribute, written when the config asks for ensembles (sweep.ensemble = "auto"): how the trial trained, in
# words: "ensemble of N", or "sequential (why not in an ensemble)" (engine.execution.ensemble).
# Absent where the question did not arise (ensemble off, trials in workers or on ranks, files written before it).
EXECUTION_ATTR = "execution"
# Trial attributes of a search (version 2; a grid's trials have proposed_by = "grid" and no others; files written
# before lack them all). proposed_by: the strategy that proposed the trial. search_point: the point's number in
# the order proposed (every seed of a point shares it). objective: this trial's own value of [sweep] objective
# (NaN when it has none); the point's value is the mean over its seeds. pruned_step: the optimizer step at which
# a pruned trial stopped (its reason is the trial's `error` text).
SEARCH_TRIAL_ATTRS = ("proposed_by", "search_point", "objective", "pruned_step")
# Root attributes describing the validation set, for the no-skill baseline a recommendation must beat. Files
# written before they existed lack them; engine.science.recommendation.no_skill_baseline says what it assumes then.
CLASS_BALANCE_ATTRS = ("num_classes", "val_majority_fraction")
# Root attributes: format, format_version, config, created, status, plus ENVIRONMENT_ATTRS and CLASS_BALANCE_ATTRS.
TRIAL_ATTRS = ("batch_size", "seed", "lr", "base_lr", "status", "error", "parameter_count", "steps_per_epoch")

# Resuming a sweep. A trial that was interrupted is trained again from its start; its partial attempt moves to
# /ATTEMPTS_GROUP/<trial name>/<n> (n = 1, 2, ...), laid out like a trial group plus ATTEMPT_ATTRS. Readers of
# /trials (metrics, analyses) see only the last attempt; a version-1 reader ignores the group.
ATTEMPTS_GROUP = "attempts"
ATTEMPT_ATTRS = ("attempt_of", "attempt", "set_aside")   # trial name, n, when it was set aside (ISO 8601)
RESUMED_ATTR = "resumed"      # root attribute: when the sweep was resumed, ISO 8601 texts, oldest first

# find-max-batch writes its tries to a run file of its own: no trials, root attribute RUN_KIND_ATTR set to
# MAX_BATCH_KIND, and one group of one row per try (engine/hardware/max_batch.py). Bytes not measured (the try ran
# out of memory first) are NaN. Sweep files lack the kind attribute.
RUN_KIND_ATTR = "kind"
MAX_BATCH_KIND = "find-max-batch"
MAX_BATCH_GROUP = "max_batch"
MAX_BATCH_PROBE_METRICS: tuple[Metric, ...] = (
    Metric("batch_size", "Batch size", "samples", "int64"),
    Metric("fits", "Fits", "1 fits, 0 does not", "int8"),
    Metric("train_bytes", "Training step memory", "bytes", "float64"),
    Metric("eval_bytes", "Evaluation memory", "bytes", "float64"),
)
# The group's attributes: the limit (bytes, and where it comes from in words), the margin (a fraction), the answer
# (batch sizes, 0 when none fits), the memory model (bytes, bytes per example; NaN without two measured tries), how
# memory was measured and the outcome in words.
MAX_BATCH_ATTRS = ("memory_limit_bytes", "memory_limit_source", "margin", "largest_fit", "recommended_batch_size",
                   "fixed_bytes", "per_example_bytes", "memory_method", "outcome")


def trial_name(batch_size: int, seed: int, base_lr: float | None = None, precision: str | None = None) -> str:
    """A trial's group name; sorts by batch size when listed. base_lr only when learning rates are swept, precision
    only when precisions are.

    Distinct (batch_size, seed, base_lr) always give distinct names: the learning rate is written short (0.05)
    where that reads back as the same number, else in full (0.1000001), never rounded onto a neighbour."""
    name = f"bs{batch_size:05d}_seed{seed}"
    if base_lr is not None:
        short = f"{base_lr:g}"
        name = f"{name}_lr{short if float(short) == base_lr else repr(base_lr)}"
    return name if precision is None else f"{name}_{precision}"
