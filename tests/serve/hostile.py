"""Hostile requests for the fuzz test of the live app (tests/serve/test_app.py): files built here, raw sockets for
what an HTTP client library will not send (a Content-Length that lies, a body trickling in). Loopback only."""

from __future__ import annotations

import random
import socket
import struct
import subprocess
import threading
from pathlib import Path

SR = 16_000
READ_TIMEOUT_S = 60.0


def noise(seed: int, size: int) -> bytes:
    """Random bytes, the same every run (random data can look like an mp3 frame now and then: not this one)."""
    return random.Random(seed).randbytes(size)


def wav_declaring(hours: float, seconds_present: float = 1.0) -> bytes:
    """A 16-bit mono WAV whose header declares ``hours`` of audio, followed by only ``seconds_present`` of it."""
    declared = int(hours * 3600 * SR) * 2
    fmt = struct.pack("<HHIIHH", 1, 1, SR, SR * 2, 2, 16)
    header = b"RIFF" + struct.pack("<I", 36 + declared) + b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt
    return header + b"data" + struct.pack("<I", declared) + noise(1, int(seconds_present * SR) * 2)


def playlist(target: Path) -> bytes:
    """An HLS playlist pointing at a file on the server."""
    return f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n{target}\n#EXT-X-ENDLIST\n".encode()


def many_channels(path: Path, channels: int = 10, sr: int = 192_000, seconds: float = 1.0) -> bytes:
    """A ``channels``-channel ``sr`` WAV of a tone (ffmpeg has no downmix layout past 7.1)."""
    labels = "".join(f"[a{i}]" for i in range(channels))
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"sine=frequency=300:duration={seconds}:sample_rate={sr}", "-filter_complex",
                    f"[0]asplit={channels}{labels};{labels}amerge=inputs={channels}", "-c:a", "pcm_s16le", str(path)],
                   check=True, capture_output=True)  # fmt: skip
    return path.read_bytes()


def as_mp3(source: Path, path: Path) -> bytes:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(source), "-c:a", "libmp3lame", "-b:a", "48k",
                    str(path)], check=True, capture_output=True)  # fmt: skip
    return path.read_bytes()


def nested_json(depth: int) -> bytes:
    return b'{"texts": ' + b"[" * depth + b"]" * depth + b', "target": "pt-br"}'


def raw_post(port: int, path: str, headers: dict[str, str], first: bytes, trickle: bytes = b"",
             pace_s: float = 0.2) -> int:
    """POST with hand-written headers and ``first`` bytes of body, then ``trickle`` one byte every ``pace_s`` until
    the server answers; returns the status code (0 when the connection closed without one)."""
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    answered = threading.Event()
    with socket.create_connection(("127.0.0.1", port), timeout=READ_TIMEOUT_S) as sock:
        sock.sendall(head.encode() + b"\r\n" + first)

        def slowly() -> None:
            for byte in trickle:
                if answered.wait(pace_s):
                    return
                try:
                    sock.sendall(bytes([byte]))
                except OSError:
                    return

        sender = threading.Thread(target=slowly, daemon=True)
        sender.start()
        try:
            reply = sock.recv(4096)
        finally:
            answered.set()
            sender.join(timeout=READ_TIMEOUT_S)
    return int(reply.split(b" ", 2)[1]) if reply.startswith(b"HTTP/") else 0


def multipart_head(boundary: str, name: str = "a.wav") -> bytes:
    return (f"--{boundary}\r\nContent-Disposition: form-data; name=\"targets\"\r\n\r\npt-br\r\n--{boundary}\r\n"
            f"Content-Disposition: form-data; name=\"audio\"; filename=\"{name}\"\r\n"
            "Content-Type: audio/wav\r\n\r\n").encode()  # fmt: skip
