"""A backfill's DubOptions: an --options file, with the command line's media flags on top (no Ray)."""

from graph.backfill.job import _options, _parser
from graph.options import VideoOptions


def test_media_flags_go_over_the_options_file(tmp_path):
    options_file = tmp_path / "options.yaml"
    options_file.write_text("video: {original: true}\nformats: [wav, video]\n")
    base = ["--input", "x", "--to", "pt-br", "--out", str(tmp_path / "out"), "--options", str(options_file)]
    options = _options(_parser().parse_args(base))
    assert options.video == VideoOptions(combined=True, original=True) and options.formats == ("wav", "video")
    assert (options.background, options.separation, options.audio_track) == (False, True, 0)
    flags = ["--video-per-language", "--background", "--no-separation", "--audio-track", "1", "--formats", "mkv"]
    options = _options(_parser().parse_args(base + flags))
    assert options.video == VideoOptions(combined=False, original=True) and options.formats == ("mkv",)
    assert (options.background, options.separation, options.audio_track) == (True, False, 1)
