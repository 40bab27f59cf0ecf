"""The review page in real headless Chromium against the real Serve app (local Ray, CPU, offline profile).

Upload -> per-stage progress (the test synthesizer holds the lines, so the page is caught mid-job) -> a full
queue shown as a wait -> the job's review: lanes and blocks from the manifest, keyboard and click playback, the
language switch, every download compared byte for byte with the server's file; a line edited, saved and
regenerated into the job's next revision; errors as sentences; a phone
width. Every step leaves a screenshot under the module's output directory; any console error a test did not
provoke fails it.
"""

from __future__ import annotations

import hashlib
import io
import re

import pytest
import ray
import soundfile as sf

from graph.jobs.page import SECURITY_HEADERS, WEB_DIR
from tests.serve.browser import Console, Screens, chromium  # noqa: F401  (a fixture)
from tests.serve.conftest import APP, deploy, submit, tone, wait_for
from tests.serve.synth import control

pytestmark = pytest.mark.slow  # the Serve app driven by a browser

KEY = "page-test-key"
RETRY_AFTER_S = 6
MAX_DURATION_S = 60  # the dialogue (29 s) fits; the 413 case is a tone just over it
DESKTOP = {"width": 1280, "height": 720}
PHONE = {"width": 375, "height": 667}
WAIT_MS = 60_000  # page-side waits on a loaded 2-core machine
JOB_MS = 600_000  # waits on the job's own progress (a loaded machine is slow to transcribe and voice)


@pytest.fixture(scope="module")
def client(serve_port, tmp_path_factory):
    from ray import serve

    jobs = tmp_path_factory.mktemp("page-jobs")
    http = deploy(serve_port, job_dir=str(jobs), api_key=KEY, max_running_jobs=1, max_queued_jobs=1,
                  retry_after_s=RETRY_AFTER_S, max_duration_s=MAX_DURATION_S)  # fmt: skip
    yield http
    http.close()
    serve.delete(APP)


@pytest.fixture(scope="module")
def screens(tmp_path_factory) -> Screens:
    return Screens(tmp_path_factory.mktemp("page-screens"))


@pytest.fixture(scope="module")
def console() -> Console:
    return Console()


def _open(chromium, serve_port, console, viewport):
    from playwright.sync_api import expect

    expect.set_options(timeout=WAIT_MS)
    context = chromium.new_context(viewport=viewport, base_url=f"http://127.0.0.1:{serve_port}", accept_downloads=True)
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    console.watch(page)
    return context, page


@pytest.fixture(scope="module")
def page(chromium, serve_port, client, console):
    """One desktop tab for the module: the API key is asked once and kept in its sessionStorage."""
    context, page = _open(chromium, serve_port, console, DESKTOP)
    yield page
    context.close()


@pytest.fixture(scope="module")
def done_job(client, dialogue) -> str:
    """A finished job: the newest done one (the upload test's), or one submitted here when that test did not run."""
    jobs = [job for job in client.get("/v1/dubs").json()["jobs"] if job["status"] == "done"]
    if jobs:
        return jobs[0]["id"]
    status = wait_for(client, submit(client, dialogue.path, speakers="2"))
    assert status["status"] == "done", status
    return status["id"]


def _enter_key(page) -> None:
    from playwright.sync_api import expect

    dialog = page.locator("#key-dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_label("API key").fill(KEY)
    dialog.get_by_role("button", name="Continue").click()
    expect(dialog).to_be_hidden()


def _upload(page, path, **fields) -> None:
    page.locator("input[name=audio]").set_input_files(str(path))
    for name, value in fields.items():
        page.locator(f"[name={name}]").fill(str(value))
    page.get_by_role("button", name="Start dubbing").click()


def _accepted(page) -> str:
    """The new job's id once the page moved to it (or the page's error, when it says why it did not)."""
    page.wait_for_function("() => location.hash.startsWith('#/jobs/') || !document.querySelector('#upload-error').hidden")
    assert re.search(r"#/jobs/[A-Za-z0-9_-]{22}$", page.url), page.locator("#upload-error").inner_text()
    return page.url.rsplit("/", 1)[1]


def _until(page, condition: str, arg=None) -> None:
    """Wait until ``condition`` holds, a JavaScript expression over ``p`` (the page's <audio>) and ``a`` (arg).
    A function, not a string to evaluate: the page's Content-Security-Policy forbids eval, even Playwright's."""
    page.wait_for_function(f"(a) => {{ const p = document.querySelector('#player'); return {condition}; }}", arg=arg)


def _player(page) -> dict:
    return page.evaluate("""() => { const p = document.querySelector('#player');
        return {t: p.currentTime, paused: p.paused, duration: p.duration, src: p.currentSrc}; }""")


def test_upload_shows_progress_and_a_full_queue_as_a_wait(page, client, dialogue, console, screens):
    from playwright.sync_api import expect

    ctl = control()
    ray.get(ctl.configure.remote(paused=True))  # lines wait at the synthesizer's gate: the job stays mid-way
    queued = None
    try:
        page.goto("/")
        screens(page, "api-key")
        _enter_key(page)
        expect(page.locator("#targets input[value='pt-br']")).to_be_checked()
        page.locator("input[name=audio]").set_input_files(str(dialogue.path))
        page.locator("[name=speakers]").fill("2")
        screens(page, "upload")
        page.get_by_role("button", name="Start dubbing").click()
        job_id = _accepted(page)

        synth = page.locator('[data-stage="synthesize:pt-br"]')
        expect(synth.locator(".count")).to_have_text(re.compile(r"^0 / \d+$"), timeout=JOB_MS)
        status = client.get(f"/v1/dubs/{job_id}").json()
        assert status["status"] == "running", status
        total = status["progress"]["synthesize:pt-br"]["total"]
        expect(synth.locator(".count")).to_have_text(f"0 / {total}")
        for stage in ("decode", "asr", "diarize", "voices", "translate:pt-br"):
            expect(page.locator(f'[data-stage="{stage}"]')).to_have_class(re.compile(r"\bdone\b"))
        expect(page.locator('[data-stage="render:pt-br"]')).to_have_class(re.compile(r"\bwaiting\b"))
        screens(page, "progress")

        queued = submit(client, dialogue.path)  # max_queued_jobs=1: the queue is now full
        page.get_by_role("link", name="New dub and jobs").click()
        rows = page.locator("#jobs tbody tr")
        expect(rows).to_have_count(2)
        expect(rows.nth(0)).to_contain_text("Waiting")
        expect(page.locator(f'tr[data-job="{job_id}"]')).to_contain_text("Dubbing")
        _upload(page, dialogue.path)
        error = page.locator("#upload-error")
        expect(error).to_contain_text("The server is busy")
        button = page.locator("#upload button[type=submit]")
        expect(button).to_have_text(re.compile(rf"^Try again in [1-{RETRY_AFTER_S}] s$"))
        expect(button).to_be_disabled()
        screens(page, "queue-full")
        expect(button).to_have_text("Start dubbing", timeout=(RETRY_AFTER_S + 5) * 1000)
        expect(button).to_be_enabled()
        assert [job["id"] for job in client.get("/v1/dubs").json()["jobs"]][:2] == [queued, job_id]
    finally:
        ray.get(ctl.configure.remote())
        if queued:
            client.delete(f"/v1/dubs/{queued}")

    page.locator(f'tr[data-job="{job_id}"] a').click()
    expect(page.locator("#review")).to_be_visible(timeout=JOB_MS)
    assert client.get(f"/v1/dubs/{job_id}").json()["status"] == "done"
    assert console.take(expected_statuses=[401, 503]) == []


def test_review_plays_switches_language_and_downloads(page, client, done_job, console, screens):
    from playwright.sync_api import expect

    status = client.get(f"/v1/dubs/{done_job}").json()
    manifest = client.get(status["links"]["manifest"]).json()
    lines = manifest["languages"]["pt-br"]["lines"]
    duration = manifest["duration_s"]
    page.goto(f"/#/jobs/{done_job}")
    if page.locator("#key-dialog").is_visible():
        _enter_key(page)
    review = page.locator("#review")
    expect(review).to_be_visible()

    # one lane per speaker, one block per line where the line plays, flags shown on the blocks that have them
    expect(page.locator(".lane")).to_have_count(len(manifest["speakers"]))
    expect(page.locator(".block")).to_have_count(len(lines))
    for line in lines:
        block = page.locator(f'.block[data-line="{line["utterance_id"]}"]')
        lane = page.locator(".lane", has=block)
        expect(lane.locator(".lane-name")).to_have_text(line["speaker"])
        expect(block).to_contain_text(line["text"])
        left = float(block.evaluate("b => parseFloat(b.style.left)"))
        assert left == pytest.approx(100 * line["start_s"] / duration, abs=0.01)
        for flag, mark in (("stretched", "stretched"), ("synthesis_failed", "failed")):
            assert block.evaluate(f"b => b.classList.contains('{mark}')") == (flag in line["flags"]), (flag, line)

    # the browser decoded the dub and it is as long as the recording; the waveform is drawn
    _until(page, "Math.abs(p.duration - a) < 0.05", duration)
    expect(page.locator("#wave canvas").first).to_be_attached()
    expect(page.locator("input[name=track][value='pt-br']")).to_be_checked()

    # keyboard: space plays and pauses, arrows move from line to line
    page.locator("#main").focus()
    page.keyboard.press("Space")
    _until(page, "!p.paused && p.currentTime > 0.3")
    expect(page.locator("#play")).to_have_text("Pause")
    page.keyboard.press("Space")
    _until(page, "p.paused")
    now = _player(page)["t"]
    ordered = sorted(lines, key=lambda line: line["start_s"])
    after = [line for line in ordered if line["start_s"] >= now - 0.01]
    page.keyboard.press("ArrowRight")
    for step, line in enumerate(after[:2]):
        if step:
            page.keyboard.press("ArrowRight")
        selected = page.locator(".block.selected")
        expect(selected).to_have_attribute("data-line", line["utterance_id"])
        expect(selected).to_be_focused()
        assert _player(page)["t"] == pytest.approx(line["start_s"], abs=0.01)
        expect(page.locator("#line")).to_contain_text(line["text"])
        expect(page.locator("#line")).to_contain_text(line["source_text"])
    page.keyboard.press("ArrowLeft")
    expect(page.locator(".block.selected")).to_have_attribute("data-line", after[0]["utterance_id"])

    # a click plays the line from its start
    target = ordered[len(ordered) // 2]
    page.locator(f'.block[data-line="{target["utterance_id"]}"]').click()
    _until(page, "!p.paused && p.currentTime > a + 0.2", target["start_s"])
    screens(page, "review-playing")
    page.locator("#play").click()
    _until(page, "p.paused")

    # the language switch keeps the moment: the original plays from where the dub was, with the source lines
    before = _player(page)
    page.locator("input[name=track][value=original]").check()
    _until(page, "p.currentSrc !== a", before["src"])
    _until(page, "Math.abs(p.duration - a) < 0.05", duration)
    _until(page, "p.readyState >= 1 && Math.abs(p.currentTime - a) < 0.05", before["t"])
    expect(page.locator(".block")).to_have_count(len(manifest["utterances"]))
    first = manifest["utterances"][0]
    expect(page.locator(f'.block[data-line="{first["id"]}"]')).to_contain_text(first["text"])
    screens(page, "review-original")
    page.locator("input[name=track][value='pt-br']").check()
    expect(page.locator(f'.block[data-line="{ordered[0]["utterance_id"]}"]')).to_contain_text(ordered[0]["text"])

    # every artifact downloads, byte for byte what the server has
    links = page.locator("#downloads a")
    names = links.all_inner_texts()
    assert set(names) == {"pt-br.wav", "pt-br.flac", "pt-br.srt", "pt-br.vtt", "manifest.json", "original.flac"}
    for name in names:
        with page.expect_download() as download:
            page.get_by_role("link", name=name, exact=True).click()
        assert download.value.suggested_filename == name
        saved = download.value.path().read_bytes()
        served = client.get(f"/v1/dubs/{done_job}/{name}").content
        assert hashlib.sha256(saved).hexdigest() == hashlib.sha256(served).hexdigest(), name
    original, sr = sf.read(io.BytesIO(client.get(status["links"]["original"]).content), dtype="float32")
    assert len(original) / sr == pytest.approx(duration, abs=1e-3)  # lines up with every dub
    assert console.take() == []


def test_errors_are_sentences_not_stack_traces(page, client, dialogue, console, screens, tmp_path):
    from playwright.sync_api import expect

    not_audio = tmp_path / "notes.wav"
    not_audio.write_text("These are meeting notes, not a recording.\n" * 20)
    cases = [
        (not_audio, {}, 415, "This file cannot be dubbed: "),
        (tone(tmp_path / "long.mp3", MAX_DURATION_S + 5), {}, 413, "Too large: "),
        (dialogue.path, {"min_speakers": 3, "max_speakers": 2}, 422, "Please check the settings: "),
    ]
    page.goto("/")
    if page.locator("#key-dialog").is_visible():
        _enter_key(page)
    before = {job["id"] for job in client.get("/v1/dubs").json()["jobs"]}
    error = page.locator("#upload-error")
    for path, fields, code, lead in cases:
        page.locator("#upload").evaluate("form => form.reset()")
        _upload(page, path, **fields)
        expect(error).to_be_visible()
        expect(error).to_contain_text(lead)
        text = error.inner_text()
        assert "Traceback" not in text and "/input" not in text and len(text) > len(lead) + 10, text
        screens(page, f"error-{code}")
        assert console.take(expected_statuses=[code]) == []
    assert {job["id"] for job in client.get("/v1/dubs").json()["jobs"]} == before  # nothing was queued

    page.goto("/#/jobs/" + "A" * 22)
    expect(page.locator("#job-error")).to_contain_text("Not found: ")
    screens(page, "error-404")
    assert console.take(expected_statuses=[404]) == []


def test_phone_width_keeps_everything_reachable(chromium, serve_port, done_job, console, screens):
    from playwright.sync_api import expect

    context, phone = _open(chromium, serve_port, console, PHONE)
    try:
        phone.goto("/")
        _enter_key(phone)  # a new tab asks again: the key lives in one tab's sessionStorage only
        expect(phone.get_by_role("button", name="Start dubbing")).to_be_visible()
        screens(phone, "phone-upload")
        phone.goto(f"/#/jobs/{done_job}")
        expect(phone.locator("#review")).to_be_visible()
        expect(phone.locator(".block").first).to_be_visible()
        for page_width in phone.evaluate("() => [document.documentElement.scrollWidth, document.body.scrollWidth]"):
            assert page_width <= PHONE["width"]  # the timeline scrolls inside itself, never the page sideways
        phone.locator(".block").first.click()
        _until(phone, "!p.paused")
        screens(phone, "phone-review")
    finally:
        context.close()
    assert console.take(expected_statuses=[401]) == []


def test_page_is_served_with_its_vendored_library(client):
    page = client.get("/", headers={"X-API-Key": ""})  # the page itself needs no key; the API behind it does
    assert page.status_code == 200 and '<base href="/">' in page.text
    assert page.headers["Content-Security-Policy"] == SECURITY_HEADERS["Content-Security-Policy"]
    assert client.get("/v1/dubs", headers={"X-API-Key": ""}).status_code == 401
    versions = (WEB_DIR / "static" / "vendor" / "VERSIONS").read_text()
    for name, _version, _tarball, path, sha in (r.split() for r in versions.splitlines() if r and r[0] != "#"):
        served = client.get(f"/static/vendor/{path.rsplit('/', 1)[1]}")
        assert served.status_code == 200 and "javascript" in served.headers["content-type"]
        assert hashlib.sha256(served.content).hexdigest() == sha, f"{name} differs from VERSIONS: make vendor-web"
        assert (WEB_DIR / "static" / "vendor" / f"LICENSE.{name}.txt").is_file()


def test_a_line_edited_on_the_page_is_regenerated_into_a_new_revision(page, client, done_job, console, screens):
    """Select a line, change its text, save, regenerate: the page and the server show the job's next revision, with
    that line in it (and only that line regenerated)."""
    from playwright.sync_api import expect

    before = client.get(f"/v1/dubs/{done_job}").json()
    revision, duration = before["revision"], client.get(before["links"]["manifest"]).json()["duration_s"]
    line = client.get(f"/v1/dubs/{done_job}/lines").json()["lines"][1]
    page.goto(f"/#/jobs/{done_job}")
    if page.locator("#key-dialog").is_visible():
        _enter_key(page)
        assert console.take(expected_statuses=[401]) == []
    expect(page.locator("#review")).to_have_attribute("data-editing", "on")  # lines from the editing API
    block = page.locator(f'.block[data-line="{line["id"]}"]')
    block.click()
    form = page.locator("#edit")
    expect(form).to_be_visible()
    # the slot exactly as the server has it (not rounded to a step): saving must not trip the form's validation
    assert float(form.locator("[name=end_s]").input_value()) == line["source_end_s"]
    text = "Uma frase corrigida na página."
    form.locator("[name=text]").fill(text)
    with page.expect_response(lambda r: r.request.method == "PATCH") as patched:
        form.get_by_role("button", name="Save the edit").click()
    assert patched.value.status == 200 and patched.value.headers["etag"] == f'"{line["revision"] + 1}"'
    expect(page.locator("#edit-state")).to_have_text("Saved. Regenerate to hear the change.")
    expect(block).to_have_class(re.compile(r"\bstale\b"))
    expect(page.locator("#render")).to_have_text("Regenerate 1 edited line")
    edited = next(e for e in client.get(f"/v1/dubs/{done_job}/lines").json()["lines"] if e["id"] == line["id"])
    assert edited["text"] == text and edited["stale"] and edited["revision"] == line["revision"] + 1
    screens(page, "edited")

    track = re.compile(rf"/v1/dubs/{done_job}/pt-br\.(flac|wav)\?r={revision + 1}$")  # the new revision's track
    with page.expect_response(lambda r: bool(track.search(r.url)) and r.ok, timeout=JOB_MS):
        page.locator("#render").click()
    expect(page.locator("#job-log")).to_contain_text(f"revision {revision + 1}: lines regenerated: pt-br 1")
    expect(page.locator("#job-state .status")).to_have_text("Done")
    _until(page, "p.readyState >= 1 && Math.abs(p.duration - a) < 0.05", duration)
    expect(block).to_contain_text(text)
    expect(block).not_to_have_class(re.compile(r"\bstale\b"))
    expect(page.locator("#render-bar")).to_be_hidden()
    screens(page, "regenerated")

    status = client.get(f"/v1/dubs/{done_job}").json()
    assert status["status"] == "done" and status["revision"] == revision + 1
    served = client.get(f"/v1/dubs/{done_job}/lines").json()
    now = next(e for e in served["lines"] if e["id"] == line["id"])
    assert served["revision"] == revision + 1 and now["text"] == text and not now["stale"]
    assert now["revision"] == line["revision"] + 1
    placed = client.get(status["links"]["manifest"]).json()["languages"]["pt-br"]["lines"]
    assert next(p for p in placed if p["utterance_id"] == line["id"])["text"] == text
    assert console.take() == []
