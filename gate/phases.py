"""Phase requirements: which phase may unlock, given performance metrics. Pure."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from schemas.config import PHASE_METRICS, SAMPLE_OF, AssetsConfig, Requirement

UNDEFINED = {
    "sharpe_ratio": "undefined: fewer than 2 daily returns in the window, or no variation",
    "sharpe_days": "not given",
    "win_rate": "undefined: no closed round trip",
    "max_drawdown": "undefined: no daily return",
}


@dataclass(frozen=True, slots=True)
class RequirementResult:
    name: str
    requirement: str
    value: Decimal | None
    met: bool
    note: str | None = None  # why it is not met, when the numbers alone do not say

    def explain(self) -> str:
        """``sharpe_days is 3, needs >= 50``, and the note when there is one."""
        value = "unknown" if self.value is None else format(self.value.normalize(), "f")
        text = f"{self.name} is {value}, needs {self.requirement}"
        return f"{text} ({self.note})" if self.note else text


def normalize_metrics(metrics: Mapping[str, object]) -> dict[str, Decimal]:
    """Metric values as Decimals under their canonical names.

    Accepts the source document's spelling too: ``sharpe_ratio_min``,
    ``max_drawdown_max`` and ``win_rate_min`` name the metrics ``sharpe_ratio``,
    ``max_drawdown`` and ``win_rate``. Values that are not numbers are ignored.
    """
    out: dict[str, Decimal] = {}
    for key, raw in metrics.items():
        name = key
        if name not in PHASE_METRICS and name.endswith(("_min", "_max")):
            name = name[:-4]
        if name not in PHASE_METRICS or isinstance(raw, bool):
            continue
        try:
            value = raw if isinstance(raw, Decimal) else Decimal(str(raw))
        except (InvalidOperation, ValueError):
            continue
        if value.is_finite():
            out[name] = value
    return out


def active_phases(config: AssetsConfig) -> list[str]:
    """Phases whose classes and assets are all enabled, in file order."""
    return [
        name
        for name, phase in config.phases.items()
        if all(config.asset_classes[c].enabled for c in phase.classes)
        and all(config.assets[s].enabled for s in phase.assets)
    ]


def evaluate_phase(
    config: AssetsConfig,
    phase_name: str,
    metrics: Mapping[str, object],
    active: Collection[str],
    *,
    require_capital: bool = True,
) -> list[RequirementResult]:
    """Every requirement of a phase with the current value and whether it holds.

    Missing metrics never hold. Besides the phase's own requirements: the phase it
    builds on must be active, and (``require_capital``) capital must reach the
    phase's minimum from the capital table.
    """
    if phase_name not in config.phases:
        raise KeyError(f"unknown phase {phase_name!r}; known: {', '.join(config.phases)}")
    phase = config.phases[phase_name]
    values = normalize_metrics(metrics)
    results = []
    if phase.requires_phase is not None:
        done = phase.requires_phase in active
        results.append(
            RequirementResult(
                "previous_phase", f"{phase.requires_phase} complete", Decimal(done), done
            )
        )
    results += _requirements({str(k): v for k, v in phase.requirements.items()}, values)
    if require_capital:
        minimum = config.capital_requirements[phase_name].minimum
        capital = values.get("capital")
        results.append(
            RequirementResult(
                "capital", f">= {minimum}", capital, capital is not None and capital >= minimum
            )
        )
    return results


def _requirements(
    requirements: Mapping[str, Requirement], values: Mapping[str, Decimal]
) -> list[RequirementResult]:
    """Each requirement's verdict. Undefined never holds; nor does a statistic whose
    sample-size requirement fails (a Sharpe of 3 returns is no evidence, however high)."""
    sample_ok = {
        name: name in values and req.holds(values[name])
        for name, req in requirements.items()
        if name in SAMPLE_OF.values()
    }
    out = []
    for name, req in requirements.items():
        value = values.get(name)
        met = value is not None and req.holds(value)
        note = None
        if value is None:
            note = UNDEFINED.get(name, "not given")
        sample = SAMPLE_OF.get(name)
        if sample is not None and not sample_ok.get(sample, True):
            shown = values.get(sample)
            count = "unknown" if shown is None else format(shown.normalize(), "f")
            note = f"{note}; " if note else ""
            note += (
                f"sample too small: {sample} is {count}, needs {requirements[sample].describe()}"
            )
            met = False
        elif name in sample_ok and not met:
            note = note or "sample too small"
        out.append(RequirementResult(name, req.describe(), value, met, note))
    return out


def next_phases(config: AssetsConfig, active: Collection[str]) -> list[str]:
    """Inactive phases whose prerequisite phase is active (candidates to unlock)."""
    return [
        name
        for name, phase in config.phases.items()
        if name not in active and (phase.requires_phase is None or phase.requires_phase in active)
    ]
