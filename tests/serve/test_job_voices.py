"""A queued job's voice clips and library voices survive a restart of the job runner (no Serve: the in-process
stand-ins of tests/run/test_pipeline.py), and a done job keeps its clips with its other work files (editing its lines needs them)."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest

from graph.errors import BadInput
from graph.jobs.runner import JobRunner, Limits
from graph.jobs.store import JobStore
from graph.media.library import VoiceLibrary
from graph.media.voice_clip import read_clip
from graph.options import DubOptions, VoiceOptions
from tests.run.stand_ins import SR, speech
from tests.run.test_pipeline import ToneVoice, recording, stages  # noqa: F401 (recording: fixture)
from tests.serve.test_jobs import PROFILE, GatedVoice, copier, settled


def test_a_queued_jobs_clip_and_library_voice_are_used_after_a_restart(recording, tmp_path):
    import soundfile as sf

    clip = tmp_path / "alice.wav"
    sf.write(clip, speech(4.0, 400.0), SR)
    deep = tmp_path / "deep.wav"
    sf.write(deep, speech(4.0, 110.0), SR)
    library = VoiceLibrary(tmp_path / "voices")
    library.add("deep", read_clip(deep, deep.name), deep.name)
    jobs = tmp_path / "jobs"
    options = DubOptions(targets=("pt-br",), profile="tone", voices=VoiceOptions(library={"B": "deep"}))
    held = GatedVoice(open_lines=0)

    def save_voices(directory: Path) -> dict[str, Path]:
        directory.mkdir(parents=True)
        return {"A": Path(shutil.copy(clip, directory / "clip-0.wav"))}

    async def before():
        runner = JobRunner(JobStore(jobs), stages(held), PROFILE, Limits(max_running=1), library.root)
        await runner.start()
        await runner.submit(DubOptions(targets=("pt-br",), profile="tone"), copier(recording))  # holds the runner
        queued = await runner.submit(options, copier(recording), save_voices)
        with pytest.raises(BadInput, match="no voice named 'ghost'"):
            await runner.submit(DubOptions(profile="tone", voices=VoiceOptions(library={"A": "ghost"})),
                                copier(recording))
        await runner.close()
        runner.store.close()
        held.gate.set()
        return queued.id

    async def after(job_id):
        runner = JobRunner(JobStore(jobs), stages(voice), PROFILE, Limits(max_running=2), library.root)
        await runner.start()
        assert await settled(runner, job_id) == "done"
        await runner.close()

    voice = ToneVoice()
    job_id = asyncio.run(before())
    assert sorted(p.name for p in (jobs / job_id / "voices").iterdir()) == ["clip-0.wav", "speakers.json"]
    asyncio.run(after(job_id))
    manifest = json.loads((jobs / job_id / "out" / "manifest.json").read_text())
    assert manifest["voices"]["A"]["source"] == "clip" and manifest["voices"]["A"]["clip"] == "clip-0.wav"
    assert manifest["voices"]["B"]["source"] == "library" and manifest["voices"]["B"]["voice"] == "deep"
    assert (jobs / job_id / "voices" / "speakers.json").is_file()  # done: kept, like the rest editing may need
