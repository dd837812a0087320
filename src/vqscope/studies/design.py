"""How a study is run: its settings, and the task list each rater gets.

Why the task lists look the way they do (ITU-T P.910 and P.913 practice, and what
crowdsourced UGC studies learnt):
- A short training round first: the study's anchors, each with its label, so that every
  rater has seen the range before the first real rating. Its answers never enter the MOS.
- Every rater sees the items in their own random order, so an item's MOS is not coloured by
  what always comes before it (order and context effects).
- A few items come back later in the list (repeats): a careful rater gives about the same
  answer twice, a careless one does not. Gold items (a known answer, e.g. an obviously
  broken video) catch raters who do not watch.
- With `per_rater` each rater sees a subset; subsets are drawn so that every item gets about
  the same number of raters (the items with the fewest raters so far are taken first).

Task lists are drawn once, when a rater is invited, and stored: a rater who closes the
browser resumes the same list, and a restart of the service changes nothing.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

from .ratings import ACR_LABELS, METHODS

#: Defaults for a study's repeated items and the gap between an item and its repeat.
DEFAULT_REPEATS = 2
MIN_REPEAT_GAP = 3


@dataclass(frozen=True)
class StudyConfig:
    """Settings of one study (stored with it as JSON)."""

    method: str = "acr"  # acr | finevd | pairwise
    per_rater: int | None = None  # items (pairs) per rater; None: all of them
    repeats: int = DEFAULT_REPEATS  # items each rater rates a second time, later in the list
    instructions: str = ""  # shown to raters above the first task
    full_view: bool = True  # rating buttons unlock only after the video played through once
    seed: int = 0  # task lists are drawn from (seed, rater number): reproducible

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown study method {self.method!r} (methods: {', '.join(METHODS)})")
        if self.per_rater is not None and self.per_rater < 1:
            raise ValueError("per_rater must be at least 1 (or left out: every item)")
        if self.repeats < 0:
            raise ValueError("repeats must be 0 or more")
        if len(self.instructions) > 5000:
            raise ValueError("instructions are at most 5000 characters")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "StudyConfig":
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


@dataclass(frozen=True)
class PlanItem:
    """What drawing task lists needs to know of an item."""

    key: Any  # the store's identity of the item (its row number)
    kind: str = "video"  # video | anchor | gold
    label: str | None = None  # an anchor's label


@dataclass(frozen=True)
class TaskSpec:
    """One entry of a rater's list: an item, or a pair (first shown left)."""

    phase: str  # training | main
    kind: str  # training | main | repeat | gold
    item: Any = None
    pair: Any = None
    swap: bool = False  # pairwise: show the pair's second item on the left


@dataclass
class Coverage:
    """How many raters each item (or pair) has been given so far, across a study's raters."""

    counts: dict[Any, int] = field(default_factory=dict)

    def least_covered(self, keys: Sequence[Any], n: int, rng: random.Random) -> list[Any]:
        """`n` of `keys`, those with the fewest raters first (ties broken at random)."""
        order = sorted(keys, key=lambda k: (self.counts.get(k, 0), rng.random()))
        chosen = order[:n]
        for key in chosen:
            self.counts[key] = self.counts.get(key, 0) + 1
        return chosen


def rater_tasks(
    config: StudyConfig,
    items: Sequence[PlanItem],
    pairs: Sequence[Any],
    rater_number: int,
    coverage: Coverage,
) -> list[TaskSpec]:
    """The task list of the `rater_number`-th rater of a study (training round, then main).

    `pairs` are the keys of a pairwise study's pairs (ignored by other methods). `coverage`
    carries what earlier raters were given, so that subsets stay balanced; it is updated.
    """
    rng = random.Random(f"{config.seed}:{rater_number}")
    anchors = [i for i in items if i.kind == "anchor"]
    gold = [i for i in items if i.kind == "gold"]
    videos = [i for i in items if i.kind == "video"]

    # Training: the anchors from the lowest label up, so the range is seen in order.
    rank = {label: k for k, label in enumerate(ACR_LABELS)}
    anchors = sorted(anchors, key=lambda a: (rank.get(a.label or "", len(ACR_LABELS)), rng.random()))
    tasks = [TaskSpec("training", "training", item=a.key) for a in anchors]

    if config.method == "pairwise":
        if not pairs:
            return tasks
        n = len(pairs) if config.per_rater is None else min(config.per_rater, len(pairs))
        chosen = coverage.least_covered(list(pairs), n, rng)
        rng.shuffle(chosen)
        main = [TaskSpec("main", "main", pair=p, swap=rng.random() < 0.5) for p in chosen]
        for position, task in _repeats(main, config.repeats, rng):
            main.insert(position, task)
        return tasks + main

    keys = [v.key for v in videos]
    n = len(keys) if config.per_rater is None else min(config.per_rater, len(keys))
    chosen = coverage.least_covered(keys, n, rng)
    rng.shuffle(chosen)
    main = [TaskSpec("main", "main", item=k) for k in chosen]
    for g in gold:  # gold items at random places among the real ones
        main.insert(rng.randint(0, len(main)), TaskSpec("main", "gold", item=g.key))
    for position, task in _repeats(main, config.repeats, rng):
        main.insert(position, task)
    return tasks + main


def _repeats(main: list[TaskSpec], count: int, rng: random.Random) -> list[tuple[int, TaskSpec]]:
    """(position, task) of `count` repeats of main items, each placed at least
    MIN_REPEAT_GAP tasks after its first showing where the list is long enough. Positions
    refer to `main` as it is, and come last first: inserting them in this order keeps every
    position right."""
    firsts = [k for k, t in enumerate(main) if t.kind == "main"]
    if not firsts or count <= 0:
        return []
    # Items early enough in the list to come back after a gap, where there are enough of them.
    spaced = [k for k in firsts if k + 1 + MIN_REPEAT_GAP <= len(main)]
    pool = spaced if len(spaced) >= min(count, len(firsts)) else firsts
    picked = rng.sample(pool, min(count, len(pool)))
    out: list[tuple[int, TaskSpec]] = []
    for k in sorted(picked):
        original = main[k]
        earliest = min(k + 1 + MIN_REPEAT_GAP, len(main))
        out.append((rng.randint(earliest, len(main)),
                    TaskSpec("main", "repeat", item=original.item, pair=original.pair, swap=not original.swap)))
    # Insert from the back so earlier insertions do not shift later positions.
    out.sort(key=lambda pt: pt[0], reverse=True)
    return out


def close_call_pairs(scores: Mapping[Any, float], n: int, *, per_item: int = 2) -> list[tuple[Any, Any, str]]:
    """Up to `n` pairs of items whose scores are closest ("close calls"), each item in at
    most `per_item` pairs, as (a, b, reason). A comparison says more than two ACR ratings
    where two videos are a hair apart: that is where a pairwise study pays off."""
    if n < 1:
        return []
    ranked = sorted(scores.items(), key=lambda kv: (kv[1], str(kv[0])))
    # Neighbours in score order, and neighbours two apart (so an item can be compared on
    # both sides); the closest first.
    candidates = [(abs(b[1] - a[1]), a[0], b[0], a[1], b[1])
                  for step in (1, 2) for a, b in zip(ranked, ranked[step:])]
    used: dict[Any, int] = {}
    out = []
    for gap, a, b, sa, sb in sorted(candidates, key=lambda g: g[0]):
        if len(out) >= n:
            break
        if used.get(a, 0) >= per_item or used.get(b, 0) >= per_item:
            continue
        used[a] = used.get(a, 0) + 1
        used[b] = used.get(b, 0) + 1
        out.append((a, b, f"close call: scores {sa:.1f} and {sb:.1f} differ by {gap:.1f}"))
    return out
