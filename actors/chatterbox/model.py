"""Voice-cloning speech synthesis with ChatterBox multilingual; one instance serves many threads at once.

``prepare`` turns a reference voice into ``VoiceConditionals`` (graph/types.py): chatterbox's conditionals as numpy
arrays, cheap to pickle, put once in Ray's object store and shared by every line of that speaker, storable on disk
without pickle; each call builds chatterbox's tensors from them on the model's device (they are small).
``synthesize`` is stateless: nothing about a call is stored on the instance or the model, so concurrent calls
neither block nor disturb each other, and a seed gives the same waveform bit for bit whatever else runs (see
actors/chatterbox/decode.py for what chatterbox itself shares).

Output length is guarded against runaway generation: at most ``BASE_S + S_PER_TEXT_TOKEN * text tokens``
seconds (``_token_budget``), never more than chatterbox's own 1000 tokens (40 s). Normal speech needs a
quarter of that budget; a line that hits it is cut there and logged. Empty lines return a 0-sample ``Clip``.
The loaded model's watermarker (chatterbox's Perth implicit watermark) is applied to every clip.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from actors.device import pick_device
from actors.models import ModelSpec, load_object, resolve
from graph.errors import BadAudio, BadInput, ModelNotFound
from graph.languages import LANGUAGES
from graph.languages import language as find_language
from graph.types import Clip, VoiceConditionals, voice_for

if TYPE_CHECKING:
    import torch

    from actors.chatterbox.batch_t3 import DecodeOptions, SynthRequest
    from actors.chatterbox.static_t3 import StaticPool

log = logging.getLogger(__name__)

TOKENS_PER_S = 25  # S3 speech tokens per second of audio
BASE_S = 1.0  # budget floor, so "Oi." or "OK" still fit
S_PER_TEXT_TOKEN = 0.3  # ~4x the time a text token (character, jamo, Cangjie code) takes in normal speech
MAX_NEW_TOKENS = 1000  # chatterbox's own cap
REPETITION_PENALTY, MIN_P, TOP_P = 2.0, 0.05, 1.0  # ChatterboxMultilingualTTS.generate's defaults
MIN_REFERENCE_S = 0.5
PACES = (0.25, 4.0)  # speed-ups a line may be vocoded at
PKUSEG_FIX = 'python -c "import spacy_pkuseg; spacy_pkuseg.pkuseg()"'
KIND = "chatterbox"  # VoiceConditionals.kind of what ``prepare`` makes
S3GEN_REF = ("prompt_token", "prompt_token_len", "prompt_feat", "prompt_feat_len", "embedding")  # flow.inference's


def has_speech(text: str) -> bool:
    """Whether a line has anything to say (letters or digits); lines without get 0 samples, no model call."""
    return any(ch.isalnum() for ch in text)


def _token_budget(n_text_tokens: int) -> int:
    return min(MAX_NEW_TOKENS, math.ceil(TOKENS_PER_S * (BASE_S + S_PER_TEXT_TOKEN * n_text_tokens)))


def _numpy(tensor: "torch.Tensor") -> np.ndarray:
    """A numpy copy with the tensor's dtype, owned by the caller (nothing the library keeps is shared)."""
    return tensor.detach().to("cpu").numpy().copy()


class Synthesizer:
    """ChatterBox multilingual behind two stateless calls: ``prepare`` (a voice) and ``synthesize`` (a line)."""

    def __init__(self, spec: ModelSpec, profile: str = "full", device: str | None = None):
        from chatterbox.mtl_tts import SUPPORTED_LANGUAGES

        from actors.chatterbox.batch_t3 import DecodeOptions
        from actors.chatterbox.decode import prepare_t3
        from actors.chatterbox.static_t3 import GpuGate

        location = resolve(spec, profile).location
        self.model_name = spec.name
        self._device = pick_device(device)
        started = time.perf_counter()
        self._model = self._load(spec, profile, location)
        self._taps = prepare_t3(self._model.t3)
        self._warm_shared_caches()
        self._text_lock = threading.Lock()
        self._gate = GpuGate()  # every GPU call shares it; a CUDA graph capture takes it alone
        self._decode: DecodeOptions = DecodeOptions()
        self._pool: StaticPool | None = None
        self._voiced = False  # once a line is voiced, the weights' precision is fixed
        self._supported = tuple(c for c, lang in LANGUAGES.items() if lang.chatterbox in SUPPORTED_LANGUAGES)
        self.sample_rate: int = self._model.sr
        log.info("loaded %s from %s on %s in %.1f s", spec.name, location, self._device, time.perf_counter() - started)

    def _load(self, spec: ModelSpec, profile: str, location: str) -> Any:
        if spec.loader:
            return load_object(spec.loader)(location, self._device)
        from chatterbox.mtl_tts import ChatterboxMultilingualTTS

        try:
            return ChatterboxMultilingualTTS.from_local(location, self._device)
        except OSError as exc:  # a missing file, or the tokenizer's first-use download of pkuseg's model offline
            fix = f"{spec.fix}; chatterbox's tokenizer also needs pkuseg's model once: run `{PKUSEG_FIX}` online"
            raise ModelNotFound(spec.name, profile, fix, [f"{location} ({exc})"]) from exc

    @property
    def device(self) -> Any:
        return self._device

    @property
    def decode(self) -> "DecodeOptions":
        return self._decode

    def configure_decode(self, options: "DecodeOptions", max_batch: int = 1) -> None:
        """Decode this way from now on: T3 and the S3Gen estimator cast to the options' dtypes (in place, before
        the first line only: a cast under a running decode would corrupt it), static caches budgeted for
        ``max_batch`` lines. A batch size whose cache cannot fit is refused, leaving the previous options in force."""
        import torch

        from actors.chatterbox.static_t3 import StaticPool, cache_budget

        t3, estimator = self._model.t3, self._model.s3gen.flow.decoder.estimator
        changes = t3.speech_head.weight.dtype != options.torch_dtype or estimator.dtype != options.s3gen_torch_dtype
        if changes and self._voiced:
            raise BadInput("the decode precision (dtype, s3gen_dtype) is fixed once the synthesizer has voiced a "
                           "line: restart it to change them")
        if options.graph == "cuda" and not str(self._device).startswith("cuda"):
            raise BadInput(f"decode graph 'cuda' needs a CUDA device; this synthesizer runs on {self._device}")
        pool = None
        if options.static_cache:
            pool = StaticPool(t3, cache_budget(options.cache_gb, self._device), options.graph, self._gate,
                              options.torch_dtype)
            pool.check_fits(max_batch)
        if changes:
            with self._gate.exclusive(), torch.inference_mode():
                t3.to(options.torch_dtype)
                estimator.to(options.s3gen_torch_dtype)
            log.info("decoding with T3 in %s, S3Gen estimator in %s", options.dtype, options.s3gen_dtype)
        if pool is not None and self._pool is not None and (self._pool.mode, self._pool.budget_bytes) == (
                pool.mode, pool.budget_bytes):
            pool = self._pool  # keep the buckets and graphs already made
        self._decode, self._pool = options, pool

    def _warm_shared_caches(self) -> None:
        """Fill the caches chatterbox fills lazily on first use, before any concurrent call can race on them."""
        import torch
        from chatterbox.models.s3gen.transformer.embedding import EspnetRelPositionalEncoding
        from chatterbox.models.s3gen.utils.mel import mel_spectrogram

        s3gen = self._model.s3gen
        probe = torch.zeros(1, 1, device=self._device, dtype=s3gen.dtype)
        for module in s3gen.modules():
            if isinstance(module, EspnetRelPositionalEncoding):
                module.extend_pe(probe)  # moves its (non-buffer) table to the model's device/dtype once
        mel_spectrogram(torch.zeros(1, 4800, device=self._device))  # module-level mel basis / window per device

    def prepare(self, reference: np.ndarray, sr: int) -> VoiceConditionals:
        """A voice from a mono reference at any rate, as plain arrays.

        What ``prepare_conditionals`` computes (the first 10 s for S3Gen, 6 s for T3's speech prompt), but
        returned instead of stored on the model: ``arrays`` holds T3's "t3.speaker_emb" and
        "t3.cond_prompt_speech_tokens" (when the model uses a speech prompt) and every tensor of S3Gen's reference
        dict as "gen.<key>", dtypes kept; its entries that are not tensors (None) are in ``meta`` as "gen.<key>".
        No emotion: ``synthesize`` sets its own.
        """
        import librosa
        import torch
        from chatterbox.models.s3gen import S3GEN_SR
        from chatterbox.models.s3tokenizer import S3_SR

        wav = np.asarray(reference, dtype=np.float32)
        if wav.ndim != 1:
            raise BadAudio(f"the reference voice must be mono, shape (samples,); got shape {wav.shape}")
        if sr <= 0 or wav.size < MIN_REFERENCE_S * sr:
            raise BadAudio(
                f"the reference voice must be at least {MIN_REFERENCE_S} s long (got {wav.size} samples at {sr} Hz)"
            )
        if not np.isfinite(wav).all() or np.abs(wav).max() < 1e-4:
            raise BadAudio("the reference voice is silent or not finite; pick a segment where the speaker talks")
        model = self._model
        with self._gate.shared(), torch.inference_mode():
            ref_24k = wav if sr == S3GEN_SR else librosa.resample(wav, orig_sr=sr, target_sr=S3GEN_SR)
            ref_16k = librosa.resample(ref_24k, orig_sr=S3GEN_SR, target_sr=S3_SR)
            gen = model.s3gen.embed_ref(ref_24k[: model.DEC_COND_LEN], S3GEN_SR, device=self._device)
            prompt = None
            if plen := model.t3.hp.speech_cond_prompt_len:
                prompt, _ = model.s3gen.tokenizer.forward([ref_16k[: model.ENC_COND_LEN]], max_len=plen)
                prompt = torch.atleast_2d(prompt)
            speaker = torch.from_numpy(model.ve.embeds_from_wavs([ref_16k], sample_rate=S3_SR))
            speaker = speaker.mean(axis=0, keepdim=True)
            arrays = {"t3.speaker_emb": _numpy(speaker)}
            if prompt is not None:
                arrays["t3.cond_prompt_speech_tokens"] = _numpy(prompt)
            arrays.update({f"gen.{key}": _numpy(value) for key, value in gen.items() if torch.is_tensor(value)})
        meta = {f"gen.{key}": value for key, value in gen.items() if not torch.is_tensor(value)}
        return VoiceConditionals(KIND, self.model_name, arrays, meta)

    def synthesize(
        self,
        text: str,
        language: str,
        conditionals: VoiceConditionals,
        seed: int = 0,
        exaggeration: float = 0.5,
        cfg_weight: float = 0.5,
        temperature: float = 0.8,
        pace: float = 1.0,
    ) -> Clip:
        """One line in the voice of ``conditionals``; ``language`` is a dubgraph code ("pt-br").

        ``pace``: how much faster than its natural pace the line is spoken (the same speech tokens, vocoded
        from time-resampled mel frames: decode.at_pace). Text with nothing to say (empty, whitespace or
        punctuation only) returns a Clip of 0 samples.
        """
        import torch

        from actors.chatterbox.decode import sample_speech_tokens, tokens_to_wav

        started = time.perf_counter()
        voice = self._voice(conditionals)
        text_tokens = self._line_tokens(text, language, temperature, pace)
        if text_tokens is None:
            return self._silence()
        model = self._model
        budget = self._budget(text_tokens, text)
        text_tokens = text_tokens.repeat(2, 1)  # conditional + unconditional rows for CFG
        generator = torch.Generator(device=self._device).manual_seed(seed)
        self._voiced = True
        with self._gate.shared(), torch.inference_mode():
            tokens = sample_speech_tokens(
                model.t3, self._t3_cond(voice, exaggeration), text_tokens, generator=generator,
                max_new_tokens=budget, temperature=temperature, cfg_weight=cfg_weight,
                repetition_penalty=REPETITION_PENALTY, min_p=MIN_P, top_p=TOP_P,
            )
            tokens = self._speech_tokens(tokens, budget, text)
            if tokens.numel() == 0:
                return self._silence()
            clip = self._clip(tokens_to_wav(model.s3gen, tokens, self._s3gen_ref(voice), generator,
                                            self._decode.s3gen_steps, pace))
        log.debug("synthesized %d tokens (%.2f s) in %.2f s", tokens.numel(), clip.duration_s,
                  time.perf_counter() - started)
        return clip

    def _line_tokens(self, text: str, language: str, temperature: float, pace: float = 1.0) -> "torch.Tensor | None":
        """(1, L) text tokens with T3's start/stop tokens on the model's device; None when there is nothing to say."""
        import torch.nn.functional as F
        from chatterbox.mtl_tts import punc_norm

        language_id = self._language_id(language)
        if not has_speech(text):
            return None
        if not temperature > 0:
            raise BadInput(f"temperature must be > 0, got {temperature}")
        if not PACES[0] <= pace <= PACES[1]:
            raise BadInput(f"pace must be between {PACES[0]} and {PACES[1]}, got {pace}")
        hp = self._model.t3.hp
        with self._text_lock:  # chatterbox's ja/he/ru/zh helpers are lazily created module globals
            text_tokens = self._model.tokenizer.text_to_tokens(punc_norm(text), language_id=language_id)
        if text_tokens.size(-1) > hp.max_text_tokens:
            raise BadInput(f"line too long for ChatterBox ({text_tokens.size(-1)} text tokens > {hp.max_text_tokens})")
        text_tokens = F.pad(text_tokens.to(self._device), (1, 0), value=hp.start_text_token)
        return F.pad(text_tokens, (0, 1), value=hp.stop_text_token)

    def _voice(self, conditionals: Any) -> VoiceConditionals:
        """``conditionals`` if this synthesizer can voice lines from it, else BadInput saying what to do."""
        conditionals = voice_for(KIND, conditionals)
        missing = {"t3.speaker_emb"} | {f"gen.{key}" for key in S3GEN_REF}
        missing -= conditionals.arrays.keys() | conditionals.meta.keys()
        if missing:
            raise BadInput(f"voice conditionals from {conditionals.model} lack {', '.join(sorted(missing))}; "
                           "prepare the voice again")
        return conditionals

    def _tensor(self, array: np.ndarray) -> "torch.Tensor":
        """A tensor of the array's dtype on the model's device (a copy: Ray hands actors read-only arrays)."""
        import torch

        return torch.tensor(array, device=self._device)

    def _budget(self, text_tokens: "torch.Tensor", text: str) -> int:
        """Speech tokens a line may take (``text_tokens`` with SOT/EOT)."""
        return _token_budget(text_tokens.size(-1) - 2)

    def _t3_cond(self, voice: VoiceConditionals, exaggeration: float) -> Any:
        """A fresh T3Cond per call (T3 caches the prompt embedding on it) with this call's emotion."""
        import torch
        from chatterbox.models.t3.modules.cond_enc import T3Cond

        prompt = voice.arrays.get("t3.cond_prompt_speech_tokens")
        return T3Cond(
            speaker_emb=self._tensor(voice.arrays["t3.speaker_emb"]),
            cond_prompt_speech_tokens=None if prompt is None else self._tensor(prompt),
            emotion_adv=exaggeration * torch.ones(1, 1, 1),
        ).to(device=self._device, dtype=self._model.t3.speech_head.weight.dtype)

    def _s3gen_ref(self, voice: VoiceConditionals) -> dict[str, Any]:
        """S3Gen's reference dict as ``embed_ref`` made it, for one call, tensors on the model's device."""
        ref = {key[4:]: value for key, value in voice.meta.items() if key.startswith("gen.")}
        ref.update({key[4:]: self._tensor(array) for key, array in voice.arrays.items() if key.startswith("gen.")})
        return ref

    def _speech_tokens(self, tokens: "torch.Tensor", budget: int, text: str) -> "torch.Tensor":
        """T3's (1, N) output as S3Gen's input: SOS/EOS and ids S3Gen has no embedding for dropped; cut lines logged."""
        from chatterbox.models.s3tokenizer import SPEECH_VOCAB_SIZE, drop_invalid_tokens

        if tokens.size(-1) >= budget and tokens[0, -1] != self._model.t3.hp.stop_speech_token:
            log.warning("no end of speech within %d tokens (%.1f s) for %r: cut there",
                        budget, budget / TOKENS_PER_S, text)
        tokens = drop_invalid_tokens(tokens[0])
        tokens = tokens[tokens < SPEECH_VOCAB_SIZE]  # S3Gen's own filter: ids it has no embedding for
        if tokens.numel() == 0:
            log.warning("no speech tokens for %r", text)
        return tokens

    def _clip(self, wav: "torch.Tensor") -> Clip:
        """S3Gen's (1, samples) waveform, watermarked, as a Clip."""
        samples = self._watermark(wav.squeeze(0).cpu().numpy())
        return Clip(np.ascontiguousarray(samples, dtype=np.float32), self.sample_rate)

    def _silence(self) -> Clip:
        return Clip(np.zeros(0, dtype=np.float32), self.sample_rate)

    def _watermark(self, wav: np.ndarray) -> np.ndarray:
        """The model's watermark; clips under 50 ms are padded for it (Perth's STFT rejects ~30 ms inputs)."""
        minimum = self.sample_rate // 20
        padded = np.pad(wav, (0, max(0, minimum - len(wav))))
        return self._model.watermarker.apply_watermark(padded, sample_rate=self.sample_rate)[: len(wav)]

    def _language_id(self, code: str) -> str:
        return find_language(code, self._supported).chatterbox

    def synthesize_batch(
        self,
        requests: "list[SynthRequest]",
        cancelled: Callable[[int], bool] | None = None,
    ) -> list[Clip]:
        """Many lines (any voices, languages, jobs) in one batched T3 decode and batched S3Gen (batch_t3.py), decoded
        as ``configure_decode`` set.

        With the ``exact`` options each request gets ``synthesize``'s clip for the same arguments: the same speech
        tokens with the same seed (batched rounding aside) and its waveform to float tolerance. A request for which
        ``cancelled(index)`` turns true leaves the decode at the next step and gets 0 samples. Invalid input raises
        for the whole call.
        """
        import torch

        from actors.chatterbox.batch_t3 import T3Line, sample_speech_tokens_batch, tokens_to_wav_batch

        clips = [self._silence() for _ in requests]
        lines, index = [], []
        for i, request in enumerate(requests):
            voice = self._voice(request.conditionals)
            text_tokens = self._line_tokens(request.text, request.language, request.temperature, request.pace)
            if text_tokens is None:
                continue
            generator = torch.Generator(device=self._device).manual_seed(request.seed)
            lines.append(T3Line(
                self._t3_cond(voice, request.exaggeration), text_tokens, generator,
                self._budget(text_tokens, request.text), request.cfg_weight, request.temperature, request.seed,
            ))
            index.append(i)
        dropped = (lambda k: False) if cancelled is None else (lambda k: cancelled(index[k]))
        options = self._decode
        started = time.perf_counter()
        self._voiced = True
        with self._gate.shared(), torch.inference_mode():
            speech = sample_speech_tokens_batch(
                self._model.t3, lines, repetition_penalty=REPETITION_PENALTY, min_p=MIN_P, top_p=TOP_P,
                options=options, cancelled=dropped, pool=self._pool,
            )
            keep = [k for k in range(len(lines)) if not dropped(k)]
            speech = {k: self._speech_tokens(speech[k], lines[k].max_new_tokens, requests[index[k]].text) for k in keep}
            keep = [k for k in keep if speech[k].numel()]
            wavs = tokens_to_wav_batch(self._model.s3gen, [speech[k] for k in keep],
                                       [self._s3gen_ref(requests[index[k]].conditionals) for k in keep],
                                       [lines[k].generator for k in keep], max_batch=options.s3gen_batch,
                                       max_padding=options.s3gen_padding, n_timesteps=options.s3gen_steps,
                                       paces=[requests[index[k]].pace for k in keep])
        for k, wav in zip(keep, wavs):
            clips[index[k]] = self._clip(wav)
        log.debug("synthesized %d lines (%.2f s of audio) in %.2f s", len(keep), sum(c.duration_s for c in clips),
                  time.perf_counter() - started)
        return clips
