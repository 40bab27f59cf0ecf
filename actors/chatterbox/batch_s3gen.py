"""S3Gen for many lines at once, each with its own reference: ``decode.tokens_to_wav`` batched.

The flow (conformer encoder + CFM decoder, ~95 % of S3Gen's time on a GPU) runs over lines sorted by length and cut
into batches whose lengths differ by at most ``max_padding`` (padded frames cost what real ones cost: on a 1-thread
CPU, 8 lines of 25-150 tokens took 5.3 s padded into one batch, 4.1 s bucketed at 10 %, 3.8-4.1 s one by one);
the HiFT vocoder runs over lines of equal mel length, unpadded. Per row, everything a lone
line has is kept: its prompt tokens then its tokens then padding, its prompt mel, CFM noise drawn from the line's
generator at the line's own length, its output slice, and HiFT's random phases / noise from the same generator.

Padding cannot reach a line's frames, with one exception fixed here: chatterbox's encoder runs its pre-lookahead
conv over padded frames that its input layer has made non-zero, where a lone line's conv reads zeros; ``_encode`` is
``UpsampleConformerEncoder.forward`` plus a multiply that zeroes them. The rest is masked attention, causal convs
and per-frame layers. HiFT's convs are not causal, hence no padding there.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from actors.chatterbox.decode import _harmonic_source, at_pace, fade_in


@torch.inference_mode()
def tokens_to_wav_batch(
    s3gen: Any,
    speech_tokens: Sequence[torch.Tensor],
    refs: Sequence[dict],
    generators: Sequence[torch.Generator],
    *,
    max_batch: int = 32,
    max_padding: float = 0.1,
    n_timesteps: int | None = None,
    paces: Sequence[float] | None = None,
) -> list[torch.Tensor]:
    """Waveforms (1, samples) on s3gen's device: each line's ``tokens_to_wav`` (at its pace) to float rounding.

    The CFM estimator runs in its own dtype (chatterbox casts its inputs to it: a bf16 estimator is the GPU speed
    switch, set by the synthesizer); ``n_timesteps`` overrides chatterbox's CFM steps (fewer trade quality for speed).
    """
    device, dtype = s3gen.device, s3gen.dtype
    refs = [{k: v.to(device=device) if torch.is_tensor(v) else v for k, v in ref.items()} for ref in refs]
    steps = n_timesteps or (2 if s3gen.meanflow else 10)
    sizes = [ref["prompt_token"].size(-1) + tokens.size(-1) for tokens, ref in zip(speech_tokens, refs)]
    mels: list[torch.Tensor] = [torch.empty(0)] * len(sizes)
    for chunk in buckets(sizes, max_batch, max_padding):
        out = _flow(s3gen, [speech_tokens[j] for j in chunk], [refs[j] for j in chunk],
                    [generators[j] for j in chunk], steps)
        for j, mel in zip(chunk, out):
            mels[j] = at_pace(mel.to(dtype=dtype), paces[j] if paces else 1.0)
    same_length: dict[int, list[int]] = defaultdict(list)
    for j, mel in enumerate(mels):
        same_length[mel.size(-1)].append(j)
    wavs: list[torch.Tensor] = [torch.empty(0)] * len(sizes)
    for group in same_length.values():
        for start in range(0, len(group), max_batch):
            chunk = group[start : start + max_batch]
            out = _vocode(s3gen, torch.cat([mels[j] for j in chunk]), [generators[j] for j in chunk])
            for j, wav in zip(chunk, out):
                wavs[j] = wav
    return wavs


def buckets(sizes: Sequence[int], max_batch: int, max_padding: float) -> list[list[int]]:
    """Indices of ``sizes`` in length order, cut into runs of at most ``max_batch`` whose longest is at most
    ``1 + max_padding`` times their shortest: padded frames cost as much as real ones."""
    chunks: list[list[int]] = []
    for i in sorted(range(len(sizes)), key=sizes.__getitem__):
        if chunks and len(chunks[-1]) < max_batch and sizes[i] <= (1 + max_padding) * sizes[chunks[-1][0]]:
            chunks[-1].append(i)
        else:
            chunks.append([i])
    return chunks


def _flow(s3gen: Any, tokens: list[torch.Tensor], refs: list[dict], generators: list[torch.Generator],
          steps: int) -> list[torch.Tensor]:
    """``CausalMaskedDiffWithXvec.inference`` (finalize=True) with a prompt, a noise and an output slice per row."""
    from chatterbox.models.s3gen.utils.mask import make_pad_mask

    flow, device, dtype = s3gen.flow, s3gen.device, s3gen.dtype
    rows = [torch.cat([ref["prompt_token"].view(-1).long(), t.view(-1).to(device)]) for t, ref in zip(tokens, refs)]
    lengths = torch.tensor([row.numel() for row in rows], device=device)
    embedding = torch.cat([F.normalize(torch.atleast_2d(ref["embedding"].to(dtype)), dim=1) for ref in refs])
    embedding = flow.spk_embed_affine_layer(embedding)
    mask = (~make_pad_mask(lengths)).unsqueeze(-1).to(embedding)
    token = flow.input_embedding(torch.nn.utils.rnn.pad_sequence(rows, batch_first=True)) * mask
    h, h_masks = _encode(flow.encoder, token, lengths)
    h_lengths = h_masks.sum(dim=-1).squeeze(dim=-1)
    h = flow.encoder_proj(h)
    batch, frames = h.shape[:2]
    conds = torch.zeros([batch, frames, flow.output_size], device=device, dtype=h.dtype)
    noise = torch.zeros([batch, 80, frames], device=device, dtype=dtype)
    for r, (ref, generator) in enumerate(zip(refs, generators)):
        conds[r, : ref["prompt_feat"].size(1)] = ref["prompt_feat"][0].to(h.dtype)
        noise[r, :, : 2 * rows[r].numel()] = torch.randn(1, 80, 2 * rows[r].numel(), device=device, dtype=dtype,
                                                         generator=generator)[0]
    mask = (~make_pad_mask(h_lengths, frames)).unsqueeze(1).to(h)
    feat, _ = flow.decoder(mu=h.transpose(1, 2).contiguous(), mask=mask, spks=embedding,
                           cond=conds.transpose(1, 2), n_timesteps=steps, noised_mels=noise, meanflow=s3gen.meanflow)
    ends = h_lengths.tolist()
    return [feat[r : r + 1, :, ref["prompt_feat"].size(1) : int(ends[r])] for r, ref in enumerate(refs)]


def _encode(encoder: Any, xs: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``UpsampleConformerEncoder.forward`` (full context), padded frames zeroed before the pre-lookahead conv."""
    from chatterbox.models.s3gen.utils.mask import add_optional_chunk_mask, make_pad_mask

    masks = ~make_pad_mask(lengths, xs.size(1)).unsqueeze(1)
    if encoder.global_cmvn is not None:
        xs = encoder.global_cmvn(xs)
    xs, pos_emb, masks = encoder.embed(xs, masks)
    chunk_masks = add_optional_chunk_mask(xs, masks, encoder.use_dynamic_chunk, encoder.use_dynamic_left_chunk, 0,
                                          encoder.static_chunk_size, -1)
    xs = encoder.pre_lookahead_layer(xs * masks.transpose(1, 2))
    xs = encoder.forward_layers(xs, chunk_masks, pos_emb, masks)
    xs, lengths = encoder.up_layer(xs.transpose(1, 2).contiguous(), lengths)
    xs = xs.transpose(1, 2).contiguous()
    masks = ~make_pad_mask(lengths, xs.size(1)).unsqueeze(1)
    xs, pos_emb, masks = encoder.up_embed(xs, masks)
    chunk_masks = add_optional_chunk_mask(xs, masks, encoder.use_dynamic_chunk, encoder.use_dynamic_left_chunk, 0,
                                          encoder.static_chunk_size * encoder.up_layer.stride, -1)
    xs = encoder.forward_up_layers(xs, chunk_masks, pos_emb, masks)
    if encoder.normalize_before:
        xs = encoder.after_norm(xs)
    return xs, masks


def _vocode(s3gen: Any, mels: torch.Tensor, generators: list[torch.Generator]) -> list[torch.Tensor]:
    """HiFT over mels of one length, each row's source from its own generator; chatterbox's fade-in applied."""
    hift = s3gen.mel2wav
    f0 = hift.f0_predictor(mels)
    source = hift.f0_upsamp(f0[:, None]).transpose(1, 2)
    source = torch.cat([_harmonic_source(hift.m_source, source[r : r + 1], g) for r, g in enumerate(generators)])
    return list(fade_in(s3gen, hift.decode(x=mels, s=source.transpose(1, 2))).split(1))

