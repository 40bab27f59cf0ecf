"""The HTTP API's artifact names, media types and links for video outputs (no Serve needed)."""

import pytest

from graph.errors import JobNotFound
from graph.jobs.http import artifact, links


def test_video_artifacts_are_served_with_their_media_types(tmp_path):
    for name in ("pt-br.mp4", "dubbed.mkv", "es.webm", "dubbed.mov", "pt-br.wav", "manifest.json"):
        (tmp_path / name).write_bytes(b"x")
    types = {name: artifact(tmp_path, name)[1] for name in ("pt-br.mp4", "dubbed.mkv", "es.webm", "dubbed.mov")}
    assert types == {"pt-br.mp4": "video/mp4", "dubbed.mkv": "video/x-matroska", "es.webm": "video/webm",
                     "dubbed.mov": "video/quicktime"}
    with pytest.raises(JobNotFound, match="dubbed.mp4"):
        artifact(tmp_path, "all.avi")
    with pytest.raises(JobNotFound, match="this job has no dubbed.mp4"):
        artifact(tmp_path, "dubbed.mp4")


def test_links_are_the_files_the_manifest_lists(tmp_path):
    manifest = {"languages": {"pt-br": {"files": {"wav": "pt-br.wav", "mp4": "pt-br.mp4"}}},
                "video": {"files": {"mkv": "dubbed.mkv"}}}
    got = links("/root", "abc", manifest, tmp_path)
    assert got == {"manifest": "/root/v1/dubs/abc/manifest.json",
                   "languages": {"pt-br": {"wav": "/root/v1/dubs/abc/pt-br.wav", "mp4": "/root/v1/dubs/abc/pt-br.mp4"}},
                   "video": {"mkv": "/root/v1/dubs/abc/dubbed.mkv"}}
    assert links("", "abc", {"languages": {}, "video": None}, tmp_path)["video"] == {}
    (tmp_path / "original.flac").write_bytes(b"fLaC")
    assert links("", "abc", manifest, tmp_path)["original"] == "/v1/dubs/abc/original.flac"
