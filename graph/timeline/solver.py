"""The timeline solver: where, and how fast, every line of one language plays, all lines at once.

Input: per line its source slot and the natural duration of its take (how long the voice says it at its own
pace). Output: per line a ``Plan`` (start, end, speed-up and the remedies used). The remedies come in this fixed
order, each bounded by ``TimingOptions`` (a shorter n-best candidate comes first, chosen before synthesis):

1. speed up, to ``max_stretch`` (faster synthesis; a pitch-preserving stretch makes up the rest);
2. run into the silence after the line, up to the next line's start (``borrow_silence``);
3. start earlier, into the silence before the line (``max_preroll_s``);
4. push the next lines later, each by at most ``max_shift_s`` and only as far as they still fit at ``max_stretch``:
   a pushed line may push the one after it, until a pause absorbs the delay, so no line ever drifts further;
5. speed up beyond ``max_stretch``, to ``max_rate``;
6. cut what still does not fit: ``lost_s`` seconds, cut at a pause in the audio (graph/timeline/timing.py).

Ending late into a pause comes before starting early because an onset is what sync is judged by (the listener
hears a line start with the speaker's mouth, or not). Lines that overlap in the source (two speakers at once)
stay overlapped: a line whose successor starts inside its slot keeps to its slot. With ``min_stretch`` < 1, a
line shorter than its slot is slowed down to fill it.

A re-render after an edit solves again with the unchanged lines ``fixed`` at their previous plans: the edited
lines are placed in the room those leave (a fixed line is never pushed, and the line before it ends by its
start), so the rest of the track stays as it was.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from graph.options import TimingOptions

EPS = 1e-6
REMEDIES = ("none", "slower", "faster", "silence_after", "preroll", "shift", "max_rate", "cut")


@dataclass(frozen=True)
class Slot:
    start_s: float  # the source line's start and end
    end_s: float
    natural_s: float  # its take's speech at the voice's natural pace; 0 = nothing to say


@dataclass(frozen=True)
class Plan:
    start_s: float  # where the line plays
    end_s: float
    rate: float = 1.0  # speed-up: natural duration / the duration it plays in (before any cut)
    preroll_s: float = 0.0  # started this much before its source start
    shift_s: float = 0.0  # started this much after its source start (pushed by the line before)
    lost_s: float = 0.0  # seconds at ``rate`` that did not fit and are cut
    remedy: str = "none"  # the last remedy of REMEDIES the line needed
    flags: tuple[str, ...] = ()


def solve(slots: Sequence[Slot], total_s: float, options: TimingOptions,
          fixed: Mapping[int, Plan] | None = None) -> list[Plan]:
    """One plan per slot (same order), placing lines in time order: each line's room depends on the one before.

    ``fixed``: slot index -> the plan that line keeps (a line not edited since the last render)."""
    fixed = fixed or {}
    order = sorted(range(len(slots)), key=lambda i: (slots[i].start_s, slots[i].end_s))
    line = [slots[i] for i in order]
    kept = [fixed.get(i) for i in order]
    pairs = [_room(line, kept, k) for k in range(len(line))]
    slack = _slack(pairs, kept, total_s, options)
    plans: list[Plan] = [Plan(0.0, 0.0)] * len(slots)
    busy_until, shift = 0.0, 0.0
    for k, i in enumerate(order):
        slot, nxt = pairs[k]
        plan = kept[k] or _place(slot, nxt, slack[k + 1], busy_until, shift, total_s, options)
        plans[i] = plan
        busy_until = max(busy_until, plan.end_s)
        nxt = line[k + 1] if k + 1 < len(line) else None
        shift = (min(max(0.0, plan.end_s - nxt.start_s), options.max_shift_s)
                 if nxt is not None and not _overlapped(line[k], nxt) else 0.0)
    return plans


def _room(line: Sequence[Slot], kept: Sequence[Plan | None], k: int) -> tuple[Slot, Slot | None]:
    """Line ``k``'s slot and the next one as its placement sees them: a fixed next line starts where its plan
    does, and a line before it must end by then."""
    slot, nxt = line[k], line[k + 1] if k + 1 < len(line) else None
    after = kept[k + 1] if k + 1 < len(line) else None
    if after is None or _overlapped(slot, nxt):
        return slot, nxt
    cap = max(after.start_s, slot.start_s)
    return Slot(slot.start_s, min(slot.end_s, cap), slot.natural_s), Slot(cap, max(nxt.end_s, cap), nxt.natural_s)


def _overlapped(slot: Slot, nxt: Slot | None) -> bool:
    """Whether the next line starts inside this one in the source (two speakers at once)."""
    return nxt is not None and nxt.start_s < slot.end_s - EPS


def _limit(slot: Slot, nxt: Slot | None, total_s: float, options: TimingOptions) -> float:
    """How late a line may end without pushing another: the next line's start (or the end), or its own end."""
    if _overlapped(slot, nxt) or not options.borrow_silence:
        return min(slot.end_s, total_s)
    return min(max(slot.end_s, nxt.start_s), total_s) if nxt is not None else total_s


def _slack(pairs: Sequence[tuple[Slot, Slot | None]], kept: Sequence[Plan | None], total_s: float,
           options: TimingOptions) -> list[float]:
    """Per line in time order (and 0 past the last), how much later it may start, at most ``max_shift_s``, and
    still fit at ``max_stretch``, itself pushing the lines after it as far as they allow (right to left); a fixed
    line is never pushed."""
    slack = [0.0] * (len(pairs) + 1)
    for k in range(len(pairs) - 1, -1, -1):
        if kept[k] is not None:
            continue
        slot, nxt = pairs[k]
        end = _limit(slot, nxt, total_s, options)
        if nxt is not None and options.borrow_silence and not _overlapped(slot, nxt):
            end = max(end, min(nxt.start_s + slack[k + 1], total_s))
        room = end - slot.start_s - slot.natural_s / options.max_stretch
        slack[k] = min(max(room, 0.0), options.max_shift_s)
    return slack


def _place(slot: Slot, nxt: Slot | None, next_slack: float, busy_until: float, shift: float, total_s: float,
           o: TimingOptions) -> Plan:
    start, n = slot.start_s + shift, slot.natural_s
    if n <= 0:
        return _plan(slot, start, start, 1.0, o, shift=shift)
    rate = n / max(slot.end_s - start, EPS)
    if rate <= o.max_stretch:  # fits its own slot
        if rate >= 1.0 - EPS:
            remedy = "faster" if rate > 1 + EPS else "none"
            return _plan(slot, start, start + n / rate, rate, o, shift=shift, remedy=remedy)
        slow = max(rate, o.min_stretch)
        return _plan(slot, start, start + n / slow, slow, o, shift=shift, remedy="slower" if slow < 1 - EPS else "none")
    end, limit = start + n / o.max_stretch, _limit(slot, nxt, total_s, o)
    if end <= limit + EPS:
        return _plan(slot, start, end, o.max_stretch, o, shift=shift, remedy="silence_after")
    preroll = 0.0
    if shift <= 0:  # a pushed line has the line before it right before it
        preroll = min(o.max_preroll_s, max(0.0, slot.start_s - busy_until), end - limit)
        start, end = start - preroll, end - preroll
        if end <= limit + EPS:
            return _plan(slot, start, end, o.max_stretch, o, preroll=preroll, remedy="preroll")
    if nxt is not None and o.borrow_silence and not _overlapped(slot, nxt):
        limit += max(0.0, min(end - limit, next_slack, total_s - limit))
        if end <= limit + EPS:
            return _plan(slot, start, end, o.max_stretch, o, preroll=preroll, shift=shift, remedy="shift")
    room = limit - start
    if n / room <= o.max_rate + EPS:
        return _plan(slot, start, limit, n / room, o, preroll=preroll, shift=shift, remedy="max_rate")
    return _plan(slot, start, limit, o.max_rate, o, preroll=preroll, shift=shift, lost=n / o.max_rate - room,
                 remedy="cut")


def _plan(slot: Slot, start: float, end: float, rate: float, o: TimingOptions, *, preroll: float = 0.0,
          shift: float = 0.0, lost: float = 0.0, remedy: str = "none") -> Plan:
    flags = [name for name, on in (
        ("stretched", abs(rate - 1.0) > 1e-3),
        ("borrowed_silence", end > slot.end_s + 1e-3),
        ("preroll", preroll > 1e-3),
        ("shifted", shift > 1e-3),
        ("rushed", rate > o.max_stretch + 1e-3),
        ("truncated", lost > 1e-3),
    ) if on]
    return Plan(start, end, rate, preroll, shift, lost, remedy, tuple(flags))
