"""What ffmpeg may do with a file dubgraph did not make: read it as one local file, through a container demuxer.

``-protocol_whitelist file,pipe`` keeps ffmpeg off the network and off devices; ``-format_whitelist`` limits it to
the demuxers of audio/video containers, so a playlist (HLS/M3U), a concat list, an SDP or DASH manifest or an
image2 pattern, which make ffmpeg open other files or streams, fails to open whatever the installed ffmpeg
allows by default. Text playlists are recognised before ffmpeg runs, for a message that names them.
"""

from __future__ import annotations

from pathlib import Path

from graph.errors import BadAudio

MAX_CHANNELS = 64  # more is no recording of people talking
STANDARD_CHANNELS = 8  # up to 7.1 ffmpeg knows the layout and downmixes by it; beyond, channels are averaged
PROTOCOLS = "file,pipe"
# Demuxers of audio/video containers; none of them opens another file or stream (hls, concat, dash, sdp, ... do).
CONTAINERS = ("wav", "w64", "flac", "mp3", "ogg", "mov", "matroska", "aac", "loas", "aiff", "caf", "au", "avi",
              "asf", "mpegts", "mpeg", "amr", "ac3", "eac3", "dts", "truehd", "wv", "ape", "tta", "flv", "mxf")  # fmt: skip
INDIRECTIONS = {  # how text files that point at other media begin -> what they are
    b"#extm3u": "an M3U/HLS playlist",
    b"#extinf": "an M3U playlist",
    b"ffconcat": "an ffconcat list",
    b"file ": "a concat list",
    b"[playlist]": "a PLS playlist",
    b"<?xml": "an XML document (a DASH manifest or a SMIL/XSPF playlist)",
    b"<mpd": "a DASH manifest",
    b"<smil": "a SMIL playlist",
    b"v=0": "an SDP session description",
}


def input_options() -> list[str]:
    """Before ``-i``: only the local file itself, through a container demuxer (see the module docstring)."""
    return ["-protocol_whitelist", PROTOCOLS, "-format_whitelist", ",".join(CONTAINERS)]


def to_mono(channels: int) -> list[str]:
    """Known layouts downmix by their layout (``-ac 1``); more channels than 7.1 have none: average them."""
    if channels <= STANDARD_CHANNELS:
        return ["-ac", "1"]
    return ["-af", "pan=mono|c0=" + "+".join(f"{1 / channels:.6g}*c{i}" for i in range(channels))]


def refuse_indirections(path: Path, accepted: str) -> None:
    """BadAudio for a text playlist or list of other media, named, before ffmpeg sees it."""
    with open(path, "rb") as f:
        head = f.read(512).lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    for start, what in INDIRECTIONS.items():
        if head.startswith(start):
            raise BadAudio(f"{path} is {what}, not audio: files that point at other files or streams are refused. "
                           f"Send the audio itself ({accepted}).")  # fmt: skip
