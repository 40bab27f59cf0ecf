"""Editing a dub's lines and rendering it again (graph/run/rendering.py) with in-process stage objects: only what
an edit made stale is voiced, every other line's samples stay as they were, the manifest records the revisions
and edits; a render stopped before or after its commit never leaves a half-updated output set."""

import asyncio
import json
import threading

import numpy as np
import pytest
import soundfile as sf

from actors.models import Profile
from graph.edits import Edit, StateFile
from graph.errors import BadInput
from graph.options import DubOptions
from graph.run import rendering
from graph.run.checkpoint import Checkpoint
from graph.run.pipeline import DubJob, Stages, dub
from graph.run.pools import make_job
from graph.run.stages import LocalStage, Unstarted
from tests.run.stand_ins import F0, Script, Turns
from tests.run.stand_ins import recording as write_recording
from tests.run.test_pipeline import LINES, OUT_SR, Tagger, ToneVoice, dominant_hz


class Recorder(ToneVoice):
    """The tone voice, remembering what every call was given."""

    def __init__(self):
        super().__init__()
        self.said: list[tuple[str, str, float]] = []  # (text, language, the voice's f0)
        self.voices: list[dict] = []

    def prepare(self, reference, sr):
        voice = super().prepare(reference, sr)
        self.voices.append(voice)
        return voice

    def synthesize(self, text, language, conds, *args):
        with self.lock:
            self.said.append((text, language, conds["f0"]))
        return super().synthesize(text, language, conds, *args)


class CountingTagger(Tagger):
    def __init__(self):
        self.asked: list[list[str]] = []

    def translate(self, texts, source, target, options):
        self.asked.append(list(texts))
        return super().translate(texts, source, target, options)


def stages_of(voice, translator=None):
    return Stages(LocalStage(Script(LINES)), LocalStage(Turns(LINES)), LocalStage(translator or Tagger()),
                  LocalStage(voice, parallelism=4))


def first_pass(tmp_path, voice=None, targets=("pt-br",), **options):
    recording = write_recording(tmp_path / "talk.wav", LINES, 10.0)
    out = tmp_path / "out"
    job = DubJob(str(recording), str(out), DubOptions(targets=targets, **options), sources=("en",),
                 targets=("pt-br", "es"), models={"synthesizer": "tone"}, state=str(out / ".dubgraph"))
    asyncio.run(dub(job, stages_of(voice or Recorder()), checkpoint=Checkpoint(out / ".dubgraph" / "checkpoint")))
    return out


def render(out, voice, translator=None):
    return asyncio.run(rendering.render(out / ".dubgraph", out, stages_of(voice, translator)))


def manifest(out) -> dict:
    return json.loads((out / "manifest.json").read_text())


def lines_of(out, lang="pt-br") -> dict[str, dict]:
    return {line["utterance_id"]: line for line in manifest(out)["languages"][lang]["lines"]}


def edit(out, line_id, **body):
    return StateFile(out / ".dubgraph").edit([Edit(line_id, body)])[1][0]


def pcm(out, name="pt-br.wav") -> np.ndarray:
    return sf.read(out / name, dtype="int16")[0]


@pytest.mark.parametrize("background", [False, True], ids=["voices", "over the ducked bed"])
def test_a_text_edit_regenerates_that_line_alone(tmp_path, background):
    out = first_pass(tmp_path, background=background, separation=False)
    before, placed_before = pcm(out), lines_of(out)
    fits_before = StateFile(out / ".dubgraph").load().placed["pt-br"]
    edit(out, "u0001", text="Olá, como vai você hoje, meu caro amigo?")
    voice = Recorder()
    rendered = render(out, voice)
    assert rendered.changed and rendered.revision == 1 and rendered.regenerated == {"pt-br": ("u0001",)}
    assert {text for text, _, _ in voice.said} == {"Olá, como vai você hoje, meu caro amigo?"} and not voice.voices
    after, placed = pcm(out), lines_of(out)
    assert placed["u0001"]["text"] == "Olá, como vai você hoje, meu caro amigo?" and placed["u0001"]["revision"] == 1
    sr = OUT_SR
    start = int(min(placed["u0001"]["start_s"], placed_before["u0001"]["start_s"]) * sr)
    end = int(np.ceil(max(placed["u0001"]["end_s"], placed_before["u0001"]["end_s"]) * sr))
    assert before.shape == after.shape
    assert np.array_equal(before[:start], after[:start]) and np.array_equal(before[end:], after[end:])
    assert not np.array_equal(before[start:end], after[start:end])  # the edited line is heard changed
    fits = StateFile(out / ".dubgraph").load().placed["pt-br"]
    for line_id in ("u0000", "u0002", "u0003"):  # per-line stems: the same samples, placed the same
        assert fits[line_id]["fit"] == fits_before[line_id]["fit"] and placed[line_id] == placed_before[line_id]
    data = manifest(out)
    assert data["revision"] == 1 and [e["line"] for e in data["edits"]] == ["u0001"]
    assert data["edits"][0]["rendered"] == 1 and data["edits"][0]["changes"]["text"]["pt-br"].startswith("Olá")


def test_a_speaker_edit_voices_the_line_with_the_other_speakers_conditionals(tmp_path):
    first = Recorder()
    out = first_pass(tmp_path, first)
    voice_of = {speaker: next(f0 for text, _, f0 in first.said if text.startswith(f"[pt-br] {source}"))
                for speaker, _, _, source in LINES}
    assert voice_of["A"] != voice_of["B"]
    edit(out, "u0001", speaker="A")  # B's line, said by A now
    voice = Recorder()
    render(out, voice)
    assert voice.voices == []  # no conditionals computed again
    assert {f0 for _, _, f0 in voice.said} == {voice_of["A"]}  # what the synthesizer received: A's voice
    line = lines_of(out)["u0001"]
    track, sr = sf.read(out / "pt-br.wav", dtype="float32")
    assert line["speaker"] == "A" and manifest(out)["utterances"][1]["speaker"] == "A"
    assert abs(dominant_hz(track[int(line["start_s"] * sr) : int(line["end_s"] * sr)], sr) - F0["A"]) < 15


def test_a_locked_line_survives_a_source_text_edit_elsewhere(tmp_path):
    out = first_pass(tmp_path, targets=("pt-br", "es"))
    edit(out, "u0000", lang="es", text="Hola, amigo mío.", locked=True)
    render(out, Recorder())
    locked = {lang: lines_of(out, lang)["u0000"] for lang in ("pt-br", "es")}
    tracks = {lang: pcm(out, f"{lang}.wav") for lang in ("pt-br", "es")}
    edit(out, "u0002", source_text="Very well, and you?")
    translator, voice = CountingTagger(), Recorder()
    rendered = render(out, voice, translator)
    assert translator.asked == [["Very well, and you?"]] * 2  # that line alone, once per language
    assert rendered.regenerated == {"pt-br": ("u0002",), "es": ("u0002",)}
    assert {text for text, _, _ in voice.said} == {f"[{lang}] Very well, and you?" for lang in ("pt-br", "es")}
    for lang in ("pt-br", "es"):
        now = lines_of(out, lang)
        assert now["u0000"] == locked[lang] and now["u0002"]["source_text"] == "Very well, and you?"
        start = int(now["u0000"]["start_s"] * OUT_SR)
        end = int(now["u0000"]["end_s"] * OUT_SR)
        assert np.array_equal(pcm(out, f"{lang}.wav")[start:end], tracks[lang][start:end])
    assert lines_of(out, "es")["u0000"]["text"] == "Hola, amigo mío."
    edit(out, "u0000", source_text="Hello there, my friend.")  # the locked line's own source: not translated again
    translator = CountingTagger()
    assert render(out, Recorder(), translator).regenerated == {"pt-br": (), "es": ()} and translator.asked == []


def test_nothing_stale_renders_nothing(tmp_path):
    out = first_pass(tmp_path)
    written = (out / "pt-br.wav").stat().st_mtime_ns
    rendered = render(out, Recorder())
    assert not rendered.changed and rendered.revision == 0 and (out / "pt-br.wav").stat().st_mtime_ns == written


def test_a_render_stopped_before_its_commit_changes_nothing_and_is_done_again(tmp_path, monkeypatch):
    out = first_pass(tmp_path)
    files = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    edit(out, "u0003", text="Que bom ouvir isso.")

    def stopped(*args):
        raise RuntimeError("the process stopped here")

    monkeypatch.setattr(rendering, "_write_manifest", stopped)
    with pytest.raises(RuntimeError):
        render(out, Recorder())
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == files
    assert StateFile(out / ".dubgraph").load().revision == 0
    monkeypatch.undo()
    voice = Recorder()
    assert render(out, voice).revision == 1 and voice.calls == 0  # its take was checkpointed by the first try
    assert not (out / rendering.STAGING).exists() and lines_of(out)["u0003"]["text"] == "Que bom ouvir isso."


def test_a_render_stopped_after_its_commit_is_finished_by_the_next_call(tmp_path, monkeypatch):
    out = first_pass(tmp_path)
    edit(out, "u0003", text="Que bom ouvir isso.")
    moved = rendering.finish_commit

    def stopped(file, state, out_dir):
        name = state.commit["files"][0]
        (out_dir / rendering.STAGING / name).replace(out_dir / name)  # one file moved, then the process stops
        raise RuntimeError("the process stopped here")

    monkeypatch.setattr(rendering, "finish_commit", stopped)
    with pytest.raises(RuntimeError):
        render(out, Recorder())
    assert manifest(out)["revision"] == 0 and StateFile(out / ".dubgraph").load().commit is not None
    monkeypatch.setattr(rendering, "finish_commit", moved)
    voice = Recorder()
    rendered = render(out, voice)
    assert (rendered.revision, voice.calls) == (1, 0) and manifest(out)["revision"] == 1
    assert lines_of(out)["u0003"]["text"] == "Que bom ouvir isso." and not (out / rendering.STAGING).exists()
    assert "Que bom ouvir isso." in (out / "pt-br.srt").read_text()


def _srt(path, cues):
    path.write_text("\n".join(f"{i}\n00:00:{a:06.3f} --> 00:00:{b:06.3f}\n{text}\n".replace(".", ",", 2)
                              for i, (a, b, text) in enumerate(cues, start=1)))
    return path


def test_a_translated_transcript_replaces_machine_translation(tmp_path):
    recording = write_recording(tmp_path / "talk.wav", LINES, 10.0)
    transcript = _srt(tmp_path / "talk.srt", [(a, b, f"[{s}] {t}") for s, a, b, t in LINES])
    said = [f"Tradução {i}." for i in range(len(LINES))]
    translation = _srt(tmp_path / "talk.pt-br.srt", [(a, b, t) for (_, a, b, _), t in zip(LINES, said)])
    job = DubJob(str(recording), str(tmp_path / "out"), DubOptions(targets=("pt-br",)), ("en",), ("pt-br",),
                 transcript=str(transcript), translations={"pt-br": str(translation)})
    voice = Recorder()
    bare = Stages(Unstarted("asr"), Unstarted("diarizer"), Unstarted("translator"), LocalStage(voice, parallelism=4))
    asyncio.run(dub(job, bare))
    assert [line["text"] for line in lines_of(tmp_path / "out").values()] == said
    assert manifest(tmp_path / "out")["translations"] == {"pt-br": "talk.pt-br.srt"}
    _srt(translation, [(a + 3.0, b + 3.0, t) for (_, a, b, _), t in zip(LINES, said)])
    with pytest.raises(BadInput, match="cue 1 .* does not line up with source line u0000"):
        asyncio.run(dub(job, bare))
    # from a transcript the lines are known before the job starts: make_job refuses (422 / exit 2) up front
    profile = Profile("tone", "in-process stand-ins", (), sources=("en",), targets=("pt-br",))
    options = DubOptions(targets=("pt-br",), profile="tone")
    with pytest.raises(BadInput, match="cue 1 .* does not line up with source line u0000"):
        make_job(recording, tmp_path / "again", options, profile, transcript=transcript,
                 translations={"pt-br": translation})
    _srt(translation, [(a, b, t) for (_, a, b, _), t in zip(LINES[:-1], said)])
    with pytest.raises(BadInput, match="has 3 cues for 4 source lines"):
        make_job(recording, tmp_path / "again", options, profile, transcript=transcript,
                 translations={"pt-br": translation})
    (tmp_path / "broken.srt").write_text("1\nnot a time line\nHello\n")
    with pytest.raises(BadInput):
        make_job(recording, tmp_path / "again", options, profile, transcript=tmp_path / "broken.srt")


def test_renders_and_edits_of_one_job_take_turns(tmp_path):
    """An edit made while a render runs waits for it, and lands for the next render (it is never half-applied)."""
    out = first_pass(tmp_path)
    edit(out, "u0000", text="Olá, meu amigo.")
    gate, reached = threading.Event(), threading.Event()

    class Held(Recorder):
        def synthesize(self, *args):
            reached.set()
            gate.wait(30)
            return super().synthesize(*args)

    async def main():
        task = asyncio.create_task(rendering.render(out / ".dubgraph", out, stages_of(Held())))
        await asyncio.to_thread(reached.wait, 30)
        late = asyncio.create_task(asyncio.to_thread(edit, out, "u0001", text="Tudo bem?"))
        await asyncio.sleep(0.2)
        assert not late.done()  # waits for the render's lock
        gate.set()
        return await task, await late

    rendered, line = asyncio.run(main())
    state = StateFile(out / ".dubgraph").load()
    assert rendered.revision == state.revision == 1 and line.revision == 1
    assert state.line("u0001").stale and not state.line("u0000").stale


def test_the_cli_lists_and_edits_lines_and_refuses_bad_edits_with_exit_2(tmp_path, capsys):
    from graph.cli.main import main

    out = first_pass(tmp_path)
    state = (out / ".dubgraph" / "lines.npz").read_bytes()
    assert main(["lines", str(out), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["revision"] == 0 and [line["id"] for line in listed["lines"]] == ["u0000", "u0001", "u0002", "u0003"]
    bad = [["--line", "u9999", "--text", "x"], ["--line", "u0001", "--text", "x" * 2001],
           ["--line", "u0001", "--start", "3.0", "--end", "2.0"], ["--line", "u0001", "--start", "0", "--end", "99"],
           ["--line", "u0001", "--speaker", "nobody"], ["--line", "u0001"], ["--line", "u0001", "--lang", "xx",
                                                                             "--text", "x"]]
    for args in bad:
        assert main(["edit", str(out), *args]) == 2, args
        assert capsys.readouterr().err.startswith("error: ")
    (tmp_path / "edits.json").write_text(json.dumps([{"id": "u0000", "locked": True},
                                                     {"id": "u0003", "end_s": 0.1}]))  # the second is bad: none
    assert main(["edit", str(out), "--file", str(tmp_path / "edits.json")]) == 2
    assert "u0003" in capsys.readouterr().err
    assert (out / ".dubgraph" / "lines.npz").read_bytes() == state  # nothing changed
    (tmp_path / "edits.json").write_text(json.dumps([{"id": "u0000", "locked": True},
                                                     {"id": "u0002", "text": "Texto novo.", "if_match": 0}]))
    assert main(["edit", str(out), "--file", str(tmp_path / "edits.json")]) == 0
    assert main(["edit", str(out), "--line", "u0002", "--text", "De novo.", "--if-match", "0"]) == 2  # stale
    assert "revision 1, not 0" in capsys.readouterr().err
    lines = {line["id"]: line for line in StateFile(out / ".dubgraph").load().view(None, "j")["lines"]}
    assert lines["u0000"]["locked"] and lines["u0002"]["text"] == "Texto novo." and lines["u0002"]["stale"]
