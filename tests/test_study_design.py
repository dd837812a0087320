"""Task lists of a study: training first, per-rater order, balanced subsets, repeats, gold, pairs."""

from __future__ import annotations

from collections import Counter

import pytest

from vqscope.studies.design import MIN_REPEAT_GAP, Coverage, PlanItem, StudyConfig, close_call_pairs, rater_tasks


def items(n_videos: int, anchors=("good", "bad", "fair"), gold: int = 0) -> list[PlanItem]:
    out = [PlanItem(k) for k in range(n_videos)]
    out += [PlanItem(100 + k, "anchor", label) for k, label in enumerate(anchors)]
    out += [PlanItem(200 + k, "gold") for k in range(gold)]
    return out


def test_training_comes_first_from_the_lowest_label_up():
    tasks = rater_tasks(StudyConfig(repeats=0), items(6), [], 0, Coverage())
    assert [t.phase for t in tasks[:3]] == ["training"] * 3 and all(t.phase == "main" for t in tasks[3:])
    assert [t.item for t in tasks[:3]] == [101, 102, 100]  # bad, fair, good
    assert sorted(t.item for t in tasks[3:]) == list(range(6))


def test_each_rater_has_an_own_order_that_is_reproducible():
    config = StudyConfig(repeats=0, seed=3)
    orders = [[t.item for t in rater_tasks(config, items(20, ()), [], r, Coverage())] for r in range(4)]
    assert len({tuple(o) for o in orders}) == 4  # four raters, four orders
    again = [t.item for t in rater_tasks(config, items(20, ()), [], 2, Coverage())]
    assert again == orders[2]
    assert [t.item for t in rater_tasks(StudyConfig(repeats=0, seed=4), items(20, ()), [], 2, Coverage())] != again


def test_subsets_cover_every_item_evenly():
    config = StudyConfig(per_rater=7, repeats=0)
    coverage = Coverage()
    seen = Counter()
    for rater in range(10):  # 70 ratings over 20 items: 3 or 4 each
        tasks = rater_tasks(config, items(20, ()), [], rater, coverage)
        assert len(tasks) == 7 and len({t.item for t in tasks}) == 7
        seen.update(t.item for t in tasks)
    assert set(seen) == set(range(20)) and max(seen.values()) - min(seen.values()) <= 1


def test_repeats_come_back_later_and_gold_is_mixed_in():
    config = StudyConfig(repeats=3, seed=1)
    tasks = rater_tasks(config, items(12, (), gold=2), [], 0, Coverage())
    main = [t for t in tasks if t.phase == "main"]
    assert sum(t.kind == "gold" for t in main) == 2 and len(main) == 12 + 2 + 3
    repeats = [(k, t) for k, t in enumerate(main) if t.kind == "repeat"]
    assert len(repeats) == 3 and len({t.item for _, t in repeats}) == 3
    for k, repeat in repeats:
        first = next(j for j, t in enumerate(main) if t.item == repeat.item and t.kind == "main")
        assert k - first > MIN_REPEAT_GAP
    assert Counter(t.item for t in main if t.kind == "main") == Counter(range(12))


def test_pairwise_lists_are_pairs_shown_both_ways():
    config = StudyConfig(method="pairwise", repeats=1, seed=2)
    pairs = [1000 + k for k in range(10)]
    tasks = rater_tasks(config, items(5, ("poor",)), pairs, 0, Coverage())
    assert tasks[0].phase == "training" and tasks[0].item == 100
    main = tasks[1:]
    assert sorted(t.pair for t in main if t.kind == "main") == pairs
    assert 0 < sum(t.swap for t in main if t.kind == "main") < 10  # sides drawn per task
    repeat = next(t for t in main if t.kind == "repeat")
    first = next(t for t in main if t.kind == "main" and t.pair == repeat.pair)
    assert repeat.swap != first.swap  # the repeat shows the pair the other way round


def test_close_calls_are_the_nearest_scores():
    scores = {"a": 10.0, "b": 50.0, "c": 51.0, "d": 90.0, "e": 52.5}
    pairs = close_call_pairs(scores, 2)
    assert [(a, b) for a, b, _ in pairs] == [("b", "c"), ("c", "e")]
    assert "differ by 1.0" in pairs[0][2]
    assert len(close_call_pairs(scores, 100, per_item=1)) == 2  # each item in at most one pair
    assert close_call_pairs(scores, 0) == []


@pytest.mark.parametrize("bad", [dict(method="likert"), dict(per_rater=0), dict(repeats=-1),
                                 dict(instructions="x" * 5001)])
def test_bad_settings_are_refused(bad):
    with pytest.raises(ValueError):
        StudyConfig(**bad)
