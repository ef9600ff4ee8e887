"""The pure bench measures what it names: each scenario's batch decides as its name says
(no timing here: a benchmark is not a test)."""

from __future__ import annotations

import pytest

from consumers.bench.pure import SCENARIOS, _run_worker_path, cases, check, config, drift


@pytest.mark.parametrize("name", SCENARIOS)
def test_pure_bench_when_a_scenario_is_built_then_every_decision_has_its_status(
    name: str,
) -> None:
    """approved approves, resized resizes, the rejections reject: every intent of the batch."""
    cfg = config()
    check(cases(cfg, 44)[name](), cfg)


def test_pure_bench_when_drifting_then_every_intent_leaves_a_reservation() -> None:
    """The drift run carries each batch's snapshot to the next until all are reserved."""
    figures = drift(config(), live=600, batch=100, edge=2)
    assert figures["reservations"] == 600


def test_pure_bench_when_the_worker_path_runs_then_every_entry_is_parsed_and_approved() -> None:
    """The worker-path row reads entries, plans each batch on the last one's snapshot
    and approves every intent (asserted inside): each leaves a reservation."""
    snap = _run_worker_path(config(), reps=2, batch=40)
    assert len(snap.reservations) == 3 * 40
