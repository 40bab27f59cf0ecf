// Small DOM and formatting helpers shared by the views. Server text only ever lands in text nodes.

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === false || value == null) continue;
    node.setAttribute(name, value === true ? "" : String(value));
  }
  node.append(...children.filter((child) => child !== "" && child != null));
  return node;
}

export function formatDate(seconds) {
  return new Date(seconds * 1000).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

// 83.25 -> "1:23.2"
export function formatTime(seconds) {
  const s = Math.max(0, seconds || 0);
  const minutes = Math.floor(s / 60);
  return `${minutes}:${(s - minutes * 60).toFixed(1).padStart(4, "0")}`;
}

const STATUS = {
  queued: "Waiting",
  running: "Dubbing",
  rendering: "Re-rendering",
  done: "Done",
  failed: "Failed",
};

export function statusLabel(status) {
  return STATUS[status] ?? status;
}
