// A job's lines as the review draws them, read defensively from the manifest (or, when the server edits lines,
// from GET /v1/dubs/{id}/lines): fields a server does not send yet are simply absent from the marks.

function number(value, fallback) {
  return typeof value === "number" && Number.isFinite(value) ? value : fallback;
}

const MARKED = new Set(["stretched", "shifted", "truncated", "cut", "synthesis_failed"]);

// What was done to a dubbed line to fit its slot, as marks: kind (the colour), text (what a person reads) and
// short (what fits on a small block).
export function marksOf(line) {
  const flags = new Set(line.flags ?? []);
  const start = number(line.start_s, 0);
  const rate = number(line.stretch, 1);
  const shift = number(line.shift_s ?? line.shift, start - number(line.source_start_s, start));
  const lost = number(line.lost_s, 0);
  const marks = [];
  if (flags.has("stretched") || Math.abs(rate - 1) > 0.01) {
    const text = `${rate >= 1 ? "sped up" : "slowed"} ×${rate.toFixed(2)}`;
    marks.push({ kind: "stretched", text, short: `×${rate.toFixed(2)}` });
  }
  if (flags.has("shifted") || Math.abs(shift) >= 0.02) {
    const by = `${shift >= 0 ? "+" : "−"}${Math.abs(shift).toFixed(2)} s`;
    marks.push({ kind: "shifted", text: `shifted ${by}`, short: by });
  }
  if (flags.has("truncated") || flags.has("cut") || lost > 0) {
    marks.push({ kind: "cut", text: lost > 0 ? `cut: ${lost.toFixed(2)} s lost` : "cut short", short: "cut" });
  }
  if (flags.has("synthesis_failed")) marks.push({ kind: "failed", text: "voicing failed: silent", short: "failed" });
  for (const flag of flags) {
    if (!MARKED.has(flag)) marks.push({ kind: "note", text: flag.replaceAll("_", " "), short: "•" });
  }
  return marks;
}

// A dubbed line: where it plays (start/end) and where its source was.
export function dubbedLine(line) {
  const start = number(line.start_s, 0);
  const end = number(line.end_s, start);
  return {
    id: line.id ?? line.utterance_id ?? "",
    speaker: line.speaker ?? "?",
    start,
    end,
    sourceStart: number(line.source_start_s, start),
    sourceEnd: number(line.source_end_s, end),
    text: line.text ?? "",
    sourceText: line.source_text ?? "",
    candidates: Array.isArray(line.candidates) ? line.candidates : [],
    chosen: number(line.chosen, 0),
    marks: marksOf(line),
    stale: Boolean(line.stale),
    locked: Boolean(line.locked),
    revision: line.revision ?? null,
  };
}

// A line of the original recording (a source utterance).
export function sourceLine(utterance) {
  const start = number(utterance.start_s, 0);
  const end = number(utterance.end_s, start);
  return {
    id: utterance.id ?? "",
    speaker: utterance.speaker ?? "?",
    start,
    end,
    sourceStart: start,
    sourceEnd: end,
    text: utterance.text ?? "",
    sourceText: utterance.text ?? "",
    candidates: [],
    chosen: 0,
    marks: [],
    stale: false,
    locked: false,
    revision: null,
  };
}

export function byStart(a, b) {
  return a.start - b.start || a.end - b.end;
}
