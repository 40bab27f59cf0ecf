"""Audio at the edge: decode anything ffmpeg reads into mono float32, resample, write.

Every stage after this one receives numpy arrays, never paths or file-like objects.
"""

from __future__ import annotations

SAMPLE_RATE = 16_000  # analysis rate: ASR, diarization, reference selection
