"""ChatterBox decoding with no shared mutable state: chatterbox's own modules, driven per call.

Why not ``ChatterboxMultilingualTTS.generate`` (chatterbox 0.1.7): it keeps the voice on ``self.conds`` and
casts ``conds.gen`` in place; multilingual ``T3.inference`` builds an ``AlignmentStreamAnalyzer`` per call that
registers forward hooks on three attention layers and never removes them (hooks pile up, and every live hook
records whichever call runs next, so concurrent calls read each other's attention), stores its wrapper on
``t3.patched_model`` and flips the shared config to eager attention; and sampling (T3 tokens, CFM noise, HiFT's
sine phases and noise) draws from torch's global RNG, so a seed means nothing next to other threads.

Here: ``prepare_t3`` runs once, before the model is shared: eager attention (the analyzer needs weights) and one
permanent hook per aligned head that writes only into the buffer of the call running in the current context (a
``ContextVar``; transformers 5 routes its own output capture the same way). Each call gets its own analyzer
(chatterbox's class minus its hook installer), its own KV cache, its own ``torch.Generator``, and copies of the
conditionals. The loop and the two RNG-consuming S3Gen steps mirror chatterbox's code operation for operation,
so with the same seed they reproduce chatterbox's tokens and waveform (tests compare them).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cache
from typing import Any

import torch


@dataclass
class AttentionSink:
    """Where the taps write during the call running in this context: ``attention[slot]`` gets that aligned head's
    weights for ``rows`` of the batch (0: a lone line's conditional row, (T, S); a slice: those rows, (n, T, S))."""

    attention: list
    rows: int | slice = 0


_ATTENTION_SINK: ContextVar[AttentionSink | None] = ContextVar("dubgraph_t3_attention_sink", default=None)


def prepare_t3(t3: Any) -> list[torch.utils.hooks.RemovableHandle]:
    """Make a multilingual T3 safe to share: eager attention + context-routed taps (returns their handles)."""
    if not t3.hp.is_multilingual:
        return []
    from chatterbox.models.t3.inference.alignment_stream_analyzer import LLAMA_ALIGNED_HEADS

    t3.tfmr.config._attn_implementation = "eager"  # sdpa returns no attention weights
    t3.tfmr.config.output_attentions = False  # no transformers capture: the taps read what they need
    return [
        t3.tfmr.layers[layer].self_attn.register_forward_hook(_tap(slot, head))
        for slot, (layer, head) in enumerate(LLAMA_ALIGNED_HEADS)
    ]


def _tap(slot: int, head: int):
    def hook(module, args, output):
        if torch.compiler.is_compiling():  # a compiled step never aligns (DecodeOptions), and a ContextVar breaks it
            return
        sink = _ATTENTION_SINK.get()
        if sink is None:
            return
        if not isinstance(output, tuple) or len(output) < 2 or output[1] is None:
            raise RuntimeError("T3 attention weights missing: the backbone must run eager attention")
        sink.attention[slot] = output[1][sink.rows, head].float().cpu()

    return hook


@contextlib.contextmanager
def attention_sink(sink: AttentionSink | None) -> Iterator[None]:
    """Route the taps of ``prepare_t3`` into ``sink`` for the forwards run inside (this context only)."""
    token = _ATTENTION_SINK.set(sink)
    try:
        yield
    finally:
        _ATTENTION_SINK.reset(token)


@cache
def _analyzer_class() -> type:
    from chatterbox.models.t3.inference.alignment_stream_analyzer import AlignmentStreamAnalyzer

    class PerCallAnalyzer(AlignmentStreamAnalyzer):
        """chatterbox's analyzer without its hook installer (which never removes hooks and edits the config)."""

        def _add_attention_spy(self, tfmr, buffer_idx, layer_idx, head_idx):
            pass

    return PerCallAnalyzer


MIN_ANALYZED_TEXT_TOKENS = 6  # chatterbox's end-of-text checks slice A[:, :-5]: empty, IndexError, below this


def new_analyzer(t3: Any, text_slice: tuple[int, int]) -> Any | None:
    """A fresh per-call alignment analyzer, or None where chatterbox's would crash (texts of <= 5 tokens, e.g.
    "OK" with its language tag and SOT/EOT): those lines are bounded by their token budget alone."""
    if not t3.hp.is_multilingual or text_slice[1] - text_slice[0] < MIN_ANALYZED_TEXT_TOKENS:
        return None
    return _analyzer_class()(t3.tfmr, None, text_tokens_slice=text_slice, alignment_layer_idx=9,
                             eos_idx=t3.hp.stop_speech_token)


@torch.inference_mode()
def sample_speech_tokens(
    t3: Any,
    t3_cond: Any,
    text_tokens: torch.Tensor,
    *,
    generator: torch.Generator,
    max_new_tokens: int,
    temperature: float,
    cfg_weight: float,
    repetition_penalty: float,
    min_p: float,
    top_p: float,
) -> torch.Tensor:
    """T3.inference's loop (chatterbox 0.1.7) for one call. ``text_tokens``: (2, L) with SOT/EOT; returns (1, N)."""
    from transformers.generation.logits_process import (
        MinPLogitsWarper,
        RepetitionPenaltyLogitsProcessor,
        TopPLogitsWarper,
    )

    hp = t3.hp
    device = t3.device
    text_tokens = torch.atleast_2d(text_tokens).to(dtype=torch.long, device=device)
    start = hp.start_speech_token * torch.ones_like(text_tokens[:, :1])
    embeds, len_cond = t3.prepare_input_embeds(
        t3_cond=t3_cond, text_tokens=text_tokens, speech_tokens=start, cfg_weight=cfg_weight
    )
    analyzer = new_analyzer(t3, (len_cond, len_cond + text_tokens.size(-1)))
    bos = torch.tensor([[hp.start_speech_token]], dtype=torch.long, device=device)
    bos_embed = t3.speech_emb(bos) + t3.speech_pos_emb.get_fixed_embedding(0)
    inputs_embeds = torch.cat([embeds, torch.cat([bos_embed, bos_embed])], dim=1)
    generated = bos.clone()
    predicted = []
    repetition = RepetitionPenaltyLogitsProcessor(penalty=float(repetition_penalty))
    min_p_warper = MinPLogitsWarper(min_p=min_p)
    top_p_warper = TopPLogitsWarper(top_p=top_p)
    with attention_sink(AttentionSink(analyzer.last_aligned_attns) if analyzer else None):
        out = t3.tfmr(inputs_embeds=inputs_embeds, past_key_values=None, use_cache=True)
        past = out.past_key_values
        logits_all = t3.speech_head(out.last_hidden_state)
        for i in range(max_new_tokens):
            step = logits_all[:, -1, :]
            cond, uncond = step[0:1, :], step[1:2, :]
            logits = cond + torch.as_tensor(cfg_weight, device=cond.device, dtype=cond.dtype) * (cond - uncond)
            if analyzer is not None:
                logits = analyzer.step(logits, next_token=generated[0, -1].item())
            ids = generated[:1, ...]
            logits = repetition(ids, logits)
            if temperature != 1.0:
                logits = logits / temperature
            logits = top_p_warper(ids, min_p_warper(ids, logits))
            next_token = torch.multinomial(torch.softmax(logits, dim=-1), num_samples=1, generator=generator)
            predicted.append(next_token)
            generated = torch.cat([generated, next_token], dim=1)
            if next_token.view(-1) == hp.stop_speech_token:
                break
            embed = t3.speech_emb(next_token) + t3.speech_pos_emb.get_fixed_embedding(i + 1)
            out = t3.tfmr(inputs_embeds=torch.cat([embed, embed]), past_key_values=past, use_cache=True)
            past = out.past_key_values
            logits_all = t3.speech_head(out.last_hidden_state)
    return torch.cat(predicted, dim=1)


@torch.inference_mode()
def tokens_to_wav(s3gen: Any, speech_tokens: torch.Tensor, ref: dict, generator: torch.Generator,
                  n_timesteps: int | None = None, pace: float = 1.0) -> torch.Tensor:
    """S3Gen.inference for one call: CFM noise and HiFT's source drawn from ``generator``; ``ref`` is not touched.

    Returns the waveform (1, samples) on s3gen's device, spoken ``pace`` times faster (``at_pace``).
    ``n_timesteps``: CFM steps (None: chatterbox's).
    """
    device, dtype = s3gen.device, s3gen.dtype
    ref = {k: v.to(device=device, dtype=dtype) if torch.is_tensor(v) else v for k, v in ref.items()}
    speech_tokens = torch.atleast_2d(speech_tokens).to(device)
    token_len = torch.LongTensor([speech_tokens.size(-1)]).to(device)
    # The upsampling encoder yields 2 mel frames per token (prompt + new); noise of that full length replaces
    # all of CausalConditionalCFM's global-RNG draw (its ``z[..., prompt_len:] = noised_mels`` with prompt_len 0).
    frames = 2 * (ref["prompt_token"].size(-1) + speech_tokens.size(-1))
    noise = torch.randn(1, 80, frames, device=device, dtype=dtype, generator=generator)
    mels, _ = s3gen.flow.inference(
        token=speech_tokens, token_len=token_len, finalize=True, noised_mels=noise,
        n_timesteps=n_timesteps or (2 if s3gen.meanflow else 10), meanflow=s3gen.meanflow, **ref,
    )
    mels = at_pace(mels.to(dtype=dtype), pace)
    hift = s3gen.mel2wav
    f0 = hift.f0_predictor(mels)
    source = hift.f0_upsamp(f0[:, None]).transpose(1, 2)
    source = _harmonic_source(hift.m_source, source, generator).transpose(1, 2)
    return fade_in(s3gen, hift.decode(x=mels, s=source))


def at_pace(mels: torch.Tensor, pace: float) -> torch.Tensor:
    """Mel frames (B, 80, T) resampled in time to be spoken ``pace`` times faster (CosyVoice's ``speed``): the
    words are the same tokens, and HiFT predicts the pitch from each frame, so the pitch is kept."""
    if abs(pace - 1.0) < 1e-3:
        return mels
    return torch.nn.functional.interpolate(mels, size=max(1, round(mels.size(-1) / pace)), mode="linear")


def fade_in(s3gen: Any, wav: torch.Tensor) -> torch.Tensor:
    """S3Gen's start fade (trim_fade), also on clips shorter than the fade, where chatterbox's own slice fails."""
    n = min(wav.size(-1), len(s3gen.trim_fade))
    wav[:, :n] *= s3gen.trim_fade[:n]
    return wav


def _harmonic_source(m_source: Any, f0: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """SourceModuleHnNSF + SineGen (harmonic branch) with ``generator`` for the random phases and noise."""
    sine = m_source.l_sin_gen
    f0 = f0.transpose(1, 2)  # (B, 1, T)
    harmonics = torch.zeros((f0.size(0), sine.harmonic_num + 1, f0.size(-1)), device=f0.device)
    for i in range(sine.harmonic_num + 1):
        harmonics[:, i : i + 1, :] = f0 * (i + 1) / sine.sampling_rate
    theta = 2 * torch.pi * (torch.cumsum(harmonics, dim=-1) % 1)
    shape = (f0.size(0), sine.harmonic_num + 1, 1)
    low, high = torch.tensor(-torch.pi), torch.tensor(torch.pi)  # torch.distributions.Uniform's arithmetic
    phase = low.to(generator.device) + torch.rand(shape, generator=generator, device=generator.device) * (
        high - low
    ).to(generator.device)
    phase = phase.to(f0.device)
    phase[:, 0, :] = 0
    waves = sine.sine_amp * torch.sin(theta + phase)
    uv = (f0 > sine.voiced_threshold).type(torch.float32)
    noise_amp = uv * sine.noise_std + (1 - uv) * sine.sine_amp / 3
    noise = noise_amp * torch.randn(waves.shape, generator=generator, device=waves.device, dtype=waves.dtype)
    waves = (waves * uv + noise).transpose(1, 2)
    return m_source.l_tanh(m_source.l_linear(waves))
