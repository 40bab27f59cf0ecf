// One job: its status polled while it waits or runs (a progress bar per stage), then the review of the result.

import { explain, json } from "./api.js";
import { enableEditing } from "./edit.js";
import { Review } from "./review.js";
import { el, formatDate, statusLabel } from "./ui.js";

const POLL_MS = 1000;
const ACTIVE = ["queued", "running", "rendering"];

// Stages in the order the pipeline runs them; one level runs at a time (ASR and diarization together), and each
// target language runs its translate -> synthesize -> render chain alongside the others.
function stagePlan(targets) {
  const stages = [
    { key: "decode", label: "Reading the recording", level: 0 },
    { key: "asr", label: "Transcribing the speech", level: 1 },
    { key: "diarize", label: "Telling the speakers apart", level: 1 },
    { key: "voices", label: "Preparing each speaker's voice", level: 2 },
  ];
  for (const lang of targets) {
    stages.push(
      { key: `translate:${lang}`, label: `Translating (${lang})`, level: 3, lang },
      { key: `synthesize:${lang}`, label: `Voicing the lines (${lang})`, level: 4, lang },
      { key: `render:${lang}`, label: `Mixing the track (${lang})`, level: 5, lang },
    );
  }
  return stages;
}

// Each stage's state from the reported progress: a stage that never reported (a resumed job reuses its result)
// counts as done once a later stage of its chain has started.
function stageStates(targets, progress, active) {
  const stages = stagePlan(targets);
  const started = (stage) => stage.key in progress;
  // later(a, b): b runs after a (common stages come before every language's chain)
  const later = (a, b) => b.level > a.level && (!a.lang || b.lang === a.lang);
  const done = new Map();
  for (const stage of stages) {
    const p = progress[stage.key];
    done.set(stage.key, Boolean(p && p.completed >= p.total) || stages.some((o) => later(stage, o) && started(o)));
  }
  return stages.map((stage) => {
    const p = progress[stage.key] ?? null;
    const ready = stages.every((o) => !later(o, stage) || done.get(o.key)); // everything before it is done
    let state = "waiting";
    if (done.get(stage.key)) state = "done";
    else if (active && (p || ready)) state = "working";
    return { ...stage, state, completed: p?.completed ?? 0, total: p?.total ?? 0 };
  });
}

export class JobView {
  constructor(root) {
    this.root = root;
    this.heading = root.querySelector("#job-title");
    this.state = root.querySelector("#job-state");
    this.stages = root.querySelector("#stages");
    this.progress = root.querySelector("#progress");
    this.log = root.querySelector("#job-log");
    this.error = root.querySelector("#job-error");
    this.review = new Review(root.querySelector("#review"));
    this.id = null;
    this.timer = null;
    this.shown = null; // "<id>@<revision>" of the result on screen
  }

  show(id) {
    if (id !== this.id) {
      this.review.clear();
      this.shown = null;
      this.stages.replaceChildren();
      this.log.replaceChildren();
    }
    this.id = id;
    this.heading.textContent = `Job ${id.slice(0, 8)}`;
    this.poll();
  }

  hide() {
    clearTimeout(this.timer);
    this.id = null;
    this.review.pause();
  }

  async poll() {
    clearTimeout(this.timer);
    const id = this.id;
    let status;
    try {
      status = await json(`v1/dubs/${id}`);
    } catch (error) {
      if (id !== this.id) return;
      this.fail(explain(error));
      if (error.status === 0 || error.status >= 500) this.timer = setTimeout(() => this.poll(), POLL_MS * 5);
      return;
    }
    if (id !== this.id) return;
    this.render(status);
    if (ACTIVE.includes(status.status)) this.timer = setTimeout(() => this.poll(), POLL_MS);
  }

  render(status) {
    const active = ACTIVE.includes(status.status);
    this.root.dataset.status = status.status;
    this.state.replaceChildren(
      el("span", { class: `status ${status.status}` }, statusLabel(status.status)),
      ` · started ${formatDate(status.created_s)} · ${status.targets.join(", ")}`,
      status.status === "queued" ? " · waiting for a free slot on the server" : "",
    );
    this.progress.hidden = !active;
    if (active) this.renderStages(status);
    this.log.replaceChildren(...status.log.map((entry) => el("li", { class: entry.level }, entry.message)));
    this.log.parentElement.hidden = status.log.length === 0;
    if (status.status === "failed") {
      this.fail(`The dub failed: ${status.error?.message ?? "no reason was given"}`);
    } else {
      this.fail("");
    }
    const revision = `${status.id}@${status.revision ?? 0}`;
    if (status.status === "done" && this.shown !== revision) {
      this.shown = revision;
      this.showResult(status);
    }
  }

  renderStages(status) {
    const states = stageStates(status.targets, status.progress ?? {}, status.status !== "queued");
    this.stages.replaceChildren(
      ...states.map((stage) => {
        const bar = el("progress", { max: stage.total || 1, "aria-label": stage.label });
        if (stage.state === "done") bar.value = bar.max;
        else if (stage.total) bar.value = stage.completed; // without a value the bar shows "busy"
        else if (stage.state === "waiting") bar.value = 0;
        const count = stage.total > 1 ? `${stage.completed} / ${stage.total}` : { done: "done", working: "working…" }[stage.state] ?? "";
        return el(
          "li",
          { class: `stage ${stage.state}`, "data-stage": stage.key },
          el("span", { class: "name" }, stage.label),
          bar,
          el("span", { class: "count" }, count),
        );
      }),
    );
  }

  async showResult(status) {
    try {
      const manifest = await json(status.links.manifest);
      if (status.id !== this.id) return;
      await this.review.show(status, manifest);
      enableEditing(this.review, status, () => this.poll());
    } catch (error) {
      this.shown = null;
      this.fail(`The result could not be loaded. ${explain(error)}`);
    }
  }

  fail(message) {
    this.error.textContent = message;
    this.error.hidden = !message;
  }
}
