"""The voice library over HTTP (/v1/voices), a job's voice clips, library voices and glossary (POST /v1/dubs), and
the library surviving a restart of the whole app. Real Serve, the offline profile, espeak-ng behind the test
control (tests/serve/synth.py)."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import soundfile as sf

from tests.fixtures.make_dialogue import SR, speak
from tests.serve.conftest import APP, deploy, wait_for

pytestmark = pytest.mark.slow  # a Serve app, jobs and a restart

KEY = "voices-key"


def wav(samples: np.ndarray, sr: int = SR) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, sr, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def test_voice_library_crud_jobs_that_use_it_and_a_restart(serve_port, dialogue, tmp_path):
    from ray import serve

    args = {"job_dir": str(tmp_path / "jobs"), "api_key": KEY, "max_voice_mb": 1, "max_voices": 2}
    beth = np.concatenate([speak("Hello, this is a clean recording of my voice.", "beth"),
                           speak("Please use it for every episode.", "beth")])
    alice = wav(beth)
    studio = wav(np.concatenate([speak("This is the studio recording of the actor.", "colin"),
                                 speak("Use it instead of the excerpt.", "colin")]))
    client = deploy(serve_port, **args)
    try:
        def add(name, audio, method="post", path="/v1/voices"):
            return getattr(client, method)(path, data={"name": name} if name else None,
                                           files={"audio": ("clip.wav", audio, "audio/wav")})

        created = add("alice", alice)
        assert created.status_code == 201 and created.headers["Location"] == "/v1/voices/alice", created.text
        assert created.json()["name"] == "alice" and created.json()["source"] == "clip.wav"
        errors = [
            (409, add("alice", alice), "already has a voice named 'alice'"),
            (422, add("bob", wav(np.zeros(4 * SR, np.float32))), "is silent"),
            (422, add("bob", wav(beth[: SR // 5])), "0.2 s long"),
            (415, add("bob", b"RIFF" + bytes(range(256)) * 8), "cannot be read as audio"),
            (422, add("../etc", alice), "a voice name is"),
            (422, add(None, alice), "needs a 'name'"),
            (413, add("bob", alice + bytes(2**20)), "upload limit"),
            (404, client.get("/v1/voices/nobody"), "no voice named 'nobody'"),
            (404, client.delete("/v1/voices/nobody"), "no voice named 'nobody'"),
            (401, client.get("/v1/voices", headers={"X-API-Key": "wrong"}), "API key"),
        ]
        for expected, response, message in errors:
            assert response.status_code == expected, (expected, response.text)
            assert message in response.json()["error"]["message"] and str(tmp_path) not in response.text
        assert add("carol", alice).status_code == 201
        assert add("dave", alice).json()["error"]["message"].startswith("the voice library is full (2 voices)")
        assert client.delete("/v1/voices/carol").json() == {"name": "carol", "deleted": True}

        def dub(extra=None, voices=None, **data):
            files = [("audio", ("talk.wav", dialogue.path.read_bytes(), "audio/wav"))]
            files += [(f"voice.{speaker}", (f"{speaker}.wav", audio, "audio/wav")) for speaker, audio in
                      (voices or {}).items()]
            return client.post("/v1/dubs", data={"targets": "pt-br", "speakers": "2", **data, **(extra or {})},
                               files=files)

        refused = [
            (dub(glossary=json.dumps({"terms": {"tlh": {"report": "ghItlh"}}})), 422, "glossary terms language 'tlh'"),
            (dub(glossary="not json"), 422, "glossary must be a JSON object"),
            (dub(voices={"SPEAKER_00": wav(np.zeros(4 * SR, np.float32))}), 422, "(for SPEAKER_00) is silent"),
            (dub(options=json.dumps({"voices": {"library": {"SPEAKER_01": "ghost"}}})), 422, "no voice named 'ghost'"),
        ]
        for response, expected, message in refused:
            assert response.status_code == expected, response.text
            assert message in response.json()["error"]["message"] and str(tmp_path) not in response.text

        accepted = dub(voices={"SPEAKER_00": studio},
                       options=json.dumps({"voices": {"library": {"SPEAKER_01": "alice"}}}),
                       glossary=json.dumps({"terms": {"pt-br": {"report": "relato"}}, "keep": ["March"]}))
        assert accepted.status_code == 202, accepted.text
        status = wait_for(client, accepted.json()["id"])
        assert status["status"] == "done", status
        manifest = client.get(status["links"]["manifest"]).json()
        voices = manifest["voices"]
        assert voices["SPEAKER_00"]["source"] == "clip" and voices["SPEAKER_00"]["computed"]
        assert voices["SPEAKER_01"]["source"] == "library" and voices["SPEAKER_01"]["voice"] == "alice"
        lines = manifest["languages"]["pt-br"]["lines"]
        assert all("relato" in line["text"] for line in lines if "report" in line["source_text"].lower())
        assert (tmp_path / "jobs" / status["id"] / "voices").is_dir()  # kept while the job can be edited

        serve.delete(APP)  # the whole app goes; the library stays on disk beside the job store
        client = deploy(serve_port, **args)
        listed = client.get("/v1/voices").json()["voices"]
        assert [v["name"] for v in listed] == ["alice"] and listed[0]["prepared"] == ["espeak-ng voices"]
        again = client.post("/v1/dubs", data={"targets": "pt-br", "speakers": "2",
                                              "options": json.dumps({"voices": {"library": {"SPEAKER_00": "alice"}}})},
                            files={"audio": ("talk.wav", dialogue.path.read_bytes(), "audio/wav")})
        status = wait_for(client, again.json()["id"])
        assert status["status"] == "done", status
        reused = client.get(status["links"]["manifest"]).json()["voices"]["SPEAKER_00"]
        assert reused["voice"] == "alice" and reused["computed"] is False  # prepared once, ever
        replaced = add(None, studio, "put", "/v1/voices/alice")
        assert replaced.status_code == 200 and replaced.json()["prepared"] == []
        assert client.delete("/v1/voices/alice").status_code == 200
        assert client.get("/v1/voices").json() == {"voices": []}
    finally:
        client.close()
        serve.delete(APP)
