"""`dubgraph voices add|list|remove`: the voice library from the command line, and the dub flags that use it."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from graph.errors import BadInput
from graph.media.library import VoiceLibrary, default_dir
from graph.media.voice_clip import MAX_CLIP_S, MIN_CLIP_S, read_clip

LIBRARY_HELP = "voice library directory (default: $DUBGRAPH_VOICES, else ~/.local/share/dubgraph/voices)"


def add_commands(sub) -> None:
    voices = sub.add_parser("voices", help="the voice library: named voices kept across jobs")
    actions = voices.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help=f"add a voice from a {MIN_CLIP_S:g}-{MAX_CLIP_S:g} s clip of one person")
    add.add_argument("name", help="the voice's name (letters, digits, _ - .)")
    add.add_argument("clip", help="audio file of the person talking alone (anything ffmpeg reads)")
    add.add_argument("--replace", action="store_true", help="replace a voice of the same name")
    listing = actions.add_parser("list", help="list the voices")
    listing.add_argument("--json", action="store_true", help="print JSON")
    remove = actions.add_parser("remove", help="remove a voice")
    remove.add_argument("name")
    for parser in (add, listing, remove):
        parser.add_argument("--voices", help=LIBRARY_HELP)


def add_dub_flags(dub) -> None:
    dub.add_argument("--voice", action="append", default=[], metavar="SPEAKER=FILE",
                     help="a reference clip for one speaker instead of one picked from the input (repeatable), "
                          "e.g. SPEAKER_00=alice.wav")
    dub.add_argument("--library-voice", action="append", default=[], metavar="SPEAKER=NAME",
                     help="give one speaker a voice of the voice library (repeatable), e.g. SPEAKER_01=bob")
    dub.add_argument("--match-voices", action="store_true",
                     help="give every other speaker the closest library voice, when close enough")
    dub.add_argument("--match-threshold", type=float,
                     help="cosine similarity a match needs (default: the embedding model's own)")
    dub.add_argument("--voices", help=LIBRARY_HELP)
    dub.add_argument("--glossary", help="JSON or YAML glossary: terms (language -> {source: target}), keep (list), "
                                        "pronounce (language -> {word: respelling})")


def pairs(values: list[str], flag: str) -> dict[str, str]:
    """["SPEAKER_00=alice.wav", ...] -> {"SPEAKER_00": "alice.wav"}; BadInput for anything else."""
    out = {}
    for value in values:
        speaker, sep, target = value.partition("=")
        if not sep or not speaker.strip() or not target.strip():
            raise BadInput(f"{flag} takes SPEAKER=VALUE (e.g. SPEAKER_00=...), got {value!r}")
        out[speaker.strip()] = target.strip()
    return out


def library(args) -> VoiceLibrary:
    return VoiceLibrary(args.voices or default_dir())


def run(args) -> int:
    shelf = library(args)
    if args.action == "add":
        voice = shelf.add(args.name, read_clip(args.clip, args.clip), args.clip, replace_existing=args.replace)
        print(f"added voice {voice.name} ({voice.duration_s:.1f} s at {voice.sr} Hz) to {shelf.root}")
    elif args.action == "remove":
        shelf.remove(args.name)
        print(f"removed voice {args.name} from {shelf.root}")
    elif args.json:
        print(json.dumps([v.to_json() for v in shelf.voices()], indent=2))
    else:
        voices = shelf.voices()
        print(f"{len(voices)} voice(s) in {shelf.root}")
        for v in voices:
            added = datetime.fromtimestamp(v.added_s, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
            prepared = ", ".join(v.prepared) or "not yet"
            print(f"  {v.name:<24} {v.duration_s:5.1f} s  {v.source}  added {added}  prepared for: {prepared}")
    return 0

