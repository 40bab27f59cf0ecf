// The start view: the upload form (file, target languages, speaker hints) and the list of recent jobs.

import { explain, json, upload } from "./api.js";
import { formatDate, el, statusLabel } from "./ui.js";

const LIST_POLL_MS = 3000;

// 10800 -> "3 h", 900 -> "15 min", 20 -> "20 s"
function duration(seconds) {
  if (seconds >= 3600) return `${+(seconds / 3600).toFixed(1)} h`;
  return seconds >= 60 ? `${Math.round(seconds / 60)} min` : `${Math.round(seconds)} s`;
}

export class Home {
  constructor(root, { onJob }) {
    this.root = root;
    this.onJob = onJob;
    this.form = root.querySelector("#upload");
    this.submit = this.form.querySelector("button[type=submit]");
    this.error = root.querySelector("#upload-error");
    this.progress = root.querySelector("#upload-progress");
    this.state = root.querySelector("#upload-state");
    this.jobs = root.querySelector("#jobs tbody");
    this.empty = root.querySelector("#jobs-empty");
    this.info = null;
    this.timer = null;
    this.waitTimer = null;
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.send();
    });
  }

  async show() {
    if (!this.info) await this.loadInfo();
    await this.refresh();
  }

  hide() {
    clearTimeout(this.timer);
  }

  async loadInfo() {
    this.info = await json("v1/info");
    const targets = this.form.querySelector("#targets");
    targets.replaceChildren(el("legend", {}, "Dub into"));
    this.info.targets.forEach((lang, i) => {
      const box = el("input", { type: "checkbox", name: "targets", value: lang.code });
      box.defaultChecked = i === 0; // what form.reset() comes back to
      targets.append(el("label", { class: "check" }, box, ` ${lang.name} (${lang.code})`));
    });
    const source = this.form.querySelector("select[name=source_language]");
    source.replaceChildren(el("option", { value: "" }, "Detect it"));
    for (const lang of this.info.sources) source.append(el("option", { value: lang.code }, `${lang.name} (${lang.code})`));
    const longest = duration(this.info.max_duration_s);
    this.root.querySelector("#upload-limits").textContent =
      `Audio or video, up to ${this.info.max_upload_mb} MB and ${longest}. Profile: ${this.info.profile}.`;
  }

  async refresh() {
    clearTimeout(this.timer);
    let jobs;
    try {
      ({ jobs } = await json("v1/dubs?limit=50"));
    } catch (error) {
      this.empty.textContent = `The job list could not be loaded. ${explain(error)}`;
      this.empty.hidden = false;
      return;
    }
    this.jobs.replaceChildren(...jobs.map((job) => this.row(job)));
    this.empty.textContent = "No jobs yet: dub a recording above.";
    this.empty.hidden = jobs.length > 0;
    this.jobs.closest("table").hidden = jobs.length === 0;
    if (jobs.some((job) => !["done", "failed"].includes(job.status))) {
      this.timer = setTimeout(() => this.refresh(), LIST_POLL_MS);
    }
  }

  row(job) {
    const open = el("a", { href: `#/jobs/${job.id}` }, formatDate(job.created_s));
    const status = el("span", { class: `status ${job.status}` }, statusLabel(job.status));
    const detail = job.error ? el("span", { class: "muted" }, ` ${job.error.message}`) : "";
    return el(
      "tr",
      { "data-job": job.id },
      el("td", {}, open),
      el("td", {}, job.targets.join(", ")),
      el("td", {}, status, detail),
      el("td", { class: "id" }, el("code", {}, job.id.slice(0, 8))),
    );
  }

  fields() {
    const data = new FormData(this.form);
    const form = new FormData();
    const file = data.get("audio");
    if (!(file instanceof File) || !file.name) return { problem: "Choose a recording (an audio or video file)." };
    const targets = data.getAll("targets");
    if (!targets.length) return { problem: "Choose at least one language to dub into." };
    form.append("targets", targets.join(","));
    for (const name of ["speakers", "min_speakers", "max_speakers", "source_language"]) {
      const value = String(data.get(name) ?? "").trim();
      if (value) form.append(name, value);
    }
    form.append("audio", file, file.name);
    return { form };
  }

  async send() {
    const { form, problem } = this.fields();
    this.showError(problem ?? "");
    if (problem) return;
    this.submit.disabled = true;
    this.progress.hidden = false;
    this.progress.value = 0;
    this.state.textContent = "Uploading…";
    try {
      const job = await upload("v1/dubs", form, (fraction) => {
        this.progress.value = fraction;
        this.state.textContent = fraction < 1 ? `Uploading… ${Math.round(fraction * 100)} %` : "Checking the file…";
      });
      this.form.reset();
      this.state.textContent = "";
      this.onJob(job.id);
    } catch (error) {
      this.state.textContent = "";
      this.showError(explain(error));
      if (error.status === 503 && error.retryAfterS) {
        this.waitBeforeRetry(error.retryAfterS);
        return;
      }
    } finally {
      this.progress.hidden = true;
    }
    this.submit.disabled = false;
  }

  // A 503 with Retry-After: the button says how long to wait and comes back by itself.
  waitBeforeRetry(seconds) {
    clearInterval(this.waitTimer);
    let left = seconds;
    const label = this.submit.dataset.label ?? (this.submit.dataset.label = this.submit.textContent);
    const tick = () => {
      if (left <= 0) {
        clearInterval(this.waitTimer);
        this.submit.disabled = false;
        this.submit.textContent = label;
        this.state.textContent = "You can try again now.";
        return;
      }
      this.submit.textContent = `Try again in ${left} s`;
      left -= 1;
    };
    this.submit.disabled = true;
    tick();
    this.waitTimer = setInterval(tick, 1000);
  }

  showError(message) {
    this.error.textContent = message;
    this.error.hidden = !message;
  }
}
