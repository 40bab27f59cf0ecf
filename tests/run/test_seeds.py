"""Per-line seeds: reproducible, independent of the line's neighbours and of nearby job seeds."""

from graph.options import MAX_SEED
from graph.run.lines import line_seed


def test_line_seeds_are_stable_and_no_job_seed_is_another_shifted_by_a_line():
    ids = [f"u{i:04d}" for i in range(200)]
    by_job = {seed: [line_seed(seed, u) for u in ids] for seed in range(5)}
    assert by_job[0] == [line_seed(0, u) for u in ids]  # same seed, same line: same seed again
    assert all(0 <= s <= MAX_SEED for seeds in by_job.values() for s in seeds)
    for seed in range(4):
        assert not set(by_job[seed + 1]) & set(by_job[seed])  # --seed 1 line k is no line of --seed 0
    assert len({s for seeds in by_job.values() for s in seeds}) == 5 * len(ids)
