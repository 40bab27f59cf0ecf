from graph.timeline.assign import AssignOptions, assign_speakers, build_utterances, speaker_of
from graph.types import SpeakerTurn, Word


def words(*items):
    return [Word(text, start, end) for text, start, end in items]


TURNS = [SpeakerTurn("A", 0.0, 3.0), SpeakerTurn("B", 3.2, 6.0)]


def test_every_word_lands_in_exactly_one_line_of_its_speaker():
    ws = words(("Hello", 0.1, 0.5), ("there.", 0.5, 1.0), ("How", 3.3, 3.6), ("are", 3.6, 3.8), ("you?", 3.8, 4.2))
    lines = build_utterances(ws, TURNS)
    assert [(u.speaker, u.text) for u in lines] == [("A", "Hello there."), ("B", "How are you?")]
    assert (lines[0].start_s, lines[0].end_s) == (0.0, 1.0)  # snapped to the turn onset
    assert (lines[1].start_s, lines[1].end_s) == (3.2, 4.2)
    assert [u.id for u in lines] == ["u0000", "u0001"]


def test_long_pause_splits_a_speaker_and_sentence_end_splits_long_lines():
    ws = words(("One", 0.0, 0.4), ("two", 0.5, 0.9), ("three.", 1.0, 1.8), ("Four", 1.9, 2.4), ("and", 2.4, 2.8),
               ("five", 4.0, 4.5), ("six", 4.5, 5.0))
    lines = build_utterances(ws, [SpeakerTurn("A", 0.0, 5.0)], AssignOptions(max_pause_s=1.0, sentence_min_s=1.5))
    assert [u.text for u in lines] == ["One two three.", "Four and", "five six"]


def test_fragment_after_a_sentence_rejoins_it():
    ws = words(("One", 0.0, 0.4), ("two", 0.5, 0.9), ("three.", 1.0, 1.8), ("Four", 1.9, 2.2))
    lines = build_utterances(ws, [SpeakerTurn("A", 0.0, 5.0)], AssignOptions(sentence_min_s=1.5))
    assert [u.text for u in lines] == ["One two three. Four"]


def test_short_fragment_merges_with_same_speaker_neighbour():
    ws = words(("Yes.", 0.0, 0.3), ("I", 0.5, 0.6), ("agree", 0.6, 1.0), ("completely.", 1.0, 1.8))
    lines = build_utterances(ws, [SpeakerTurn("A", 0.0, 2.0)], AssignOptions(sentence_min_s=0.1))
    assert [u.text for u in lines] == ["Yes. I agree completely."]


def test_word_outside_turns_takes_nearest_turn_or_previous_speaker():
    opts = AssignOptions(nearest_turn_s=0.5)
    assert speaker_of(Word("x", 3.14, 3.18), TURNS, opts) == "B"
    assert speaker_of(Word("x", 9.0, 9.2), TURNS, opts) is None
    assert assign_speakers(words(("near", 2.0, 2.5), ("far", 9.0, 9.2)), TURNS, opts) == ["A", "A"]


def test_overlap_goes_to_larger_share_and_no_turns_means_one_speaker():
    turns = [SpeakerTurn("A", 0.0, 1.0), SpeakerTurn("B", 0.6, 2.0)]
    assert speaker_of(Word("x", 0.7, 1.5), turns, AssignOptions()) == "B"
    lines = build_utterances(words(("solo", 0.0, 0.5), ("voice.", 0.5, 1.0)), [])
    assert {u.speaker for u in lines} == {"SPEAKER_00"}


def test_empty_words_give_no_lines():
    assert build_utterances(words(("  ", 0.0, 0.1)), TURNS) == []


def test_line_in_silence_is_dropped_and_edges_snap_to_detected_speech():
    ws = words(("Good", 0.1, 0.9), ("morning.", 0.9, 2.0), ("Thank", 2.9, 3.2), ("you.", 3.2, 3.8))
    lines = build_utterances(ws, [SpeakerTurn("A", 0.5, 2.2), SpeakerTurn("A", 2.9, 3.0)])
    assert [(u.text, u.start_s, u.end_s) for u in lines] == [("Good morning.", 0.5, 2.0)]


def test_late_first_word_snaps_back_to_speech_onset_but_not_across_a_sentence():
    ws = words(("Thanks,", 1.3, 1.6), ("then", 1.6, 2.0), ("we", 2.0, 2.4), ("go.", 2.4, 3.0), ("Next", 3.1, 3.5),
               ("one", 3.5, 3.9), ("here.", 3.9, 4.6))
    lines = build_utterances(ws, [SpeakerTurn("A", 1.0, 4.6)], AssignOptions(sentence_min_s=1.5))
    assert [(u.start_s, u.end_s) for u in lines] == [(1.0, 3.0), (3.1, 4.6)]
