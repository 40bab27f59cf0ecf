"""Tables of a benchmark run (Markdown), printed and appended to bench/RESULTS.md."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.measure import Run

RESULTS = Path(__file__).with_name("RESULTS.md")


@dataclass(frozen=True)
class Row:
    scenario: str
    languages: int
    input_s: float
    baseline: Run | None  # None: the graph alone (replica sweeps)
    graph: Run
    synth: str = "1"  # synthesizer shape: actors x lines each ("2 x 1 line(s)", "1 x batch 128")

    @property
    def speedup(self) -> float | None:
        return self.baseline.wall_s / self.graph.wall_s if self.baseline else None


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def _pair(base: str | None, graph: str) -> str:
    return f"{base if base is not None else '–'} → {graph}"


def _errors(run: Run | None) -> str:
    return f"{run.quality.mean_ms:,.0f} / {run.quality.max_ms:,.0f}" if run else "–"


def main_table(rows: list[Row]) -> str:
    header = ["scenario", "synthesizers", "lines x langs", "input s", "baseline s", "graph s", "speedup",
              "dub s per wall s", "peak RSS sum MB", "peak PSS sum MB", "conditionals computed",
              "onset err ms from audio, baseline (mean / max)", "onset err ms from audio, graph (mean / max)",
              "out/in duration", "lines flagged / cut (graph)"]
    body = []
    for r in rows:
        b, g = r.baseline, r.graph
        body.append([
            r.scenario, r.synth, f"{g.lines} x {r.languages}", f"{r.input_s:.1f}",
            f"{b.wall_s:.1f}" if b else "–", f"{g.wall_s:.1f}", f"**{r.speedup:.2f}x**" if r.speedup else "–",
            _pair(f"{b.dub_per_s:.2f}" if b else None, f"{g.dub_per_s:.2f}"),
            _pair(f"{b.peak_rss_mb:,.0f}" if b else None, f"{g.peak_rss_mb:,.0f}"),
            _pair(f"{b.peak_pss_mb:,.0f}" if b else None, f"{g.peak_pss_mb:,.0f}"),
            _pair(str(b.conditionals) if b else None, str(g.conditionals)),
            _errors(b), _errors(g),
            _pair(f"{b.quality.output_over_input:.3f}" if b else None, f"{g.quality.output_over_input:.3f}"),
            f"{g.quality.flagged} / {g.quality.cut}",
        ])
    return _table(header, body)


def _sum(stage_s: dict[str, float], prefix: str) -> float:
    return sum(v for k, v in stage_s.items() if k == prefix or k.startswith(prefix + ":"))


def _max(stage_s: dict[str, float], prefix: str) -> float:
    return max((v for k, v in stage_s.items() if k == prefix or k.startswith(prefix + ":")), default=0.0)


def _parts(busy: dict[str, float]) -> str:
    return " / ".join(f"{busy.get(k, 0.0):.1f}" for k in ("conditionals", "t3", "s3gen"))


def split_table(rows: list[Row]) -> str:
    header = ["scenario", "synthesizers", "baseline ASR+diar+transl s", "baseline generate s (conds / T3 / S3Gen)",
              "graph ASR", "diarize", "voices", "translate", "synthesize", "render",
              "graph synth busy s (conds / T3 / S3Gen)"]
    body = []
    for r in rows:
        b, g = r.baseline, r.graph
        base_front = base_gen = "–"
        if b:
            s = b.stage_s
            base_front = f"{s.get('decode', 0) + s.get('asr', 0) + s.get('diarize', 0) + s.get('translate', 0):.1f}"
            generate = s.get("conditionals", 0) + s.get("t3", 0) + s.get("s3gen", 0)
            base_gen = f"{generate:.1f} ({_parts(s)})"
        s = g.stage_s
        body.append([
            r.scenario, r.synth, base_front, base_gen, f"{s.get('asr', 0):.1f}", f"{s.get('diarize', 0):.1f}",
            f"{s.get('voices', 0):.1f}", f"{_sum(s, 'translate'):.1f}", f"{_max(s, 'synthesize'):.1f}",
            f"{_sum(s, 'render'):.1f}", _parts(g.busy_s),
        ])
    return _table(header, body)


def memory_lines(rows: list[Row]) -> list[str]:
    out = []
    for r in rows:
        store = r.graph.store
        if not store:
            continue
        kb = ", ".join(f"{k:.0f}" for k in store["conditionals_kb"])
        out.append(
            f"- {r.scenario}, synthesizers {r.synth}: peak of the whole Ray cluster + driver "
            f"{r.graph.peak_rss_mb:,.0f} MB RSS summed, {r.graph.peak_pss_mb:,.0f} MB PSS summed; "
            f"conditionals objects {store['conditionals_objects']} for "
            f"{r.graph.conditionals} speakers computed (KB each: {kb}); object store after the job: "
            f"{store['store_objects']} objects, {store['store_kb']:,.0f} KB"
        )
    return out


def append(text: str, path: Path = RESULTS) -> None:
    with path.open("a") as f:
        f.write("\n" + text.rstrip() + "\n")


def table_main(doc: str, heading: str, details: str, make_table: Callable[[], str]) -> None:
    """A quality bench's command line: print ``make_table()``; ``--record`` appends it to RESULTS.md under
    ``heading``, with the machine, its load and the commit, then ``details``."""
    import argparse

    from bench.scenarios import machine

    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--record", action="store_true", help="append the table to bench/RESULTS.md")
    args = parser.parse_args()
    info = machine()
    text = make_table()
    print(text)
    if args.record:
        append(f"## {heading}, {info['date']}\n\n- Machine: {info['cpu']}, {info['cores']} cores; load average "
               f"{info['load']} at the start. Commit: {info['commit']}.{details}\n\n{text}")
