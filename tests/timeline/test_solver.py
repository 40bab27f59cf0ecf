"""The timeline solver on plain numbers: every remedy in its order, each within its bound, and no drift."""

import pytest

from graph.options import TimingOptions
from graph.timeline.solver import REMEDIES, Slot, solve

OPTS = TimingOptions()  # max_stretch 1.3, pre-roll 0.2, shift 0.3, max_rate 2.0


def one(natural_s, before=None, after=None, options=OPTS, total_s=30.0):
    """A 2 s line at 10-12 s, optionally with lines ending at ``before`` and starting at ``after``."""
    slots = [Slot(10.0, 12.0, natural_s)]
    if before is not None:
        slots.insert(0, Slot(before - 1.0, before, 1.0))  # it ends right at ``before``
    if after is not None:
        slots.append(Slot(after, after + 1.0, 0.9))
    plans = solve(slots, total_s, options)
    return plans[1 if before is not None else 0], plans


def test_fits_as_is_and_speeds_up_within_max_stretch():
    plan, _ = one(1.5)
    assert (plan.start_s, plan.end_s, plan.rate, plan.remedy, plan.flags) == (10.0, 11.5, 1.0, "none", ())
    plan, _ = one(2.4)
    assert plan.rate == pytest.approx(1.2) and plan.end_s == pytest.approx(12.0)
    assert (plan.remedy, plan.flags) == ("faster", ("stretched",))


def test_runs_into_the_silence_after_at_max_stretch():
    plan, _ = one(3.9, after=14.0)
    assert plan.rate == pytest.approx(1.3) and plan.end_s == pytest.approx(13.0) and plan.start_s == 10.0
    assert plan.remedy == "silence_after" and "borrowed_silence" in plan.flags


def test_pre_roll_when_the_silence_after_is_spent_bounded_by_the_line_before():
    plan, _ = one(2.6 * 1.3 + 0.0, before=9.5, after=12.5)  # needs 2.6 s: 0.5 after, 0.1 before
    assert plan.start_s == pytest.approx(9.9) and plan.end_s == pytest.approx(12.5)
    assert (plan.remedy, plan.preroll_s) == ("preroll", pytest.approx(0.1))
    plan, _ = one(2.6 * 1.3, before=9.95, after=12.5, options=TimingOptions(max_shift_s=0.0))
    assert plan.preroll_s == pytest.approx(0.05)  # only the silence there is, never into the line before


def test_shift_is_bounded_and_recovered_by_the_next_pause():
    # the line needs 2.4 s at 1.3x and touches the line before; the next (12.2-13.2 s) has a pause after it
    plan, plans = one(2.4 * 1.3, before=10.0, after=12.2)
    pushed = plans[2]
    assert plan.remedy == "shift" and plan.end_s == pytest.approx(12.4) and plan.rate == pytest.approx(1.3)
    assert pushed.shift_s == pytest.approx(0.2) and pushed.start_s == pytest.approx(12.4) and "shifted" in pushed.flags
    assert pushed.end_s == pytest.approx(13.2) and pushed.lost_s == 0  # back in its own slot
    plan, plans = one(3.9, before=10.0, after=12.2)  # would need 0.8 s: the shift stops at 0.3, the rest is speed
    assert plans[2].shift_s == pytest.approx(0.3) and plan.remedy == "max_rate" and plan.rate == pytest.approx(3.9 / 2.5)


def test_pushes_chain_each_within_the_bound_until_a_pause_absorbs_them():
    # three back-to-back lines, each 1.2x too long for 1.3, then a long pause: every delay <= max_shift
    slots = [Slot(0.0, 1.0, 1.3 * 1.1), Slot(1.0, 2.0, 1.3 * 1.1), Slot(2.0, 3.0, 1.3 * 1.1), Slot(8.0, 9.0, 0.5)]
    plans = solve(slots, 10.0, TimingOptions(max_preroll_s=0.0))
    assert [round(p.shift_s, 3) for p in plans] == [0.0, 0.1, 0.2, 0.0]
    assert all(p.rate == pytest.approx(1.3) for p in plans[:3]) and plans[3].start_s == 8.0
    assert all(p.lost_s == 0 for p in plans)


def test_no_room_at_all_then_max_rate_then_cut():
    # the lines before and after touch it, and the next one has no slack to be pushed
    slots = [Slot(9.0, 10.0, 1.0), Slot(10.0, 12.0, 3.9), Slot(12.0, 13.0, 1.3), Slot(13.0, 14.0, 1.3)]
    plan = solve(slots, 14.0, OPTS)[1]
    assert (plan.remedy, plan.start_s, plan.end_s, plan.shift_s) == ("max_rate", 10.0, 12.0, 0.0)
    assert plan.rate == pytest.approx(1.95) and "rushed" in plan.flags and plan.lost_s == 0
    plan = solve(slots[:1] + [Slot(10.0, 12.0, 5.0)] + slots[2:], 14.0, OPTS)[1]
    assert (plan.remedy, plan.rate, plan.end_s) == ("cut", 2.0, 12.0)
    assert plan.lost_s == pytest.approx(0.5) and "truncated" in plan.flags


def test_remedies_can_be_switched_off_and_min_stretch_slows_down_when_asked():
    strict = TimingOptions(max_stretch=1.0, max_rate=1.0, borrow_silence=False, max_preroll_s=0.0, max_shift_s=0.0)
    plan, _ = one(3.0, before=9.0, after=14.0, options=strict)
    assert (plan.start_s, plan.end_s, plan.rate, plan.lost_s, plan.remedy) == (10.0, 12.0, 1.0, 1.0, "cut")
    plan, _ = one(1.0, options=TimingOptions(min_stretch=0.8))
    assert plan.rate == pytest.approx(0.8) and plan.end_s == pytest.approx(11.25) and plan.remedy == "slower"
    plan, _ = one(1.8, options=TimingOptions(min_stretch=0.8))
    assert plan.rate == pytest.approx(0.9) and plan.end_s == pytest.approx(12.0)


def test_overlapping_source_lines_stay_overlapped_and_the_track_end_is_a_wall():
    slots = [Slot(0.0, 2.0, 3.0), Slot(1.5, 3.0, 1.0), Slot(9.0, 9.8, 2.0)]
    a, b, c = solve(slots, 10.0, OPTS)
    assert a.start_s == 0.0 and a.end_s <= 2.0 + 1e-9 and b.start_s == 1.5 and b.shift_s == 0.0
    assert c.end_s <= 10.0 + 1e-9 and c.start_s <= 9.0


def test_every_unmoved_line_starts_at_its_source_start_and_no_line_drifts():
    import random

    rng = random.Random(3)
    t, slots = 0.5, []
    for _ in range(60):
        dur = rng.uniform(0.8, 3.0)
        slots.append(Slot(t, t + dur, dur * rng.uniform(0.7, 1.9)))
        t += dur + rng.choice([0.05, 0.2, 0.4, 1.2])
    plans = solve(slots, t + 1.0, OPTS)
    for slot, plan in zip(slots, plans):
        moved = plan.start_s - slot.start_s
        assert -OPTS.max_preroll_s - 1e-9 <= moved <= OPTS.max_shift_s + 1e-9
        assert moved == pytest.approx(plan.shift_s - plan.preroll_s)
        assert plan.rate <= OPTS.max_rate + 1e-9 and plan.remedy in REMEDIES
    for plan, nxt in zip(plans, plans[1:]):
        assert plan.end_s <= nxt.start_s + 1e-9  # no line runs into the next


def test_fixed_lines_keep_their_plans_and_the_others_fit_around_them():
    """A re-render: the unchanged lines keep their plans (a pushed one stays pushed), an edited line that got
    longer gets only the room before the next fixed line (its start, not its slot), never pushing it."""
    slots = [Slot(0.0, 1.0, 1.3 * 1.1), Slot(1.0, 2.0, 0.9), Slot(4.0, 5.0, 0.8)]
    first = solve(slots, 10.0, TimingOptions(max_preroll_s=0.0))
    assert first[1].shift_s == pytest.approx(0.1)  # the first line pushed the second
    edited = [Slot(0.0, 1.0, 2.0), slots[1], slots[2]]
    plans = solve(edited, 10.0, TimingOptions(max_preroll_s=0.0), fixed={1: first[1], 2: first[2]})
    assert plans[1] is first[1] and plans[2] is first[2]
    assert plans[0].end_s == pytest.approx(first[1].start_s) and plans[0].remedy == "max_rate"
    shorter = solve([Slot(0.0, 1.0, 0.5), slots[1], slots[2]], 10.0, OPTS, fixed={1: first[1], 2: first[2]})
    assert shorter[0].end_s == pytest.approx(0.5) and shorter[1:] == first[1:]


def test_a_line_after_a_fixed_line_starts_after_it_and_leaves_the_next_fixed_one_alone():
    slots = [Slot(0.0, 2.0, 3.0), Slot(2.5, 3.5, 0.5), Slot(3.6, 4.6, 0.9)]
    first = solve(slots, 10.0, OPTS)
    assert first[0].remedy == "silence_after" and first[0].end_s == pytest.approx(3.0 / 1.3)
    moved = [slots[0], Slot(2.2, 3.5, 1.6), slots[2]]  # the edited line's slot now starts inside the kept line's end
    plans = solve(moved, 10.0, OPTS, fixed={0: first[0], 2: first[2]})
    assert plans[0] is first[0] and plans[2] is first[2]
    assert plans[1].start_s == pytest.approx(first[0].end_s) and plans[1].shift_s == pytest.approx(3.0 / 1.3 - 2.2)
    assert plans[1].end_s <= first[2].start_s + 1e-9
