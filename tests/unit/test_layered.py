"""Layered mappings behave exactly like the dicts they stand for: same items in the same
order, through any run of sets, removals and folds; snapshots sharing a base stay
independent."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from gate import layered
from gate.layered import Draft, Layered, changed

KEYS = st.integers(0, 60)
STEP = st.tuples(st.lists(st.tuples(KEYS, st.integers()), max_size=12), st.lists(KEYS, max_size=12))


@settings(max_examples=300)
@given(start=st.dictionaries(KEYS, st.integers(), max_size=40), steps=st.lists(STEP, max_size=40))
def test_changed_when_any_run_of_changes_then_same_as_a_dict(
    start: dict[int, int], steps: list[tuple[list[tuple[int, int]], list[int]]]
) -> None:
    old = layered.FOLD_AT
    layered.FOLD_AT = 8  # fold often: both paths taken
    try:
        current: object = dict(start)
        expected = dict(start)
        history = []
        for sets, removed in steps:
            before = list(expected.items())
            new = changed(current, sets, removed)  # type: ignore[arg-type]
            for k, v in sets:
                expected[k] = v
            for k in removed:
                expected.pop(k, None)
            assert list(new.items()) == list(expected.items())
            assert len(new) == len(expected)
            assert all(k in new for k in expected)
            assert all(k not in new for k in range(61) if k not in expected)
            assert list(current.items()) == before  # type: ignore[attr-defined]
            history.append((new, list(expected.items())))
            current = new
        for snapshot, items in history:  # each snapshot kept what it had
            assert list(snapshot.items()) == items
    finally:
        layered.FOLD_AT = old


@given(start=st.dictionaries(KEYS, st.integers(), max_size=40), steps=st.lists(STEP, max_size=20))
def test_draft_when_edited_then_done_is_the_edited_dict(
    start: dict[int, int], steps: list[tuple[list[tuple[int, int]], list[int]]]
) -> None:
    draft = Draft(dict(start))
    expected = dict(start)
    for sets, removed in steps:
        for k, v in sets:
            draft[k] = v
            expected[k] = v
        for k in removed:
            assert draft.pop(k) == expected.pop(k, None)
        assert dict(draft.done()) == expected
        assert all(draft.get(k) == expected.get(k) for k in range(61))
    assert dict(start) == dict(Draft(dict(start)).done())


def test_changed_when_small_layer_then_base_shared_not_copied() -> None:
    base = {i: i for i in range(10_000)}
    one = changed(base, [(10_000, 1)])
    two = changed(one, [(10_001, 2)], [0])
    assert isinstance(one, Layered) and isinstance(two, Layered)
    assert one._base is base and two._base is base  # shared, never copied
    assert 0 in one and 0 not in two and len(two) == 10_001
    assert changed(base) is base
