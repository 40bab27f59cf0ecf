"""`dubgraph`: dub a file on a local or existing Ray cluster, edit its lines and render it again, and list the
models of a profile."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from graph.errors import BadInput, DubError
from graph.languages import parse_targets
from graph.options import (
    AUDIO_FORMATS,
    DECODE_PRESETS,
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
    dub.add_argument("--translation", action="append", default=[], metavar="LANG=FILE",
                     help="a target language's translation of the transcript (SRT/WebVTT, cue for cue), used instead "
                          "of machine translation; repeat per language")
    dub.add_argument("--no-edits", action="store_true",
                     help="do not keep OUT/.dubgraph/ (the line state and checkpoint `dubgraph edit` and `dubgraph "
                          "render` need)")
    dub.add_argument("--formats", default=DEFAULT_FORMATS, help=FORMATS_HELP)
    add_media_flags(dub)
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

    lines = sub.add_parser("lines", help="list the lines of a dub (ids, speakers, texts, revisions)")
    lines.add_argument("out_dir", help="the dub's output directory")
    lines.add_argument("--lang", help="target language (default: the first)")
    lines.add_argument("--json", action="store_true", help="print the lines as JSON (as GET /v1/dubs/ID/lines)")

    edit = sub.add_parser("edit", help="edit lines of a dub (heard after `dubgraph render`)")
    edit.add_argument("out_dir", help="the dub's output directory")
    edit.add_argument("--line", help="the line's id (u0003; `dubgraph lines OUT_DIR` lists them)")
    edit.add_argument("--file", help="a JSON list of edits, each {\"id\": ..., fields as below}, applied all or none")
    edit.add_argument("--lang", help="the language of --text (default: the first target)")
    edit.add_argument("--text", help="what the line says in --lang, instead of machine translation")
    edit.add_argument("--source-text", help="the source line; translated again at the next render")
    edit.add_argument("--speaker", help="re-voice the line with this speaker's voice")
    edit.add_argument("--start", type=float, metavar="S", help="the line's slot in the source: start (seconds)")
    edit.add_argument("--end", type=float, metavar="S", help="... and end (seconds)")
    lock = edit.add_mutually_exclusive_group()
    lock.add_argument("--lock", action="store_true", help="never regenerate the line")
    lock.add_argument("--unlock", action="store_true")
    edit.add_argument("--if-match", type=int, metavar="REV", help="only if the line is still at this revision")

    render = sub.add_parser("render", help="regenerate what the edits of a dub made stale, write its files again")
    render.add_argument("out_dir", help="the dub's output directory")
    render.add_argument("--address", help="Ray cluster to use ('auto' = a local `ray start --head`); default: embedded")
    render.add_argument("--synth-replicas", type=int, default=1, help="synthesizer actors (default 1)")

    models = sub.add_parser("models", help="list the models of a profile and where they were found")
    models.add_argument("--profile", default="offline", help="offline (default) or full")
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
    from graph.run.pools import Replicas, dub_file

    profile = get_profile(args.profile)
    options = from_dict(DubOptions, {
        "targets": parse_targets(args.to, profile.targets),
        "profile": profile.name,
        "asr": {"language": args.source_language},
        "diarize": {"num_speakers": args.speakers, "min_speakers": args.min_speakers, "max_speakers": args.max_speakers},
        "tts": {"seed": args.seed},
        "timing": {name: value for name in TIMING_FLAGS if (value := getattr(args, name)) is not None},
        "formats": [f.strip() for f in args.formats.split(",") if f.strip()],
        **media_options(args),
    })
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
            translations=_translations(args.translation),
            edits=not args.no_edits,
        )
    print(f"dubbed {args.input} ({result.duration_s:.1f} s, {len(result.speakers)} speakers, from {result.source_language})")
    for lang, output in result.outputs.items():
        for fmt, name in output.files.items():
            print(f"  {lang} {fmt:<5} {out_dir / name}")
    for fmt, name in result.videos.items():
        print(f"  video {fmt:<5} {out_dir / name} (every language)")
    print(f"  manifest   {result.manifest}")
    return 0


def _translations(given: list[str]) -> dict[str, str]:
    found = {}
    for item in given:
        lang, sep, path = item.partition("=")
        if not sep or not lang.strip() or not path.strip():
            raise BadInput(f"--translation takes LANG=FILE (e.g. pt-br=talk.pt-br.srt), got {item!r}")
        found[lang.strip().lower()] = path.strip()
    return found


def _lines(args) -> int:
    from graph.run.editing import lines_of

    listed = lines_of(args.out_dir, args.lang)
    if args.json:
        print(json.dumps(listed, indent=2, ensure_ascii=False))
        return 0
    print(f"revision {listed['revision']}, {listed['language']}, speakers: {', '.join(listed['speakers'])}")
    for line in listed["lines"]:
        marks = "".join((" locked" if line["locked"] else "", " stale" if line["stale"] else ""))
        print(f"{line['id']} r{line['revision']}{marks} {line['speaker']} {line['source_start_s']:.2f}-"
              f"{line['source_end_s']:.2f} s: {line['source_text']}\n      -> {line['text']}")
    return 0


def _edit(args) -> int:
    from graph.run.editing import edit_lines, edits_from_file

    given = {"lang": args.lang, "text": args.text, "source_text": args.source_text, "speaker": args.speaker,
             "start_s": args.start, "end_s": args.end, "locked": True if args.lock else False if args.unlock else None}
    body = {key: value for key, value in given.items() if value is not None}
    if args.file:
        if args.line or body or args.if_match is not None:
            raise BadInput("give either --file or --line with the fields to change, not both")
        edits = edits_from_file(args.file)
    elif not args.line:
        raise BadInput("say which line to edit (--line ID) or give a file of edits (--file)")
    elif not set(body) - {"lang"}:
        raise BadInput("nothing to change: give --text, --source-text, --speaker, --start/--end, --lock or --unlock")
    else:
        edits = [{"id": args.line, **body, **({"if_match": args.if_match} if args.if_match is not None else {})}]
    for line in edit_lines(args.out_dir, edits):
        print(f"{line.id} revision {line.revision}{' (stale)' if line.stale else ''}")
    print(f"run `dubgraph render {args.out_dir}` to hear the changes")
    return 0


def _render(args) -> int:
    from actors.models import get_profile
    from graph.cli.progress import ProgressBars
    from graph.options import DubOptions
    from graph.run.editing import render_dir, state_file
    from graph.run.pools import Replicas

    options = from_dict(DubOptions, state_file(args.out_dir).load().job["options"])
    with ProgressBars() as bars:
        rendered = render_dir(args.out_dir, get_profile(options.profile), args.address, bars.update,
                              Replicas(synthesizer=args.synth_replicas))
    if not rendered.changed:
        print(f"nothing to render: {args.out_dir} is at revision {rendered.revision}")
        return 0
    counts = ", ".join(f"{lang}: {len(ids)} line(s)" for lang, ids in rendered.regenerated.items())
    print(f"rendered revision {rendered.revision} ({counts} regenerated)")
    for lang, output in rendered.outputs.items():
        for fmt, name in output.files.items():
            print(f"  {lang} {fmt:<5} {Path(args.out_dir) / name}")
    print(f"  manifest   {rendered.manifest}")
    return 0


COMMANDS = {"models": _models, "dub": _dub, "lines": _lines, "edit": _edit, "render": _render}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return COMMANDS[args.command](args)
    except DubError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130

