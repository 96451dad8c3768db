"""A verdict for each claim of the article that a run can test: supported, contradicted or inconclusive, with the
numbers behind it; or, when this run cannot test it, the experiment (the bundled preset) that would.

One small module per claim family, each with `judge(context) -> Finding`. The rule they share (engine.science.
findings.evidence): an effect is compared across batch sizes with the seeds' spread; when that spread covers the
effect, the verdict is inconclusive, whatever the sign.
"""
from __future__ import annotations

from engine.runfile import RunData
from engine.science.findings import (batch_norm, critical, epochs, generalization, lr_scaling, memory,
                                     throughput)
from engine.science.findings.evidence import (CONTRADICTED, INCONCLUSIVE, SUPPORTED, UNTESTABLE, Context, Finding,
                                              context_of)

CLAIMS = (generalization, epochs, throughput, lr_scaling, batch_norm, memory, critical)

__all__ = ["CONTRADICTED", "INCONCLUSIVE", "SUPPORTED", "UNTESTABLE", "Context", "Finding", "findings"]


def findings(run: RunData, target: float | None) -> list[Finding]:
    """Every claim's finding on one run at one target accuracy, in a fixed order."""
    context = context_of(run, target)
    return [claim.judge(context) for claim in CLAIMS]
