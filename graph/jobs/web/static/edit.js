// Line editing, shown only where the server edits lines (job status carries "revision" and
// GET /v1/dubs/{id}/lines answers): change a line's text, source text, speaker, slot or lock; regenerate.
// A server without it (no "revision", or 404/405 on /lines) shows the review alone.

import { api, explain, json } from "./api.js";
import { byStart, dubbedLine } from "./lines.js";
import { el } from "./ui.js";

class Editor {
  constructor(review, onRender) {
    this.review = review;
    this.onRender = onRender;
    this.form = document.querySelector("#edit");
    this.state = document.querySelector("#edit-state");
    this.bar = document.querySelector("#render-bar");
    this.renderButton = document.querySelector("#render");
    this.renderState = document.querySelector("#render-state");
    this.status = null;
    this.line = null;
    this.raw = new Map(); // lang -> the server's LINE objects by id
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.save();
    });
    this.renderButton.addEventListener("click", () => this.render());
  }

  async attach(status) {
    this.status = null;
    this.line = null;
    this.raw.clear();
    this.form.hidden = true;
    this.bar.hidden = true;
    this.renderState.textContent = ""; // a new revision is on screen: the last render's message is done
    this.review.onSelect = () => {};
    this.review.onTrack = () => {};
    delete this.review.root.dataset.editing;
    const lang = status.targets[0];
    if (!("revision" in status) || !lang) return;
    let answer;
    try {
      answer = await json(this.linesPath(status.id, lang));
    } catch (error) {
      if (error.status !== 404 && error.status !== 405) this.review.problem(`Line editing is unavailable. ${explain(error)}`);
      return;
    }
    this.status = status;
    this.speakers = answer.speakers ?? [];
    this.use(lang, answer.lines);
    this.review.onTrack = (track) => this.loadTrack(track);
    this.review.onSelect = (line) => this.edit(line);
    this.review.root.dataset.editing = "on"; // lines can be selected for editing from now on
    this.countStale();
  }

  linesPath(id, lang) {
    return `v1/dubs/${id}/lines?lang=${encodeURIComponent(lang)}`;
  }

  use(lang, lines) {
    this.raw.set(lang, new Map(lines.map((line) => [line.id, line])));
    this.review.replaceLines(lang, lines.map(dubbedLine).sort(byStart));
  }

  async loadTrack(track) {
    this.form.hidden = true;
    if (!this.status || track === "original" || this.raw.has(track)) return;
    try {
      this.use(track, (await json(this.linesPath(this.status.id, track))).lines);
    } catch (error) {
      this.review.problem(`The lines of ${track} could not be loaded. ${explain(error)}`);
    }
  }

  edit(line) {
    const lang = this.review.track;
    const raw = this.raw.get(lang)?.get(line.id);
    this.line = raw ? { lang, raw } : null;
    this.form.hidden = !raw;
    if (!raw) return;
    const f = this.form.elements;
    this.form.querySelector("[data-lang]").textContent = lang;
    f.text.value = raw.text ?? "";
    f.source_text.value = raw.source_text ?? "";
    f.speaker.replaceChildren(...this.speakers.map((s) => el("option", { value: s }, s)));
    f.speaker.value = raw.speaker;
    f.start_s.value = raw.source_start_s; // the slot in the source (start_s/end_s: where it plays now)
    f.end_s.value = raw.source_end_s;
    f.locked.checked = Boolean(raw.locked);
    this.state.textContent = raw.stale ? "Edited: regenerate to hear it." : "";
  }

  changes() {
    const { lang, raw } = this.line;
    const f = this.form.elements;
    const body = {};
    if (f.text.value !== (raw.text ?? "")) Object.assign(body, { lang, text: f.text.value });
    if (f.source_text.value !== (raw.source_text ?? "")) body.source_text = f.source_text.value;
    if (f.speaker.value !== raw.speaker) body.speaker = f.speaker.value;
    for (const name of ["start_s", "end_s"]) {
      const value = Number.parseFloat(f[name].value);
      if (Number.isFinite(value) && Math.abs(value - raw[`source_${name}`]) > 1e-6) body[name] = value;
    }
    if (f.locked.checked !== Boolean(raw.locked)) body.locked = f.locked.checked;
    return body;
  }

  async save() {
    if (!this.line) return;
    const { lang, raw } = this.line;
    const body = this.changes();
    if (!Object.keys(body).length) {
      this.state.textContent = "Nothing changed.";
      return;
    }
    this.state.textContent = "Saving…";
    try {
      const response = await api(`v1/dubs/${this.status.id}/lines/${encodeURIComponent(raw.id)}`, {
        method: "PATCH",
        body: JSON.stringify(body),
        headers: { "Content-Type": "application/json", "If-Match": String(raw.revision) },
      });
      const updated = await response.json();
      this.raw.get(lang).set(updated.id, updated);
      this.use(lang, [...this.raw.get(lang).values()]);
      this.state.textContent = "Saved. Regenerate to hear the change.";
      this.countStale();
    } catch (error) {
      if (error.status === 409) {
        this.state.textContent = "This line changed elsewhere meanwhile; its latest version is shown. Edit it again.";
        this.raw.delete(lang);
        await this.loadTrack(lang);
        return;
      }
      this.state.textContent = explain(error);
    }
  }

  countStale() {
    const stale = [...this.raw.values()].flatMap((lines) => [...lines.values()]).filter((line) => line.stale).length;
    this.bar.hidden = stale === 0;
    this.renderButton.disabled = false;
    this.renderButton.textContent = `Regenerate ${stale} edited line${stale === 1 ? "" : "s"}`;
  }

  async render() {
    this.renderButton.disabled = true;
    this.renderState.textContent = "Starting…";
    try {
      const response = await api(`v1/dubs/${this.status.id}/render`, {
        method: "POST",
        headers: { "If-Match": String(this.status.revision) },
      });
      if (response.status === 200) {
        // 200, not 202: nothing was stale on the server (the edits were rendered elsewhere meanwhile)
        this.renderState.textContent = "Nothing to regenerate: every edit is already in this version.";
        this.renderButton.disabled = false;
        return;
      }
      this.renderState.textContent = "Regenerating: the new version appears when it is ready.";
      this.form.hidden = true;
      this.onRender();
    } catch (error) {
      this.renderButton.disabled = false;
      this.renderState.textContent =
        error.status === 409 ? "A render is already running, or the job changed: wait for it, then try again." : explain(error);
    }
  }
}

let editor = null;

export function enableEditing(review, status, onRender) {
  editor ??= new Editor(review, onRender);
  return editor.attach(status);
}
