"""The voice library on disk and the checks on a voice clip (no models: conditionals and embeddings are data)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from graph.errors import BadAudio, BadInput, UnsupportedLanguage, VoiceExists, VoiceNotFound
from graph.media.library import VoiceLibrary, default_dir
from graph.media.voice_clip import read_clip
from graph.options import DubOptions, GlossaryOptions, VoiceOptions, from_dict
from graph.types import SpeakerEmbedding, VoiceConditionals
from tests.fixtures.make_dialogue import SR, speak


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """A good clip and the bad ones a user sends: silence, 0.2 s, corrupt, telephone rate, too long."""
    out = tmp_path_factory.mktemp("clips")
    voice = np.concatenate([speak("Hello, this is my voice for the library.", "beth"), np.zeros(SR // 2, np.float32),
                            speak("I read two sentences for it.", "beth")])
    paths = {name: out / f"{name}.wav" for name in ("good", "other", "silence", "short", "corrupt", "phone", "long")}
    sf.write(paths["good"], voice, SR)
    sf.write(paths["other"], speak("A different voice reads a different and rather longer text today.", "alex"), SR)
    sf.write(paths["silence"], np.zeros(4 * SR, np.float32), SR)
    sf.write(paths["short"], voice[: SR // 5], SR)
    paths["corrupt"].write_bytes(paths["good"].read_bytes()[:44] + bytes(range(256)) * 3)
    sf.write(paths["phone"], voice[::2], SR // 2)
    sf.write(paths["long"], np.tile(voice, 40 // int(len(voice) / SR) + 1)[: 40 * SR], SR)
    return paths


@pytest.mark.parametrize("name, error, message", [
    ("silence", BadInput, "is silent"),
    ("short", BadInput, "0.2 s long; give 3-30 s"),
    ("corrupt", BadAudio, "cannot be read as audio"),
    ("phone", BadInput, "8000 Hz; voices need at least 16000 Hz"),
    ("long", BadInput, "longer than 30 s"),
])
def test_a_bad_clip_is_refused_saying_what_to_change(clips, name, error, message):
    with pytest.raises(error, match=message):
        read_clip(clips[name], f"{name}.wav")


def test_uploaded_bytes_are_checked_the_same_way(clips):
    assert read_clip(clips["good"].read_bytes(), "good.wav").sr == SR
    with pytest.raises(BadInput, match="is silent"):
        read_clip(clips["silence"].read_bytes(), "voice.SPEAKER_00")


def test_voices_persist_and_are_listed_removed_and_replaced(clips, tmp_path):
    library = VoiceLibrary(tmp_path / "voices")
    alice = library.add("alice", read_clip(clips["good"], "good.wav"), str(clips["good"]))
    assert alice.source == "good.wav" and alice.sr == SR and 4 < alice.duration_s < 8
    again = VoiceLibrary(tmp_path / "voices")  # another process: only what is on disk
    assert [v.name for v in again.voices()] == ["alice"] and again.get("alice") == alice
    assert np.array_equal(again.clip(alice).samples, read_clip(clips["good"], "x").samples)
    with pytest.raises(VoiceExists, match="already has a voice named 'alice'"):
        again.add("alice", read_clip(clips["other"], "o"), "other.wav")
    replaced = again.add("alice", read_clip(clips["other"], "o"), "other.wav", replace_existing=True)
    assert replaced.clip_key != alice.clip_key and library.get("alice").source == "other.wav"
    library.remove("alice")
    assert library.voices() == [] and not list((tmp_path / "voices").glob(".*-*"))  # no staging left behind
    with pytest.raises(VoiceNotFound, match="no voice named 'alice'"):
        library.remove("alice")
    for bad in ("../x", ".hidden", "a/b", "", "x" * 65):
        with pytest.raises(BadInput, match="a voice name is"):
            library.add(bad, read_clip(clips["good"], "g"), "g.wav")
    with pytest.raises(BadInput, match="full"):
        library.add("bob", read_clip(clips["good"], "g"), "g.wav", max_voices=0)


def test_conditionals_and_embeddings_are_kept_per_model_and_never_for_a_replaced_clip(clips, tmp_path):
    library = VoiceLibrary(tmp_path)
    voice = library.add("bob", read_clip(clips["good"], "g"), "g.wav")
    conds = VoiceConditionals("espeak", "espeak-ng voices", meta={"variant": "f2", "pitch": 60})
    library.keep_conditionals(voice, "espeak-ng voices", conds)
    library.keep_embedding(voice, SpeakerEmbedding("resemblyzer", np.ones(4, np.float32) / 2, 0.85))
    assert library.conditionals(voice, "espeak-ng voices") == conds
    assert library.conditionals(voice, "ChatterBox multilingual") is None  # another model: not prepared for it
    assert library.embedding(voice, "resemblyzer").threshold == 0.85 and library.embedding(voice, "wespeaker") is None
    listed = library.get("bob")
    assert listed.prepared == ("espeak-ng voices",) and listed.embedded == ("resemblyzer",)
    newer = library.add("bob", read_clip(clips["other"], "o"), "o.wav", replace_existing=True)
    library.keep_conditionals(voice, "late model", conds)  # computed from the old clip while it was replaced
    assert library.conditionals(newer, "espeak-ng voices") is None and library.get("bob").prepared == ()


def test_the_default_library_is_the_users_data_directory(monkeypatch, tmp_path):
    monkeypatch.delenv("DUBGRAPH_VOICES", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert default_dir() == tmp_path / "dubgraph" / "voices"
    monkeypatch.setenv("DUBGRAPH_VOICES", str(tmp_path / "shared"))
    assert default_dir() == tmp_path / "shared"


def test_glossary_and_voice_options_are_checked_at_the_edge():
    options = from_dict(DubOptions, {"glossary": {"terms": {"PT_BR": {"report": "relato"}}, "keep": ["Acme"],
                                                  "pronounce": {"pt-br": {"Acme": "Ácmi"}}},
                                     "voices": {"library": {"SPEAKER_00": "alice"}, "match": True}})
    assert options.glossary.terms == {"pt-br": {"report": "relato"}} and options.glossary.keep == ("Acme",)
    with pytest.raises(UnsupportedLanguage, match="unsupported glossary terms language 'klingon'"):
        from_dict(GlossaryOptions, {"terms": {"klingon": {"a": "b"}}})
    with pytest.raises(UnsupportedLanguage, match="pronunciations language 'xx'"):
        from_dict(GlossaryOptions, {"pronounce": {"xx": {"a": "b"}}})
    with pytest.raises(BadInput, match="non-empty text"):
        from_dict(GlossaryOptions, {"keep": [""]})
    with pytest.raises(BadInput, match="between -1 and 1"):
        VoiceOptions(match_threshold=2)
    with pytest.raises(BadInput, match="unknown VoiceOptions field"):
        from_dict(VoiceOptions, {"treshold": 0.5})
