"""Who spoke when without the hub: Silero VAD finds speech, Resemblyzer d-vectors tell voices apart.

Speech regions are cut into short overlapping windows; each window gets a d-vector (Resemblyzer's GE2E encoder).
Windows with enough speech are clustered: average-linkage agglomerative clustering on cosine distance picks the
number of speakers (clusters further apart than ``threshold`` and holding at least ``min_speaker_s`` of speech),
then k-means on the unit vectors, seeded with those clusters, settles the partition (average linkage alone
isolates odd windows). Every window takes its nearest speaker, and neighbouring windows of one speaker merge
into turns. ``embed`` gives one clip's d-vector from the same encoder, for matching speakers to library voices.
Tuned on pyannote's bundled sample.wav (2 speakers, 30 s: DER 15.9 %); the speaker count was also
right on six 8-38 s clips cut and joined from it and from two AISHELL clips (1 to 3 speakers). Long recordings
are not validated: outlier windows can add a spurious small speaker, which a ``num_speakers`` hint prevents.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import numpy as np

from actors.device import pick_device
from actors.diarizer import normalise_turns
from actors.models import ModelSpec, load_object, resolve
from graph.audio import SAMPLE_RATE, resample
from graph.errors import BadAudio
from graph.options import DiarizeOptions
from graph.types import SpeakerEmbedding, SpeakerTurn

log = logging.getLogger(__name__)

MEL_FPS = 100  # Resemblyzer's mel frames per second (10 ms step)


@dataclass(frozen=True)
class ClusterSettings:
    """Tuning knobs; ``ModelSpec.options`` may override any of them."""

    window_s: float = 1.5  # d-vector window (Resemblyzer's own partials are 1.6 s)
    hop_s: float = 0.75
    min_window_speech_s: float = 1.0  # windows with less speech are labelled but do not shape the clusters
    threshold: float = 0.30  # average-linkage cosine distance above which clusters are different speakers
    min_speaker_s: float = 2.0  # a cluster with less speech is not counted as a speaker of its own
    merge_gap_s: float = 0.3  # one speaker's turns closer than this become one turn
    vad_threshold: float = 0.5
    max_speakers: int = 20  # when not hinted
    max_linkage_windows: int = 4000  # longer inputs: the speaker count comes from every n-th window
    batch_size: int = 64
    # Cosine similarity of two clips' d-vectors above which they are one speaker (library matching). Measured:
    # espeak voices, same voice 0.93-0.96 vs different voices <= 0.82; pyannote's sample.wav, 1.5-7 s turns of
    # two women, same 0.76-0.92 vs different 0.67-0.83. Set high: a wrong voice is worse than none.
    match_threshold: float = 0.85
    min_embed_speech_s: float = 1.0


@dataclass(frozen=True)
class _Window:
    center_s: float
    start_s: float  # the span this window labels (half-way to its neighbours, within its speech region)
    end_s: float
    speech_s: float  # speech inside the window


def load_models(location: str, device: str):
    """(Silero VAD, Resemblyzer VoiceEncoder), both from the weights their PyPI packages ship.

    The VAD is Silero's batched "sequence" ONNX export: same probabilities as the streaming model, but a few
    ONNX calls instead of one torch call per 32 ms frame (which crawls when torch runs more than one thread).
    """
    import torch

    threads = torch.get_num_threads()
    from resemblyzer import VoiceEncoder
    from silero_vad import load_silero_vad  # importing it sets torch's threads to 1 for the whole process

    torch.set_num_threads(threads)
    return load_silero_vad(sequence=True), VoiceEncoder(device=device, verbose=False)


class VoiceClusterDiarizer:
    """Silero VAD + Resemblyzer + clustering; a ``loader`` must return the (vad, encoder) pair."""

    def __init__(self, spec: ModelSpec, profile: str = "offline", device: str | None = None):
        self.spec = spec
        self.location = resolve(spec, profile).location
        self.device = pick_device(device)
        self.vad, self.encoder = load_object(spec.loader or f"{__name__}:load_models")(self.location, self.device)
        self.settings = replace(ClusterSettings(), **spec.options)
        from resemblyzer import wav_to_mel_spectrogram

        wav_to_mel_spectrogram(np.zeros(SAMPLE_RATE, dtype=np.float32))  # librosa's numba JIT runs now, not mid-job
        two = [_Window(0.75, 0.0, 1.5, 1.5), _Window(2.25, 1.5, 3.0, 1.5)]
        self._cluster(np.eye(2, 256, dtype=np.float32), two, DiarizeOptions())  # and clustering's imports (scipy,
        # sklearn, pandas) and first k-means: ~1 s that a warm actor's first job paid (measured: 1.27 s, then 0.3 s)
        log.info("diarizer %s loaded on %s", spec.name, self.device)

    def diarize(self, audio: np.ndarray, options: DiarizeOptions = DiarizeOptions()) -> list[SpeakerTurn]:
        """Mono float32 at 16 kHz -> non-overlapping speaker turns (none for silence)."""
        audio = np.ascontiguousarray(audio, dtype=np.float32)
        windows = self._windows(self._speech(audio))
        if not windows:
            return []
        embeddings = self._embed(audio, windows)
        labels = self._cluster(embeddings, windows, options)
        return normalise_turns(self._merge(windows, labels))

    def embed(self, samples: np.ndarray, sr: int) -> SpeakerEmbedding:
        """One clip's voice as Resemblyzer's d-vector: the mean of its 1.6 s partials after Resemblyzer's own
        preprocessing (volume normalised, long silences cut), unit length."""
        from resemblyzer import preprocess_wav

        wav = resample(np.asarray(samples, dtype=np.float32), sr, SAMPLE_RATE)
        if not wav.size or float(np.max(np.abs(wav))) < 1e-4:  # Resemblyzer's volume normalisation divides by it
            raise BadAudio("the clip is silent: there is no voice to embed")
        wav = preprocess_wav(wav)
        if len(wav) < self.settings.min_embed_speech_s * SAMPLE_RATE:
            raise BadAudio(f"the clip holds {len(wav) / SAMPLE_RATE:.1f} s of speech; at least "
                           f"{self.settings.min_embed_speech_s:g} s is needed to tell whose voice it is")
        vector = np.asarray(self.encoder.embed_utterance(wav), dtype=np.float32)
        return SpeakerEmbedding(self.spec.name, vector / np.linalg.norm(vector), self.settings.match_threshold)

    def _speech(self, audio: np.ndarray) -> list[tuple[float, float]]:
        from silero_vad import get_speech_timestamps_sequence

        if len(audio) < SAMPLE_RATE // 10:
            return []
        regions = get_speech_timestamps_sequence(
            audio, self.vad, threshold=self.settings.vad_threshold, sampling_rate=SAMPLE_RATE
        )
        return [(r["start"] / SAMPLE_RATE, r["end"] / SAMPLE_RATE) for r in regions]

    def _windows(self, regions: list[tuple[float, float]]) -> list[_Window]:
        """Evenly spaced windows over each region; a region shorter than a window gets one, centred on it."""
        size, hop = self.settings.window_s, self.settings.hop_s
        windows = []
        for start, end in regions:
            count = 1 if end - start <= size else int(np.ceil((end - start - size) / hop)) + 1
            centers = [(start + end) / 2] if count == 1 else np.linspace(start + size / 2, end - size / 2, count)
            for i, center in enumerate(centers):
                lo = start if i == 0 else (centers[i - 1] + center) / 2
                hi = end if i == count - 1 else (centers[i + 1] + center) / 2
                speech = min(end, center + size / 2) - max(start, center - size / 2)
                windows.append(_Window(float(center), float(lo), float(hi), float(speech)))
        return windows

    def _embed(self, audio: np.ndarray, windows: list[_Window]) -> np.ndarray:
        """One unit-length d-vector per window, in batches."""
        import torch
        from resemblyzer import normalize_volume, wav_to_mel_spectrogram

        mel = wav_to_mel_spectrogram(normalize_volume(audio, -30, increase_only=True))
        frames = int(round(self.settings.window_s * MEL_FPS))
        if len(mel) < frames:
            mel = np.pad(mel, ((0, frames - len(mel)), (0, 0)))
        firsts = [
            min(max(0, int(round((w.center_s - self.settings.window_s / 2) * MEL_FPS))), len(mel) - frames)
            for w in windows
        ]
        batches = []
        with torch.inference_mode():
            for i in range(0, len(firsts), self.settings.batch_size):
                mels = np.stack([mel[f : f + frames] for f in firsts[i : i + self.settings.batch_size]])
                batches.append(self.encoder(torch.from_numpy(mels).to(self.encoder.device)).cpu().numpy())
        embeddings = np.concatenate(batches)
        return embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-8)

    def _cluster(self, embeddings: np.ndarray, windows: list[_Window], options: DiarizeOptions) -> np.ndarray:
        """A speaker index per window."""
        from scipy.cluster.hierarchy import fcluster, linkage
        from sklearn.cluster import KMeans

        settings = self.settings
        core = np.array([w.speech_s >= settings.min_window_speech_s for w in windows])
        if core.sum() < 2:
            core[:] = True
        points = embeddings[core]
        if len(points) < 2:
            return np.zeros(len(windows), dtype=int)
        spans = np.array([w.end_s - w.start_s for w in windows])[core]
        stride = -(-len(points) // settings.max_linkage_windows)  # linkage memory grows with the square
        tree_points, tree_spans = points[::stride], spans[::stride] * stride
        tree = linkage(tree_points, method="average", metric="cosine")
        clusters = fcluster(tree, settings.threshold, criterion="distance")
        if options.num_speakers:
            k = options.num_speakers
        else:
            speech = np.bincount(clusters, weights=tree_spans)
            k = max(1, int((speech >= settings.min_speaker_s).sum()))
            k = min(max(k, options.min_speakers or 1), options.max_speakers or settings.max_speakers)
        k = min(k, len(tree_points))
        if clusters.max() < k:
            clusters = fcluster(tree, k, criterion="maxclust")
        k = min(k, int(clusters.max()))
        seeds = np.argsort(-np.bincount(clusters, weights=tree_spans)[1:])[:k] + 1  # fcluster numbers from 1
        centroids = np.stack([tree_points[clusters == c].mean(axis=0) for c in seeds])
        kmeans = KMeans(n_clusters=k, init=centroids, n_init=1).fit(points)
        centers = kmeans.cluster_centers_ / np.linalg.norm(kmeans.cluster_centers_, axis=1, keepdims=True)
        return np.argmax(embeddings @ centers.T, axis=1)

    def _merge(self, windows: list[_Window], labels: np.ndarray) -> list[tuple[float, float, int]]:
        turns: list[list] = []
        for window, label in zip(windows, labels.tolist(), strict=True):
            last = turns[-1] if turns else None
            if last and last[2] == label and window.start_s - last[1] <= self.settings.merge_gap_s:
                last[1] = window.end_s
            else:
                turns.append([window.start_s, window.end_s, label])
        return [tuple(t) for t in turns]
