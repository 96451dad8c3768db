"""The recommended batch size, earned from a run file, as one structured verdict with its reasons in words.

The Summary's headline, `report` and `report --json` all show `judge(run, target)`, so they cannot disagree.

The rules, in order:
1. The no-skill baseline is the accuracy of always answering the validation set's largest class (recorded in
   the run file), or chance for its class count, or, for files that record neither, 50% (stated in the text).
2. The unit of the answer is a (batch size, base learning rate) pair; without a learning-rate grid that is the
   batch size alone. A pair *learned* when its best validation accuracy, averaged over seeds, is above the
   baseline by more than its noise.
3. Noise is the spread of a pair's best validation accuracy over seeds (highest minus lowest), never less than
   NOISE_TOLERANCE; with a single seed there is no spread and NOISE_TOLERANCE alone is used. Two pairs whose
   accuracy differs by less than the larger of their noises are indistinguishable on accuracy.
4. One target accuracy for everything (the caller's, or `default_target`). Among the pairs that learned and
   reached it in every seed with no failed seed, the most accurate and every pair indistinguishable from it on
   accuracy are the contenders, and the contender that reached the target in the least training time (mean
   over seeds) is recommended.
Each pair gets exactly one role, so no line of the reasons can name the recommended pair among the others.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from engine import schema
from engine.analysis import (MEMORY_LABELS, BatchSizeStats, by_batch_size, memory_measure, summarize_run)
from engine.runfile import RunData

NOISE_TOLERANCE = 0.01
ASSUMED_BASELINE = 0.5
# The default target: this fraction of the best validation accuracy any trial reached, rounded down to half a
# percent. Close enough to the best that "time to target" measures real learning, not the first epoch, yet
# reachable by every batch size that trains well.
AUTO_TARGET_FRACTION = 0.9

# Outcomes of a verdict.
RECOMMENDED = "recommended"
NOTHING_LEARNED = "nothing_learned"
NONE_REACHED = "none_reached"
NO_RESULTS = "no_results"

# Roles of a pair in a verdict: one each.
PICK = "recommended"
AS_ACCURATE_SLOWER = "as_accurate_slower"      # indistinguishable on accuracy, slower to the target
LESS_ACCURATE = "less_accurate"                # reached the target, but less accurate by more than the noise
MISSED_TARGET = "missed_target"                # learned, but not every seed reached the target (or one failed)
DID_NOT_LEARN = "did_not_learn"                # not above the baseline by more than the noise
NO_RESULT = "no_result"                        # no finished epoch: out of memory, failed, still queued/running
ROLE_WORDS = {PICK: "recommended", AS_ACCURATE_SLOWER: "as accurate, slower", LESS_ACCURATE: "less accurate",
              MISSED_TARGET: "missed the target", DID_NOT_LEARN: "did not learn", NO_RESULT: "no result"}


@dataclass(frozen=True)
class Baseline:
    """The accuracy a model with no skill gets, and where that number comes from."""
    accuracy: float
    kind: str                      # "majority_class", "chance" or "assumed"
    text: str                      # e.g. "10.4%, the share of the largest of 10 classes in the validation set"


def no_skill_baseline(run: RunData) -> Baseline:
    majority, classes = run.val_majority_fraction, run.num_classes
    if majority is not None and math.isfinite(majority) and 0 < majority <= 1:
        of = f"the largest of {classes} classes" if classes else "the largest class"
        return Baseline(majority, "majority_class", f"{majority:.1%}, the share of {of} in the validation set")
    if classes and classes > 1:
        return Baseline(1 / classes, "chance", f"{1 / classes:.1%}, chance for {classes} classes")
    return Baseline(ASSUMED_BASELINE, "assumed",
                    f"{ASSUMED_BASELINE:.0%}, assumed because this run file does not record the validation set's "
                    "classes (written by an older version): only accuracy above it counts as learning")


@dataclass
class Candidate:
    """One (batch size, base learning rate) pair as judged."""
    stats: BatchSizeStats
    role: str
    learned: bool
    noise: float                   # accuracy noise: spread over seeds, at least NOISE_TOLERANCE
    named_precision: str = ""      # its precision where the run crosses several (sweep.precisions), else ""

    @property
    def batch_size(self) -> int:
        return self.stats.batch_size

    @property
    def base_lr(self) -> float:
        return self.stats.base_lr

    @property
    def seeds(self) -> int:
        return self.stats.trials

    @property
    def accuracy(self) -> float:
        """Best validation accuracy, mean over seeds."""
        return self.stats.mean["best_val_accuracy"]

    @property
    def time_to_target_s(self) -> float:
        return self.stats.mean["time_to_target_s"]


@dataclass
class Verdict:
    outcome: str                   # RECOMMENDED, NOTHING_LEARNED, NONE_REACHED or NO_RESULTS
    headline: str                  # "Recommended batch size: 32", "No batch size learned", ...
    reasons: list[str]
    suggestions: list[str]
    target_accuracy: float | None
    baseline: Baseline
    lr_grid: bool                  # several base learning rates: the answer names one
    candidates: list[Candidate] = field(default_factory=list)
    pick: Candidate | None = None

    @property
    def batch_size(self) -> int | None:
        return self.pick.batch_size if self.pick else None

    @property
    def base_lr(self) -> float | None:
        return self.pick.base_lr if self.pick else None

    def role_of(self, batch_size: int, base_lr: float | None = None) -> str | None:
        for candidate in self.candidates:
            if candidate.batch_size == batch_size and (base_lr is None or candidate.base_lr == base_lr):
                return candidate.role
        return None


def _best_trial_accuracy(run: RunData) -> float | None:
    best = [float(np.nanmax(trial.epoch["val_accuracy"])) for trial in run.trials
            if len(trial.epoch["val_accuracy"]) and np.isfinite(trial.epoch["val_accuracy"]).any()]
    return max(best) if best else None


def configured_target(run: RunData) -> float | None:
    """The target the run's config sets (sweep.target_accuracy), None when it sets none."""
    value = run.config.get("sweep", {}).get("target_accuracy", 0.0)
    return float(value) if isinstance(value, (int, float)) and value > 0 else None


def default_target(runs: list[RunData]) -> float | None:
    """The target when none is given here: the run's sweep.target_accuracy when its config sets one (an experiment
    such as the critical-batch preset needs a target every batch size reaches), else AUTO_TARGET_FRACTION of the
    best validation accuracy a trial reached, rounded down to half a percent. For several runs shown together,
    the lowest of their targets, so every run has batch sizes that reach it; runs whose best trial is not above
    their baseline by more than NOISE_TOLERANCE are left out of that minimum (their target would measure
    nothing). None before any epoch."""
    targets, learned = [], []
    for run in runs:
        best = _best_trial_accuracy(run)
        if best is None:
            continue
        target = configured_target(run) or math.floor(best * AUTO_TARGET_FRACTION * 200) / 200
        targets.append(target)
        if best - no_skill_baseline(run).accuracy > NOISE_TOLERANCE:
            learned.append(target)
    if not targets:
        return None
    return min(learned) if learned else max(targets)


def _noise(stats: BatchSizeStats) -> float:
    spread = stats.spread["best_val_accuracy"]
    return max(spread, NOISE_TOLERANCE) if math.isfinite(spread) else NOISE_TOLERANCE


def _pair(candidate: Candidate, lr_grid: bool) -> str:
    pair = f"{candidate.batch_size} at lr {candidate.base_lr:g}" if lr_grid else f"{candidate.batch_size}"
    return f"{pair} in {candidate.named_precision}" if candidate.named_precision else pair


def _listing(candidates: list[Candidate], lr_grid: bool, detail) -> str:
    return "batch size " + ", ".join(f"{_pair(c, lr_grid)} ({detail(c)})" for c in candidates)


def _status_words(stats: BatchSizeStats) -> str:
    return ", ".join(f"{count} of {stats.trials} {schema.STATUS_LABELS.get(status, status)}" if stats.trials > 1
                     else schema.STATUS_LABELS.get(status, status) for status, count in sorted(stats.statuses.items())
                     if status != schema.COMPLETED)


def _noise_words(noise: float, several_seeds: bool) -> str:
    if not several_seeds:
        return f"{NOISE_TOLERANCE * 100:g} percentage point, the tolerance with a single seed"
    if noise > NOISE_TOLERANCE:
        return f"{noise * 100:.1f} percentage points, the spread over seeds"
    return f"{NOISE_TOLERANCE * 100:g} percentage point (the seeds agree more closely than that)"


def _several(candidate: Candidate) -> bool:
    """Whether the pair's noise was measured over seeds (two or more with an accuracy)."""
    return math.isfinite(candidate.stats.spread["best_val_accuracy"])


def _missed_detail(candidate: Candidate) -> str:
    stats = candidate.stats
    failed = stats.failed()
    if failed:
        return _status_words(stats)
    if stats.statuses.get(schema.RUNNING):
        return "still running"
    if stats.trials > 1:
        return f"{stats.reached_target or 'no'} of {stats.trials} seeds reached it" if stats.reached_target \
            else "no seed reached it"
    return f"best {candidate.accuracy:.1%}"


def judge(run: RunData, target_accuracy: float | None = None) -> Verdict:
    """The verdict on one run at one target accuracy (None: `default_target([run])`)."""
    target = default_target([run]) if target_accuracy is None else target_accuracy
    baseline = no_skill_baseline(run)
    stats = by_batch_size(summarize_run(run, target))
    lr_grid = len({entry.base_lr for entry in stats}) > 1
    precision_grid = len({entry.precision for entry in stats}) > 1
    candidates = []
    for entry in stats:
        accuracy = entry.mean["best_val_accuracy"]
        noise = _noise(entry)
        learned = math.isfinite(accuracy) and accuracy - baseline.accuracy > noise
        if not math.isfinite(accuracy):
            role = NO_RESULT
        elif not learned:
            role = DID_NOT_LEARN
        elif entry.reached_target < entry.trials or entry.failed():
            role = MISSED_TARGET
        else:
            role = LESS_ACCURATE            # settled below for the contenders
        candidates.append(Candidate(entry, role, learned, noise, entry.precision if precision_grid else ""))
    verdict = Verdict(outcome=NO_RESULTS, headline="No recommendation yet", reasons=[], suggestions=[],
                      target_accuracy=target, baseline=baseline, lr_grid=lr_grid, candidates=candidates)
    measured = [c for c in candidates if c.role != NO_RESULT]
    if not measured or target is None:
        verdict.reasons.append("No trial has finished an epoch yet.")
        return verdict
    reaching = [c for c in candidates if c.role == LESS_ACCURATE]
    if not any(c.learned for c in candidates):
        _nothing_learned(verdict, run, measured)
    elif not reaching:
        _none_reached(verdict)
    else:
        _recommend(verdict, run, reaching)
    return verdict


def _nothing_learned(verdict: Verdict, run: RunData, measured: list[Candidate]) -> None:
    best = max(measured, key=lambda c: c.accuracy)
    verdict.outcome = NOTHING_LEARNED
    verdict.headline = "No batch size learned"
    margin = best.accuracy - verdict.baseline.accuracy
    how = (f"is {margin * 100:.1f} points above the no-skill baseline, {verdict.baseline.text}: less than "
           f"{_noise_words(best.noise, _several(best))}" if margin > 0 else
           f"is not above the no-skill baseline, {verdict.baseline.text}")
    verdict.reasons.append(f"The best validation accuracy, {best.accuracy:.1%} (batch size "
                           f"{_pair(best, verdict.lr_grid)}), {how}; there is no batch size to recommend from "
                           "this run.")
    _other_lines(verdict)
    rates = sorted({c.base_lr for c in verdict.candidates})
    tried = f"this run used {rates[0]:g}" if len(rates) == 1 else f"this run tried {rates[0]:g} to {rates[-1]:g}"
    if verdict.baseline.kind == "assumed":
        verdict.suggestions.append("If the task has more than two classes, this verdict may be too strict: "
                                   "run it again with this version, which records the classes.")
    verdict.suggestions.append(f"Try a lower learning rate ({tried}), more training examples or epochs, and "
                               "check that the labels belong to the inputs.")


def _none_reached(verdict: Verdict) -> None:
    learned = [c for c in verdict.candidates if c.learned]
    best = max(learned, key=lambda c: c.accuracy)
    verdict.outcome = NONE_REACHED
    verdict.headline = "No batch size reached the target"
    every = "in every seed" if any(c.seeds > 1 for c in learned) else ""
    verdict.reasons.append(
        f"No batch size that learned reached the target, {verdict.target_accuracy:.1%} validation accuracy"
        f"{' ' + every if every else ''}; the most accurate was batch size {_pair(best, verdict.lr_grid)} with "
        f"{best.accuracy:.1%}.")
    _other_lines(verdict)
    lower = math.floor(best.accuracy * 200) / 2
    verdict.suggestions.append(f"Lower the target to {lower:g}% or less, or train for more epochs.")


def _recommend(verdict: Verdict, run: RunData, reaching: list[Candidate]) -> None:
    lr_grid = verdict.lr_grid
    top = max(reaching, key=lambda c: c.accuracy)
    contenders = [c for c in reaching if top.accuracy - c.accuracy < max(top.noise, c.noise)]
    pick = min(contenders, key=lambda c: c.time_to_target_s)
    pick.role = PICK
    for candidate in contenders:
        if candidate is not pick:
            candidate.role = AS_ACCURATE_SLOWER
    verdict.outcome, verdict.pick = RECOMMENDED, pick
    verdict.headline = f"Recommended batch size: {pick.batch_size}"
    if lr_grid:
        verdict.headline += f", base learning rate {pick.base_lr:g}"
    if pick.named_precision:
        verdict.headline += f", in {pick.named_precision}"
    unit = "combination of batch size and learning rate" if lr_grid else "batch size"
    several = pick.seeds > 1
    target = verdict.target_accuracy
    if several:
        reached = (f"Every seed ({pick.seeds} of {pick.seeds}) reached the target, {target:.1%} validation "
                   f"accuracy, after {pick.time_to_target_s:.1f} s of training on average")
    else:
        reached = (f"Its single seed reached the target, {target:.1%} validation accuracy, after "
                   f"{pick.time_to_target_s:.1f} s of training")
    sooner = [c for c in reaching if c.role == LESS_ACCURATE and c.time_to_target_s < pick.time_to_target_s]
    if len(reaching) == 1:
        reached += f"; it is the only {unit} that reached it."
    elif len(contenders) > 1:
        reached += f"; the fastest of the {len(contenders)} that are indistinguishable on accuracy."
    elif sooner:
        reached += f"; the most accurate of the {len(reaching)} that reached it."
    else:
        reached += f"; the fastest of the {len(reaching)} that reached it."
    verdict.reasons.append(reached)
    accuracy = f"Best validation accuracy {pick.accuracy:.1%}"
    if several:
        accuracy += f" ({pick.stats.spread['best_val_accuracy'] * 100:.1f} points between its seeds)"
    verdict.reasons.append(f"{accuracy}; the no-skill baseline is {verdict.baseline.text}.")
    others = [c for c in contenders if c is not pick]
    if others:
        noisiest = max(contenders, key=lambda c: c.noise)
        verdict.reasons.append(
            "Indistinguishable on accuracy, so decided on time: "
            + _listing(others, lr_grid, lambda c: f"{c.accuracy:.1%}, {c.time_to_target_s:.1f} s")
            + f" {'differs' if len(others) == 1 else 'differ'} from it by less than "
            f"{_noise_words(noisiest.noise, any(_several(c) for c in contenders))}, and took longer.")
    _other_lines(verdict)
    memory = pick.stats.mean["peak_memory_bytes"]
    memory_text = (f"; peak memory {memory / 2**20:,.0f} MiB ({MEMORY_LABELS[memory_measure(run)]})"
                   if math.isfinite(memory) else "")
    verdict.reasons.append(
        f"At batch size {pick.batch_size}{f' and base learning rate {pick.base_lr:g}' if lr_grid else ''}"
        f"{f' in {pick.named_precision}' if pick.named_precision else ''} it takes "
        f"{pick.stats.mean['steps_to_target']:,.0f} steps and "
        f"{pick.stats.mean['samples_to_target']:,.0f} examples to reach the target, training at "
        f"{pick.stats.mean['samples_per_s']:,.0f} examples/s (whole trial, evaluation excluded){memory_text}.")
    if not several:
        verdict.suggestions.append("One seed per batch size: this answer has no error bar. Run 3 or more seeds to "
                                   "see whether it holds.")


def _other_lines(verdict: Verdict) -> None:
    """One line per role other than the pick and the ties, each pair named once, in a fixed order."""
    lr_grid = verdict.lr_grid

    def of(role: str) -> list[Candidate]:
        return [c for c in verdict.candidates if c.role == role]

    less = of(LESS_ACCURATE)
    if less:
        pick_time = verdict.pick.time_to_target_s if verdict.pick else math.inf
        verdict.reasons.append(
            "Reached the target but less accurate, by more than the noise: "
            + _listing(less, lr_grid, lambda c: f"{c.accuracy:.1%}, {c.time_to_target_s:.1f} s"
                       + (", sooner" if c.time_to_target_s < pick_time else "")) + ".")
    missed = of(MISSED_TARGET)
    if missed:
        every = " in every seed" if any(c.seeds > 1 for c in missed) else ""
        verdict.reasons.append(f"Learned, but did not reach the target{every}: "
                               + _listing(missed, lr_grid, _missed_detail) + ".")
    not_learned = of(DID_NOT_LEARN)
    if not_learned:
        verdict.reasons.append(
            f"Did not learn (not above the {verdict.baseline.accuracy:.1%} baseline by more than the noise): "
            + _listing(not_learned, lr_grid, lambda c: f"{c.accuracy:.1%}") + ".")
    no_result = of(NO_RESULT)
    if no_result:
        verdict.reasons.append("No result: " + _listing(no_result, lr_grid, lambda c: _status_words(c.stats)
                                                        or "not run") + ".")
