"""`dubgraph`: dub a file on a local or existing Ray cluster, edit its lines and render it again, list the models of
a profile, keep the voice library."""

from __future__ import annotations

import argparse
import gc
import logging
import sys
from pathlib import Path

from graph.cli import edits, voices, warm
from graph.errors import BadInput, DubError
from graph.languages import parse_targets
from graph.options import (
    AUDIO_FORMATS,
    FORMATS,
    SAME_CONTAINER,
    DubOptions,
    add_media_flags,
    from_dict,
    media_options,
)

DEFAULT_FORMATS = ",".join(AUDIO_FORMATS + (SAME_CONTAINER,))
FORMATS_HELP = (f"outputs to write, comma-separated (default: {DEFAULT_FORMATS}): wav, flac, srt, vtt per language; "
                "mp4, mov, mkv, webm: the input's video copied with the dubbed audio and subtitle tracks; video: the "
                "input's own container (nothing for audio input)")

log = logging.getLogger("dubgraph")
TIMING_FLAGS = ("max_stretch", "max_preroll_s", "max_shift_s", "max_rate", "min_stretch")

OWN_LOGGERS = ("graph", "actors", "dubgraph")  # what -v turns to DEBUG; libraries (numba, ray, ...) stay at WARNING


class _Parser(argparse.ArgumentParser):
    """A bad flag is one ``error:`` line and exit code 2, like every other bad input (not usage plus a message)."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="dubgraph",
        description="Multi-speaker speech-to-speech dubbing: every speaker in their own voice, every line in place.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging of dubgraph itself")
    sub = parser.add_subparsers(dest="command", required=True)

    dub = sub.add_parser("dub", help="dub one recording into one or more languages")
    dub.add_argument("input", help="audio or video file (anything ffmpeg reads)")
    dub.add_argument("--to", required=True, help="target languages, comma-separated (e.g. pt-br,es)")
    warm.add_actor_flags(dub)
    dub.add_argument("--out", help="output directory (default: ./dubbed/<input name>)")
    dub.add_argument("--speakers", type=int, help="exact number of speakers, when known")
    dub.add_argument("--min-speakers", type=int, help="at least this many speakers")
    dub.add_argument("--max-speakers", type=int, help="at most this many speakers")
    dub.add_argument("--source-language", help="language spoken in the input (default: detected)")
    dub.add_argument("--transcript", help="SRT/WebVTT of what is said, instead of speech recognition; cues naming "
                                          "their speaker ([Alice] ... or <v Alice>...) also skip diarization")
    edits.add_dub_flags(dub)
    dub.add_argument("--formats", default=DEFAULT_FORMATS, help=FORMATS_HELP)
    add_media_flags(dub)
    dub.add_argument("--seed", type=int, default=0,
                     help="synthesis seed: the same seed gives the same dub (full profile: ChatterBox samples each "
                          "line with a seed hashed from it; the offline espeak-ng voice has no randomness and "
                          "ignores it)")
    dub.add_argument("--address", help="Ray cluster to use ('auto' = the `dubgraph up` head with its warm actors, "
                                       "else a local `ray start --head`); default: embedded")
    dub.add_argument("--resume-dir", help="keep finished stages and lines here, so a rerun resumes")
    timing = dub.add_argument_group("timing", "bounds of the remedies for lines longer than their slot, in the order "
                                              "they are tried (see README, Timing)")
    timing.add_argument("--max-stretch", type=float, metavar="RATE", help="speed-up allowed before silence is used (default 1.3)")
    timing.add_argument("--max-preroll", type=float, dest="max_preroll_s", metavar="S",
                        help="seconds a line may start early, into silence (default 0.2)")
    timing.add_argument("--max-shift", type=float, dest="max_shift_s", metavar="S",
                        help="seconds the next lines may be pushed later (default 0.3)")
    timing.add_argument("--max-rate", type=float, metavar="RATE", help="hard bound on speed-up before a cut (default 2.0)")
    timing.add_argument("--min-stretch", type=float, metavar="RATE",
                        help="slow lines shorter than their slot down to this rate (default 1 = never)")
    voices.add_dub_flags(dub)
    edits.add_commands(sub)

    models = sub.add_parser("models", help="list the models of a profile and where they were found")
    models.add_argument("--profile", default="offline", help="offline (default) or full")
    voices.add_commands(sub)
    warm.add_parsers(sub)
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
    from graph.run.pools import dub_file
    from graph.run.startup import Startup, process_started

    startup = Startup(process_started())
    profile = get_profile(args.profile)
    options = _options(args, profile)
    out_dir = Path(args.out) if args.out else Path("dubbed") / Path(args.input).stem
    try:
        with ProgressBars() as bars:
            result = dub_file(
                args.input,
                out_dir,
                options,
                profile,
                address=args.address,
                progress=bars.update,
                replicas=warm.replicas(args),
                checkpoint_dir=args.resume_dir,
                transcript=args.transcript,
                translations=edits.translations(args.translation),
                edits=not args.no_edits,
                references=voices.pairs(args.voice, "--voice"),
                library=voices.library(args).root,
                startup=startup,
            )
    finally:
        if args.verbose:
            print(startup.text(), file=sys.stderr)
    print(f"dubbed {args.input} ({result.duration_s:.1f} s, {len(result.speakers)} speakers, from {result.source_language})")
    for lang, output in result.outputs.items():
        for fmt, name in output.files.items():
            print(f"  {lang} {fmt:<5} {out_dir / name}")
    for fmt, name in result.videos.items():
        print(f"  video {fmt:<5} {out_dir / name} (every language)")
    print(f"  manifest   {result.manifest}")
    return 0


def _options(args, profile) -> DubOptions:
    """DubOptions from the flags, checked (types and ranges) like any other input: BadInput when out of range."""
    from graph.media.settings import read_mapping

    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    if not formats:
        raise BadInput(f"--formats needs at least one of {', '.join(FORMATS)}")
    return from_dict(DubOptions, {
        "targets": list(parse_targets(args.to, profile.targets)),
        "profile": profile.name,
        "asr": {"language": args.source_language},
        "diarize": {"num_speakers": args.speakers, "min_speakers": args.min_speakers, "max_speakers": args.max_speakers},
        "tts": {"seed": args.seed},
        "timing": {name: value for name in TIMING_FLAGS if (value := getattr(args, name)) is not None},
        "formats": formats,
        **media_options(args),
        "voices": {"library": voices.pairs(args.library_voice, "--library-voice"), "match": args.match_voices,
                   "match_threshold": args.match_threshold},
        "glossary": read_mapping(args.glossary, "--glossary") if args.glossary else {},
    })  # fmt: skip


def configure_logging(verbose: bool) -> None:
    """WARNING for everything; with ``verbose``, DEBUG for dubgraph's own loggers only."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for name in OWN_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.NOTSET)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    configure_logging(args.verbose)
    try:
        if getattr(args, "handler", None):
            return args.handler(args)
        if args.command == "voices":
            return voices.run(args)
        if args.command in edits.COMMANDS:
            return edits.run(args)
        return _models(args) if args.command == "models" else _dub(args)
    except DubError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def run() -> None:
    """The `dubgraph` command: ``main``, then exit without Python's collection of every object at exit.

    A dub leaves ~2,600 modules (Ray, numpy, scipy, librosa, numba) and their objects; the interpreter's last
    garbage collections walk all of them, ~1 s on 2 cores, measured after every warm dub. Frozen, they are left to
    the process's end (atexit handlers, Ray's shutdown among them, still run)."""
    code = main()
    gc.freeze()
    sys.exit(code)
