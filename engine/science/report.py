"""`report --json`: a run's verdict and numbers as one JSON document, for scripts and notebooks.

The structure (version 1; keys may be added, these keep their meaning; a number that was not measured or
not reached is null, never 0):

    {
      "format": "batch-size-lab-report", "format_version": 1,
      "run": {"path", "name", "dataset", "model", "status", "created", "device", "device_name"},
      "target_accuracy": 0.855,            # fraction: the one target every *_to_target number uses
      "target_source": "automatic" | "given",
      "baseline": {"accuracy": 0.104, "kind": "majority_class" | "chance" | "assumed", "text": "..."},
      "memory_measure": "per_trial" | "process",   # what peak_memory_bytes is (engine.analysis.MEMORY_LABELS)
      "memory_model": {"fixed_bytes", "per_example_bytes", "batch_sizes_fitted", "method", "device_memory_bytes",
                       "largest_batch_that_fits", "unavailable": "why a part is null" | null},   # step memory
      "recommendation": {"outcome": "recommended" | "nothing_learned" | "none_reached" | "no_results",
                         "headline": "...", "batch_size": 32 | null, "base_lr": 0.05 | null,
                         "reasons": ["..."], "suggestions": ["..."]},
      "candidates": [                      # one per (batch size, base learning rate, precision), means over seeds
        {"batch_size", "base_lr", "precision", "role", "learned", "seeds", "statuses": {"completed": 2, ...},
         "reached_target", "best_val_accuracy": {"mean", "std", "spread"}, "time_to_target_s": {...},
         "steps_to_target": {...}, "samples_to_target": {...}, "samples_per_s": {...},
         "peak_memory_bytes": {...}, "step_memory_bytes": {...}, "energy_per_example_j": {...},
         "energy_to_target_j": {...}}],
      "trials": [{every field of engine.analysis.TrialSummary}],   # energy_j, energy_per_example_j,
                                           # energy_to_target_j (J; engine.hardware.energy), gpu_utilization_percent
      "critical_batch": {"target", "tuned", "s_min", "e_min", "b_crit", "b_crit_low", "b_crit_high", "r2",
                         "regimes": {"<batch size>": "perfect_scaling" | "diminishing_returns" | "no_gain" |
                                     "censored"},
                         "points": [{"batch_size", "steps_to_target", "samples_to_target"}],
                         "advice", "unavailable"},
      "noise_scale": {"b_simple", "unavailable",
                      "trials": [{"name", "batch_size", "seed", "base_lr", "measurements", "b_simple",
                                  "b_simple_to_target", "unavailable"}]},
      "findings": [{"claim_id", "claim", "verdict": "supported" | "contradicted" | "inconclusive" | "untestable",
                    "evidence": "the numbers in words", "numbers": {...}, "preset": "the preset that tests it",
                    "plot": null | {"x_label", "y_label", "log_x", "log_y", "caption",
                                    "points": [{"batch_size", "value"}],
                                    "lines": [{"name", "batch_size": [...], "value": [...], "dashed"}]}}]
    }

Steps to target are the first crossing interpolated in log-steps between scheduled evaluations (null:
censored, never reached); critical_batch is engine.science.critical_batch's fit of the tuned steps (null numbers
and a reason in `unavailable` when it cannot be fitted); noise_scale's b_simple per trial is averaged up to the
target, and the run's is their median (engine.science.noise_scale). A finding's `plot` is what its evidence plot in
the Science tab draws, in the units its y_label names: a point per seed and batch size, and lines of which the first
is what the verdict compares (engine.science.findings.evidence.EvidencePlot); null when the claim is untestable.

`role` is one of engine.science.recommendation's roles: recommended, as_accurate_slower, less_accurate,
missed_target, did_not_learn, no_result. Units: accuracies are fractions, times seconds, throughput training
examples per second over the whole trial with evaluation excluded, memory bytes.
"""
from __future__ import annotations

import json
import math
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from engine.analysis import TrialSummary, memory_measure
from engine.hardware.memory_model import sweep_memory
from engine.errors import UserError
from engine.runfile import RunData
from engine.science import critical_batch as critical, noise_scale
from engine.science.findings import CONTRADICTED, INCONCLUSIVE, SUPPORTED, UNTESTABLE, Finding, findings
from engine.science.recommendation import Verdict

VERDICT_WORDS = {SUPPORTED: "Supported", CONTRADICTED: "Contradicted", INCONCLUSIVE: "Inconclusive",
                 UNTESTABLE: "Not tested"}
# The app's cards and report --png's panels colour a verdict alike; an untestable claim takes the muted text colour.
VERDICT_COLORS = {SUPPORTED: "#2e8b57", CONTRADICTED: "#c0392b", INCONCLUSIVE: "#b8860b"}

REPORT_FORMAT = "batch-size-lab-report"
REPORT_FORMAT_VERSION = 1
CANDIDATE_MEASURES = ("best_val_accuracy", "time_to_target_s", "steps_to_target", "samples_to_target",
                      "samples_per_s", "peak_memory_bytes", "step_memory_bytes", "energy_per_example_j",
                      "energy_to_target_j")


def _number(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@dataclass(frozen=True)
class Science:
    """What a run shows about batch size beyond the recommendation, at one target."""
    critical_batch: critical.CriticalBatch
    noise: noise_scale.NoiseSummary
    findings: list[Finding]


def analyse(run: RunData, target: float | None) -> Science:
    return Science(critical.critical_batch(run, target), noise_scale.noise_summary(run, target),
                   findings(run, target))


def _clean(value: Any) -> Any:
    """JSON's view of a finding's numbers: NaN and infinity are null, nested lists and tables kept."""
    if isinstance(value, dict):
        return {str(key): _clean(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(item) for item in value]
    return _number(value)


def report_document(run: RunData, summaries: list[TrialSummary], verdict: Verdict, target_given: bool,
                    science: Science | None = None) -> dict:
    candidates = []
    for candidate in verdict.candidates:
        stats = candidate.stats
        entry = {"batch_size": stats.batch_size, "base_lr": stats.base_lr, "precision": stats.precision,
                 "role": candidate.role,
                 "learned": candidate.learned, "seeds": stats.trials, "statuses": dict(stats.statuses),
                 "reached_target": stats.reached_target}
        for key in CANDIDATE_MEASURES:
            entry[key] = {"mean": _number(stats.mean[key]), "std": _number(stats.std[key]),
                          "spread": _number(stats.spread[key])}
        candidates.append(entry)
    header = run.header
    return {
        "format": REPORT_FORMAT, "format_version": REPORT_FORMAT_VERSION,
        "run": {"path": str(run.path), "name": header.name, "dataset": header.dataset, "model": header.model,
                "status": header.status, "created": header.created, "device": run.environment.get("device"),
                "device_name": run.environment.get("device_name")},
        "target_accuracy": verdict.target_accuracy,
        "target_source": "given" if target_given else "automatic",
        "baseline": {"accuracy": verdict.baseline.accuracy, "kind": verdict.baseline.kind,
                     "text": verdict.baseline.text},
        "memory_measure": memory_measure(run),
        "memory_model": sweep_memory(run).document(),
        "recommendation": {"outcome": verdict.outcome, "headline": verdict.headline,
                           "batch_size": verdict.batch_size, "base_lr": verdict.base_lr,
                           "reasons": list(verdict.reasons), "suggestions": list(verdict.suggestions)},
        "candidates": candidates,
        "trials": [{key: _number(value) for key, value in asdict(summary).items()} for summary in summaries],
        **science_document(science or analyse(run, verdict.target_accuracy)),
    }


def science_document(science: Science) -> dict:
    """The critical batch and the noise scale, as report_document holds them."""
    fit, noise = science.critical_batch, science.noise
    return {
        "critical_batch": {
            "target": fit.target, "tuned": fit.tuned,
            **{key: _number(getattr(fit, key)) for key in ("s_min", "e_min", "b_crit", "b_crit_low", "b_crit_high",
                                                            "r2")},
            "regimes": {str(size): name for size, name in fit.regimes.items()},
            "points": [{"batch_size": size, "steps_to_target": _number(steps), "samples_to_target": _number(samples)}
                       for size, steps, samples in zip(fit.batch_sizes, fit.steps, fit.samples)],
            "advice": critical.advice(fit), "unavailable": fit.unavailable},
        "noise_scale": {"b_simple": _number(noise.b_simple), "unavailable": noise.unavailable,
                        "trials": [{key: _number(value) for key, value in asdict(trial).items()}
                                   for trial in noise.trials]},
        "findings": [{"claim_id": f.claim_id, "claim": f.claim, "verdict": f.verdict, "evidence": f.evidence,
                      "numbers": _clean(f.numbers), "preset": f.preset,
                      "plot": _clean(f.plot.document()) if f.plot is not None else None} for f in science.findings],
    }


def science_lines(science: Science) -> list[str]:
    """The report's text after the recommendation: the critical batch and the noise scale."""
    lines = critical.lines(science.critical_batch) + noise_scale.lines(science.noise) + ["", "Findings:"]
    for finding in science.findings:
        lines += [f"  {VERDICT_WORDS[finding.verdict]}: {finding.claim}", f"    {finding.evidence}"]
    return lines


def write_report_json(document: dict, destination: str) -> None:
    """To a file, or to standard output for "-". Raises UserError when the file cannot be written."""
    text = json.dumps(document, indent=2, allow_nan=False) + "\n"
    if destination == "-":
        sys.stdout.write(text)
        return
    try:
        Path(destination).write_text(text, encoding="utf-8")
    except OSError as error:
        raise UserError(f"--json {destination}: cannot be written ({error.strerror or error})") from None
