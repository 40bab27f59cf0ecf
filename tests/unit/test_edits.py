"""Line edits on plain data (graph/edits.py): what each field does, revisions, locks, and bad edits refused with
nothing changed; concurrent edits of one line from the same revision: exactly one wins."""

import threading

import pytest

from graph.edits import MAX_TEXT_CHARS, Edit, JobState, LineState, StateFile, parse_revision
from graph.errors import BadInput, EditConflict, LineNotFound, UnsupportedLanguage
from graph.types import PlacedLine


def placed(line_id: str, speaker: str, start_s: float, end_s: float, text: str) -> dict:
    record = PlacedLine(line_id, speaker, "pt-br", start_s, end_s, "source", text, (text, "other"), 0, start_s,
                        end_s - 0.2, 1.0)
    return {"line": record, "plan": {}, "fit": "fit-x", "voice": f"conds-{speaker}"}


def state() -> JobState:
    lines = [LineState("u0000", "A", "Hello there.", 0.5, 2.0, candidates={"pt-br": ("Olá.",), "es": ("Hola.",)}),
             LineState("u0001", "B", "How are you?", 2.5, 4.0, candidates={"pt-br": ("Como vai?",), "es": ("¿Qué tal?",)})]
    return JobState(revision=0, job={"options": {"targets": ["pt-br", "es"]}, "job_id": "j"}, source_language="en",
                    duration_s=10.0, speakers=("A", "B"), voices={"A": "conds-A", "B": "conds-B"}, mix={},
                    lines=lines, placed={"pt-br": {"u0000": placed("u0000", "A", 0.5, 2.0, "Olá.")}})


def test_each_field_changes_what_it_says_and_bumps_the_line_revision():
    s = state()
    (line,) = s.apply([Edit("u0000", {"text": "Oi, tudo bem?", "lang": "pt-br"})])
    assert (line.revision, line.stale, line.texts, line.wanted("pt-br"), line.wanted("es")) == (
        1, True, {"pt-br": "Oi, tudo bem?"}, ("Oi, tudo bem?",), ("Hola.",))
    (line,) = s.apply([Edit("u0000", {"speaker": "B", "start_s": 0.4, "end_s": 2.2})])
    assert (line.speaker, line.start_s, line.end_s, line.revision) == ("B", 0.4, 2.2, 2)
    (line,) = s.apply([Edit("u0000", {"source_text": "Hi there."})])  # translations are of the old text: gone
    assert (line.source_text, line.texts, line.candidates, line.wanted("es")) == ("Hi there.", {}, {}, None)
    assert [e["changes"] for e in s.edits] == [{"text": {"pt-br": "Oi, tudo bem?"}},
                                              {"speaker": "B", "start_s": 0.4, "end_s": 2.2},
                                              {"source_text": "Hi there."}]
    assert s.stale and all(e["rendered"] is None for e in s.edits)


def test_an_edit_that_changes_nothing_keeps_the_revision():
    s = state()
    (line,) = s.apply([Edit("u0001", {"speaker": "B", "start_s": 2.5})])
    assert line.revision == 0 and not line.stale and s.edits == [] and not s.stale


def test_a_locked_line_keeps_its_translations_and_refuses_other_changes_until_unlocked():
    s = state()
    s.apply([Edit("u0000", {"locked": True})])
    (line,) = s.apply([Edit("u0000", {"source_text": "Hi there."})])  # recorded, not translated again
    assert line.candidates["es"] == ("Hola.",) and line.locked
    for body in ({"text": "Oi."}, {"speaker": "B"}, {"end_s": 2.5}):
        with pytest.raises(EditConflict, match="u0000 is locked"):
            s.apply([Edit("u0000", body)])
    (line,) = s.apply([Edit("u0000", {"text": "Oi.", "locked": False})])
    assert line.texts == {"pt-br": "Oi."} and not line.locked


@pytest.mark.parametrize("edit, error, message", [
    (Edit("u0009", {"text": "x"}), LineNotFound, "no line 'u0009'.*u0000, u0001"),
    (Edit("u0000", {"text": "x" * (MAX_TEXT_CHARS + 1)}), BadInput, "at most 2000"),
    (Edit("u0000", {"start_s": 2.0, "end_s": 1.0}), BadInput, r"ends \(1.000 s\) before it starts \(2.000 s\)"),
    (Edit("u0000", {"end_s": 10.5}), BadInput, r"outside the input \(0-10.000 s\)"),
    (Edit("u0000", {"start_s": -0.1}), BadInput, "outside the input"),
    (Edit("u0000", {"start_s": "soon"}), BadInput, "must be a number of seconds"),
    (Edit("u0000", {"speaker": "C"}), BadInput, "unknown speaker 'C'.*A, B"),
    (Edit("u0000", {"lang": "de", "text": "Hallo"}), UnsupportedLanguage, "de"),
    (Edit("u0000", {"source_text": "  "}), BadInput, "cannot be empty"),
    (Edit("u0000", {"text": 3}), BadInput, "must be a string"),
    (Edit("u0000", {"locked": "yes"}), BadInput, "true or false"),
    (Edit("u0000", {"volume": 3}), BadInput, "unknown field.*volume"),
    (Edit("u0000", {"text": "x"}, if_match=4), EditConflict, "revision 0, not 4"),
])
def test_bad_edits_are_refused_and_change_nothing(edit, error, message):
    s = state()
    before = s.to_plain()
    with pytest.raises(error, match=message):
        s.apply([Edit("u0001", {"text": "Tudo bem?"}), edit])  # a good edit first: all or nothing
    assert s.to_plain() == before


def test_if_match_accepts_an_etag_or_a_number():
    assert [parse_revision(h) for h in ("3", '"3"', 'W/"3"', None, "")] == [3, 3, 3, None, None]
    with pytest.raises(BadInput, match="If-Match"):
        parse_revision("*")


def test_two_concurrent_edits_of_one_line_from_the_same_revision_exactly_one_wins(tmp_path):
    file = StateFile(tmp_path)
    file.save(state())
    start, results = threading.Barrier(8), []

    def edit(i: int) -> None:
        start.wait()
        try:
            results.append(file.edit([Edit("u0001", {"text": f"versão {i}"}, if_match=0)])[1][0])
        except EditConflict as exc:
            results.append(exc)

    threads = [threading.Thread(target=edit, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    won = [r for r in results if isinstance(r, LineState)]
    assert len(won) == 1 and sum(isinstance(r, EditConflict) for r in results) == 7
    stored = file.load().line("u0001")
    assert stored.revision == 1 and stored.texts == won[0].texts and len(file.load().edits) == 1


def test_the_view_shows_the_edited_text_and_where_the_line_plays_now():
    s = state()
    s.apply([Edit("u0000", {"text": "Oi."})])
    view = s.view(None, "j")
    assert view["language"] == "pt-br" and view["speakers"] == ["A", "B"] and view["revision"] == 0
    first = view["lines"][0]
    assert (first["id"], first["text"], first["start_s"], first["end_s"], first["source_end_s"]) == (
        "u0000", "Oi.", 0.5, 1.8, 2.0)
    assert first["stale"] and first["revision"] == 1 and first["candidates"] == ["Olá."]
    with pytest.raises(UnsupportedLanguage):
        s.view("fr", "j")
