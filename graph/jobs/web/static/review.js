// The review of a finished job: the picture (when the job has a video), the sound of one track at a time (the
// original or a dub, switched in place), the waveform, one lane per speaker with every line as a block, and
// every file to download. The <audio> element is the clock; a video follows it.

import WaveSurfer from "./vendor/wavesurfer.esm.js";
import { download, explain, forgetMedia, hasKey, mediaUrl } from "./api.js";
import { byStart, dubbedLine, sourceLine } from "./lines.js";
import { el, formatTime } from "./ui.js";

const WAVE_MAX_S = 20 * 60; // longer tracks play without a waveform (the browser would decode all of it)
const VIDEO_DRIFT_S = 0.2;
const MIN_FIT_PPS = 20; // pixels per second below which blocks are too small: zoom to READABLE_PPS instead
const READABLE_PPS = 25; // one of the zoom choices
const VIDEO = /\.(mp4|m4v|mov|mkv|webm)$/i;
const KINDS = {
  wav: "audio (WAV)",
  flac: "audio (FLAC)",
  srt: "subtitles (SRT)",
  vtt: "subtitles (WebVTT)",
  json: "every line, timing and setting",
  mp4: "video",
  m4v: "video",
  mov: "video",
  mkv: "video",
  webm: "video",
};

function fileName(link) {
  return decodeURIComponent(new URL(link, document.baseURI).pathname.split("/").pop());
}

// Every link in a job's links (nested by language and format): the languages' files first.
function allLinks({ languages, ...others }) {
  const found = [];
  const walk = (value) => {
    if (typeof value === "string") found.push(value);
    else if (value && typeof value === "object") Object.values(value).forEach(walk);
  };
  walk(languages);
  walk(others);
  return [...new Set(found)];
}

function isTyping(target) {
  return target.closest?.("input, textarea, select, [contenteditable=''], [contenteditable=true]");
}

export class Review {
  constructor(root) {
    this.root = root;
    this.player = root.querySelector("#player");
    this.video = root.querySelector("#video");
    this.playButton = root.querySelector("#play");
    this.clock = root.querySelector("#clock");
    this.trackChoice = root.querySelector("#tracks");
    this.zoom = root.querySelector("#zoom");
    this.timeline = root.querySelector("#timeline");
    this.canvas = root.querySelector("#canvas");
    this.wave = root.querySelector("#wave");
    this.lanes = root.querySelector("#lanes");
    this.playhead = root.querySelector("#playhead");
    this.details = root.querySelector("#line");
    this.downloads = root.querySelector("#downloads");
    this.notice = root.querySelector("#review-error");
    this.ws = null;
    this.lines = [];
    this.blocks = [];
    this.current = -1;
    this.track = null;
    this.linesByTrack = new Map(); // track id -> lines (a line-editing server replaces a language's)
    this.onSelect = () => {}; // line editing hooks in here (edit.js)
    this.onTrack = () => {};
    this.frame = null;

    this.playButton.addEventListener("click", () => this.toggle());
    this.zoom.addEventListener("change", () => this.layout());
    this.trackChoice.addEventListener("change", (event) => this.selectTrack(event.target.value));
    document.addEventListener("keydown", (event) => this.key(event));
    for (const name of ["play", "pause", "seeked", "timeupdate", "loadedmetadata", "ended"]) {
      this.player.addEventListener(name, () => this.tick(name));
    }
    this.player.addEventListener("error", () => this.problem("This track could not be played by the browser."));
  }

  clear() {
    this.pause();
    this.root.hidden = true;
    this.lanes.replaceChildren();
    this.downloads.replaceChildren();
    this.details.replaceChildren();
    this.linesByTrack.clear();
    this.lines = [];
    this.blocks = [];
    this.track = null;
    this.current = -1;
    this.problem("");
    this.player.removeAttribute("src");
    this.video.removeAttribute("src");
    forgetMedia();
  }

  pause() {
    if (!this.player.paused) this.player.pause();
  }

  async show(status, manifest) {
    this.status = status;
    this.manifest = manifest;
    this.duration = manifest.duration_s;
    const links = status.links;
    const revision = status.revision ?? 0;
    // Artifacts keep their URLs when a job is re-rendered: the revision makes each render a new URL.
    const fresh = (link) => (revision ? `${link}${link.includes("?") ? "&" : "?"}r=${revision}` : link);
    this.tracks = [];
    if (links.original) this.tracks.push({ id: "original", label: "Original", link: fresh(links.original) });
    for (const [lang, files] of Object.entries(links.languages ?? {})) {
      const link = files.flac ?? files.wav;
      if (link) this.tracks.push({ id: lang, label: lang, link: fresh(link) });
    }
    this.linesByTrack.set("original", (manifest.utterances ?? []).map(sourceLine).sort(byStart));
    for (const [lang, output] of Object.entries(manifest.languages ?? {})) {
      this.linesByTrack.set(lang, (output.lines ?? []).map(dubbedLine).sort(byStart));
    }
    this.speakers = [...new Set([...(manifest.speakers ?? []), ...[...this.linesByTrack.values()].flat().map((l) => l.speaker)])];
    this.showTrackChoice();
    const files = allLinks(links).map(fresh);
    this.showDownloads(files);
    await this.showVideo(files.find((link) => VIDEO.test(fileName(link))));
    this.root.hidden = false;
    // The whole recording in view unless that makes lines too small to read or click (a phone, a long file).
    this.zoom.value = this.timeline.clientWidth / this.duration < MIN_FIT_PPS ? String(READABLE_PPS) : "0";
    const first = this.tracks.find((track) => track.id !== "original") ?? this.tracks[0];
    if (first) await this.selectTrack(this.track && this.tracks.some((t) => t.id === this.track) ? this.track : first.id);
  }

  showTrackChoice() {
    this.trackChoice.replaceChildren(
      el("legend", {}, "Listen to"),
      ...this.tracks.map((track) =>
        el("label", { class: "choice" }, el("input", { type: "radio", name: "track", value: track.id }), ` ${track.label}`),
      ),
    );
  }

  showDownloads(links) {
    this.downloads.replaceChildren(
      ...links.map((link) => {
        const name = fileName(link);
        const anchor = el("a", { href: link, download: name }, name);
        anchor.addEventListener("click", (event) => {
          if (!hasKey()) return; // a plain link downloads by itself
          event.preventDefault();
          download(link, name).catch((error) => this.problem(`${name} could not be downloaded. ${explain(error)}`));
        });
        return el("li", {}, anchor, " ", el("span", { class: "muted" }, KINDS[name.split(".").pop()] ?? ""));
      }),
    );
  }

  async showVideo(link) {
    this.video.hidden = !link;
    if (link) this.video.src = await mediaUrl(link);
    else this.video.removeAttribute("src");
  }

  // Switch the sound (and the lines on the timeline) to another track at the same moment, still playing if it was.
  async selectTrack(id) {
    const track = this.tracks.find((t) => t.id === id);
    if (!track) return;
    const at = this.player.currentTime || 0;
    const playing = !this.player.paused;
    this.track = id;
    for (const input of this.trackChoice.querySelectorAll("input")) input.checked = input.value === id;
    this.root.dataset.track = id;
    this.redraw(this.linesByTrack.get(id) ?? []);
    this.onTrack(id);
    this.problem("");
    try {
      const src = await mediaUrl(track.link);
      if (this.track !== id) return;
      await this.load(src);
    } catch (error) {
      if (error?.name === "AbortError") return; // another switch took over
      this.problem(`The ${track.label} track could not be loaded. ${explain(error)}`);
      return;
    }
    this.seek(at);
    if (playing) await this.play();
    this.tick("track");
  }

  async load(src) {
    if (this.duration > WAVE_MAX_S) {
      this.wave.hidden = true;
      this.player.src = src;
      await new Promise((resolve, reject) => {
        this.player.addEventListener("loadedmetadata", resolve, { once: true });
        this.player.addEventListener("error", reject, { once: true });
      });
      return;
    }
    if (!this.ws) {
      const css = getComputedStyle(this.root);
      this.ws = WaveSurfer.create({
        container: this.wave,
        media: this.player,
        height: 56,
        waveColor: css.getPropertyValue("--wave").trim() || "#8a94a6",
        progressColor: css.getPropertyValue("--wave-played").trim() || "#3b5bdb",
        cursorWidth: 0, // the playhead crosses the lanes too
        normalize: true,
        autoScroll: false,
        dragToSeek: true,
      });
    }
    await this.ws.load(src);
  }

  // A language's lines as a line-editing server has them now (stale and locked marks included).
  replaceLines(track, lines) {
    this.linesByTrack.set(track, lines);
    if (track === this.track) this.redraw(lines);
  }

  // New lines on the timeline, the same line (by id) still selected when it is among them.
  redraw(lines) {
    const selected = this.lines[this.current]?.id;
    this.lines = lines;
    this.current = selected === undefined ? -1 : lines.findIndex((line) => line.id === selected);
    this.drawLanes();
    if (this.current >= 0) this.showDetails(this.lines[this.current], this.current);
    else this.details.replaceChildren();
  }

  drawLanes() {
    const lanes = new Map(this.speakers.map((speaker, i) => [speaker, this.lane(speaker, i)]));
    this.blocks = this.lines.map((line, i) => {
      const block = this.block(line, i);
      lanes.get(line.speaker)?.track.append(block);
      return block;
    });
    this.lanes.replaceChildren(...[...lanes.values()].map((lane) => lane.node));
    this.mark(this.current);
    this.layout();
  }

  lane(speaker, i) {
    const track = el("div", { class: "track" });
    const count = this.lines.filter((line) => line.speaker === speaker).length;
    const node = el(
      "div",
      { class: `lane spk-${i % 8}`, role: "group", "aria-label": `${speaker}: ${count} lines` },
      el("div", { class: "lane-name" }, speaker),
      track,
    );
    return { node, track };
  }

  block(line, i) {
    const pct = (s) => `${(100 * s) / this.duration}%`;
    const marks = line.marks.map((mark) => el("span", { class: `mark ${mark.kind}`, title: mark.text }, mark.short));
    const state = [line.stale && "edited, not yet regenerated", line.locked && "locked"].filter(Boolean);
    const label = `Line ${i + 1} of ${this.lines.length}, ${line.speaker}, ${formatTime(line.start)} to ${formatTime(line.end)}: ${line.text}` +
      (line.marks.length || state.length ? ` (${[...line.marks.map((m) => m.text), ...state].join(", ")})` : "");
    const block = el(
      "button",
      {
        type: "button",
        class: ["block", ...line.marks.map((m) => m.kind), line.stale && "stale", line.locked && "locked"].filter(Boolean).join(" "),
        style: `left:${pct(line.start)};width:${pct(Math.max(line.end - line.start, 0.05))}`,
        "data-line": line.id,
        "aria-label": label,
        title: label,
        tabindex: "-1",
      },
      el("span", { class: "text" }, line.text),
      marks.length ? el("span", { class: "marks" }, ...marks) : "",
    );
    block.addEventListener("click", () => this.select(i, { play: true }));
    return block;
  }

  layout() {
    const pps = Number(this.zoom.value);
    this.canvas.style.width = pps ? `${Math.max(this.timeline.clientWidth, this.duration * pps)}px` : "100%";
    this.tick("layout");
  }

  select(i, { play = false, focus = true } = {}) {
    if (i < 0 || i >= this.lines.length) return;
    this.mark(i);
    const line = this.lines[i];
    if (focus) this.blocks[i].focus({ preventScroll: true });
    this.blocks[i].scrollIntoView({ block: "nearest", inline: "nearest" });
    this.seek(line.start);
    this.showDetails(line, i);
    this.onSelect(line);
    if (play) this.play();
  }

  mark(i) {
    this.blocks.forEach((block, j) => {
      block.classList.toggle("selected", j === i);
      block.setAttribute("tabindex", j === i || (i < 0 && j === 0) ? "0" : "-1");
      if (j === i) block.setAttribute("aria-current", "true");
      else block.removeAttribute("aria-current");
    });
    this.current = i;
  }

  showDetails(line, i) {
    const rows = [
      ["Speaker", line.speaker],
      ["Plays", `${formatTime(line.start)} – ${formatTime(line.end)}`],
    ];
    if (this.track !== "original") {
      rows.push(["Original slot", `${formatTime(line.sourceStart)} – ${formatTime(line.sourceEnd)}`]);
      rows.push(["Original text", line.sourceText]);
    }
    rows.push([this.track === "original" ? "Text" : `Text (${this.track})`, line.text]);
    if (line.marks.length) rows.push(["Fitting", line.marks.map((m) => m.text).join(", ")]);
    const list = el("dl", {}, ...rows.flatMap(([name, value]) => [el("dt", {}, name), el("dd", {}, value)]));
    const others = line.candidates.length > 1
      ? el("details", {}, el("summary", {}, `${line.candidates.length} translations considered`),
          el("ol", {}, ...line.candidates.map((c, j) => el("li", { class: j === line.chosen ? "chosen" : "" }, c))))
      : "";
    this.details.replaceChildren(el("h3", {}, `Line ${i + 1} of ${this.lines.length}`, el("code", {}, ` ${line.id}`)), list, others);
  }

  seek(seconds) {
    const t = Math.min(Math.max(seconds, 0), this.duration);
    this.player.currentTime = t;
    if (!this.video.hidden) this.video.currentTime = t;
    this.tick("seek");
  }

  async play() {
    try {
      await this.player.play();
    } catch (error) {
      if (error?.name !== "AbortError") this.problem("The browser refused to play: press Play again.");
    }
  }

  toggle() {
    if (this.player.paused) this.play();
    else this.player.pause();
  }

  // Space plays/pauses and arrows move between lines, except where keys type or choose (inputs, selects,
  // radios) or press a control (other buttons).
  key(event) {
    if (this.root.closest("[hidden]") || event.altKey || event.ctrlKey || event.metaKey) return;
    if (isTyping(event.target)) return;
    const onControl = event.target.closest?.("button:not(.block), a, summary");
    if (event.key === " " && !onControl) {
      event.preventDefault();
      this.toggle();
      return;
    }
    const moves = { ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1, Home: "first", End: "last" };
    const move = moves[event.key];
    if (move === undefined || !this.lines.length || (onControl && !event.key.startsWith("Arrow"))) return;
    if ((event.key === "ArrowUp" || event.key === "ArrowDown") && !event.target.closest?.(".block")) return;
    event.preventDefault();
    let next;
    if (move === "first") next = 0;
    else if (move === "last") next = this.lines.length - 1;
    else if (this.current < 0) {
      const t = this.player.currentTime;
      next = move > 0 ? this.lines.findIndex((line) => line.start >= t - 0.01) : this.lines.findLastIndex((l) => l.start < t);
    } else next = this.current + move;
    this.select(Math.min(Math.max(next, 0), this.lines.length - 1));
  }

  // Keep the clock, playhead, the line now playing and a video in step with the audio.
  tick(reason) {
    const t = this.player.currentTime || 0;
    const playing = !this.player.paused;
    this.playButton.textContent = playing ? "Pause" : "Play";
    this.playButton.setAttribute("aria-pressed", String(playing));
    this.clock.textContent = `${formatTime(t)} / ${formatTime(this.duration)}`;
    this.playhead.style.left = `${(100 * t) / this.duration}%`;
    this.blocks.forEach((block, i) => block.classList.toggle("now", this.lines[i].start <= t && t < this.lines[i].end));
    if (!this.video.hidden) {
      if (reason === "play") this.video.play().catch(() => {});
      if (reason === "pause" || reason === "ended") this.video.pause();
      if (Math.abs(this.video.currentTime - t) > VIDEO_DRIFT_S) this.video.currentTime = t;
    }
    if (playing) {
      this.follow(t);
      cancelAnimationFrame(this.frame);
      this.frame = requestAnimationFrame(() => this.tick("frame"));
    }
  }

  // When zoomed in, scroll the timeline so the playhead stays in view.
  follow(t) {
    const x = (t / this.duration) * this.canvas.clientWidth;
    const { scrollLeft, clientWidth } = this.timeline;
    if (x < scrollLeft || x > scrollLeft + clientWidth - 24) this.timeline.scrollLeft = Math.max(0, x - clientWidth * 0.2);
  }

  problem(message) {
    this.notice.textContent = message;
    this.notice.hidden = !message;
  }
}
