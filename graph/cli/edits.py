"""`dubgraph lines|edit|render OUT_DIR` and the dub's `--translation`/`--no-edits` flags: editing a dub's lines in
its output directory and rendering it again (graph/run/editing.py)."""

from __future__ import annotations

import json
from pathlib import Path

from graph.errors import BadInput
from graph.options import DubOptions, from_dict

COMMANDS = ("lines", "edit", "render")


def add_dub_flags(dub) -> None:
    dub.add_argument("--translation", action="append", default=[], metavar="LANG=FILE",
                     help="a target language's translation of the transcript (SRT/WebVTT, cue for cue), used instead "
                          "of machine translation; repeat per language")
    dub.add_argument("--no-edits", action="store_true",
                     help="do not keep OUT/.dubgraph/ (the line state and checkpoint `dubgraph edit` and `dubgraph "
                          "render` need)")


def add_commands(sub) -> None:
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


def translations(given: list[str]) -> dict[str, str]:
    """["pt-br=talk.pt-br.srt", ...] -> {"pt-br": "talk.pt-br.srt"}; BadInput for anything else."""
    found = {}
    for item in given:
        lang, sep, path = item.partition("=")
        if not sep or not lang.strip() or not path.strip():
            raise BadInput(f"--translation takes LANG=FILE (e.g. pt-br=talk.pt-br.srt), got {item!r}")
        found[lang.strip().lower()] = path.strip()
    return found


def run(args) -> int:
    return {"lines": _lines, "edit": _edit, "render": _render}[args.command](args)


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
