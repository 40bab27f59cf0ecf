"""`dubgraph`: dub a file on a local or existing Ray cluster, list the models of a profile, keep the voice library."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from graph.cli import voices
from graph.errors import DubError
from graph.languages import parse_targets
from graph.options import DECODE_PRESETS, AsrOptions, DiarizeOptions, DubOptions, TtsOptions, VoiceOptions

log = logging.getLogger("dubgraph")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dubgraph",
        description="Multi-speaker speech-to-speech dubbing: every speaker in their own voice, every line in place.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    dub = sub.add_parser("dub", help="dub one recording into one or more languages")
    dub.add_argument("input", help="audio or video file (anything ffmpeg reads)")
    dub.add_argument("--to", required=True, help="target languages, comma-separated (e.g. pt-br,es)")
    dub.add_argument("--profile", default="offline", help="model profile: offline (default) or full")
    dub.add_argument("--out", help="output directory (default: ./dubbed/<input name>)")
    dub.add_argument("--speakers", type=int, help="exact number of speakers, when known")
    dub.add_argument("--min-speakers", type=int, help="at least this many speakers")
    dub.add_argument("--max-speakers", type=int, help="at most this many speakers")
    dub.add_argument("--source-language", help="language spoken in the input (default: detected)")
    dub.add_argument("--transcript", help="SRT/WebVTT of what is said, instead of speech recognition; cues naming "
                                          "their speaker ([Alice] ... or <v Alice>...) also skip diarization")
    dub.add_argument("--formats", default="wav,flac,srt,vtt", help="outputs to write (default: wav,flac,srt,vtt)")
    dub.add_argument("--background", action="store_true", help="mix the source's non-speech background under the dub")
    dub.add_argument("--seed", type=int, default=0, help="synthesis seed (same seed, same output)")
    dub.add_argument("--address", help="Ray cluster to use ('auto' = a local `ray start --head`); default: embedded")
    dub.add_argument("--synth-replicas", type=int, default=1, help="synthesizer actors (default 1)")
    dub.add_argument("--batch-lines", type=int, default=None,
                     help="lines each synthesizer decodes together (full profile; default: 64 on a GPU, 1 = one by "
                          "one on a CPU)")
    dub.add_argument("--decode", choices=DECODE_PRESETS, default="auto",
                     help="synthesizer decode: fast (bf16, static cache, CUDA graph), exact (fp32, chatterbox's "
                          "loop), auto = fast on a GPU (default)")
    dub.add_argument("--resume-dir", help="keep finished stages and lines here, so a rerun resumes")
    voices.add_dub_flags(dub)

    models = sub.add_parser("models", help="list the models of a profile and where they were found")
    models.add_argument("--profile", default="offline", help="offline (default) or full")
    voices.add_commands(sub)
    return parser


def _models(args) -> int:
    from actors.models import check, get_profile

    profile = get_profile(args.profile)
    missing = 0
    print(f"profile {profile.name}: {profile.description}")
    for spec, found in check(profile):
        if isinstance(found, DubError):
            missing += 1
            print(f"  MISSING {spec.role:<12} {spec.name}\n          {found}")
        else:
            print(f"  ok      {spec.role:<12} {spec.name}  [{found.how}] {found.location}")
    print(f"sources: {', '.join(profile.sources)}\ntargets: {', '.join(profile.targets)}")
    return 1 if missing else 0


def _dub(args) -> int:
    from actors.models import get_profile
    from graph.cli.progress import ProgressBars
    from graph.media.settings import read_glossary
    from graph.options import GlossaryOptions
    from graph.run.pools import Replicas, dub_file

    profile = get_profile(args.profile)
    options = DubOptions(
        targets=parse_targets(args.to, profile.targets),
        profile=profile.name,
        asr=AsrOptions(language=args.source_language),
        diarize=DiarizeOptions(num_speakers=args.speakers, min_speakers=args.min_speakers, max_speakers=args.max_speakers),
        tts=TtsOptions(seed=args.seed),
        formats=tuple(f.strip() for f in args.formats.split(",") if f.strip()),
        background=args.background,
        voices=VoiceOptions(library=voices.pairs(args.library_voice, "--library-voice"), match=args.match_voices,
                            match_threshold=args.match_threshold),
        glossary=read_glossary(args.glossary) if args.glossary else GlossaryOptions(),
    )
    out_dir = Path(args.out) if args.out else Path("dubbed") / Path(args.input).stem
    with ProgressBars() as bars:
        result = dub_file(
            args.input,
            out_dir,
            options,
            profile,
            address=args.address,
            progress=bars.update,
            replicas=Replicas(synthesizer=args.synth_replicas, synth_batch=args.batch_lines, synth_decode=args.decode),
            checkpoint_dir=args.resume_dir,
            transcript=args.transcript,
            references=voices.pairs(args.voice, "--voice"),
            library=voices.library(args).root,
        )
    print(f"dubbed {args.input} ({result.duration_s:.1f} s, {len(result.speakers)} speakers, from {result.source_language})")
    for lang, output in result.outputs.items():
        for fmt, name in output.files.items():
            print(f"  {lang} {fmt:<5} {out_dir / name}")
    print(f"  manifest   {result.manifest}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "voices":
            return voices.run(args)
        return _models(args) if args.command == "models" else _dub(args)
    except DubError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130

