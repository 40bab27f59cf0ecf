// The /v1 API as the page uses it: the API key (asked once, kept in sessionStorage only), JSON errors turned
// into messages a person can act on, uploads with progress, and media or downloads that need the key.

const KEY_ITEM = "dubgraph.apiKey";

export class ApiError extends Error {
  constructor(status, type, message, { retryAfterS = null, supported = null } = {}) {
    super(message);
    this.status = status; // 0: the server could not be reached
    this.type = type;
    this.retryAfterS = retryAfterS;
    this.supported = supported;
  }
}

let askKey = async () => null; // set by the app: shows the key dialog, resolves to the key or null
let pendingAsk = null;

export function onKeyNeeded(prompt) {
  askKey = prompt;
}

export function hasKey() {
  return Boolean(sessionStorage.getItem(KEY_ITEM));
}

function keyHeaders() {
  const key = sessionStorage.getItem(KEY_ITEM);
  return key ? { "X-API-Key": key } : {};
}

async function newKey(rejected) {
  // Several requests may meet the same 401 at once: one dialog answers them all.
  if (!pendingAsk) {
    pendingAsk = askKey(rejected).finally(() => (pendingAsk = null));
  }
  const key = await pendingAsk;
  if (!key) throw new ApiError(401, "Unauthorized", "This server needs an API key to continue.");
  sessionStorage.setItem(KEY_ITEM, key);
}

export function url(path) {
  return new URL(path, document.baseURI).href;
}

function retryAfter(value) {
  const seconds = Number.parseInt(value ?? "", 10);
  return Number.isFinite(seconds) && seconds >= 0 ? seconds : null;
}

const FALLBACK = {
  0: "The server could not be reached. Check that it is running and your connection works, then try again.",
  401: "This server needs an API key.",
  404: "Not found.",
  413: "The request is too large for this server.",
  415: "The server cannot read this kind of file.",
  422: "The server did not accept these settings.",
  503: "The server is busy.",
};

// An ApiError from a response: the server's JSON error when there is one, a plain sentence otherwise
// (a proxy's text or HTML body is never shown as it is).
export function errorFrom(status, bodyText, retryAfterHeader) {
  let error = null;
  try {
    error = JSON.parse(bodyText)?.error ?? null;
  } catch {
    error = null;
  }
  const message =
    typeof error?.message === "string" && error.message
      ? error.message
      : FALLBACK[status] ?? `The server answered with an error (HTTP ${status}).`;
  return new ApiError(status, error?.type ?? "HTTPError", message, {
    retryAfterS: retryAfter(retryAfterHeader),
    supported: Array.isArray(error?.supported) ? error.supported : null,
  });
}

// fetch with the key; a 401 asks for the key (once for all callers) and tries again.
export async function api(path, { method = "GET", body, headers = {} } = {}) {
  for (let attempt = 0; ; attempt++) {
    let response;
    try {
      response = await fetch(url(path), { method, body, headers: { ...keyHeaders(), ...headers } });
    } catch {
      throw new ApiError(0, "NetworkError", FALLBACK[0]);
    }
    if (response.status === 401 && attempt < 3) {
      await newKey(attempt > 0 || hasKey());
      continue;
    }
    if (!response.ok) throw errorFrom(response.status, await response.text(), response.headers.get("Retry-After"));
    return response;
  }
}

export async function json(path, options) {
  return (await api(path, options)).json();
}

// POST a form with the upload's progress (fetch cannot report it); resolves to the JSON answer.
export function upload(path, form, onProgress) {
  const once = () =>
    new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", url(path));
      for (const [name, value] of Object.entries(keyHeaders())) xhr.setRequestHeader(name, value);
      xhr.upload.onprogress = (event) => event.lengthComputable && onProgress(event.loaded / event.total);
      xhr.onerror = () => reject(new ApiError(0, "NetworkError", FALLBACK[0]));
      xhr.onload = () => {
        if (xhr.status >= 200 && xhr.status < 300) resolve(JSON.parse(xhr.responseText));
        else reject(errorFrom(xhr.status, xhr.responseText, xhr.getResponseHeader("Retry-After")));
      };
      xhr.send(form);
    });
  return (async () => {
    for (let attempt = 0; ; attempt++) {
      try {
        return await once();
      } catch (error) {
        if (error.status !== 401 || attempt >= 3) throw error;
        await newKey(attempt > 0 || hasKey());
      }
    }
  })();
}

// What a person reads for an error: a short lead plus the server's own message.
export function explain(error) {
  if (!(error instanceof ApiError)) {
    return "Something went wrong in this page. Reload it and try again.";
  }
  const lead = {
    0: "",
    401: "The API key was not accepted.",
    404: "Not found:",
    413: "Too large:",
    415: "This file cannot be dubbed:",
    422: "Please check the settings:",
    503: "The server is busy:",
  }[error.status];
  const prefix = lead ?? (error.status >= 500 ? "The server had a problem:" : `Request refused (HTTP ${error.status}):`);
  const supported = error.supported?.length ? ` Supported: ${error.supported.join(", ")}.` : "";
  return `${prefix} ${error.message}${supported}`.trim();
}

// A URL the page's <audio>/<video> can play: the link itself, or (the key cannot ride on a media request) the
// file fetched with the key and played from memory.
const blobs = new Map();

export async function mediaUrl(link) {
  if (!hasKey()) return url(link);
  if (!blobs.has(link)) {
    const pending = api(link)
      .then((response) => response.blob())
      .then((blob) => URL.createObjectURL(blob));
    pending.catch(() => blobs.delete(link));
    blobs.set(link, pending);
  }
  return blobs.get(link);
}

// Free the tracks held in memory (a review that closes or reloads).
export function forgetMedia() {
  for (const pending of blobs.values()) pending.then((href) => URL.revokeObjectURL(href), () => {});
  blobs.clear();
}

// Save a file: a plain link when no key is needed; otherwise fetched with the key and saved from memory.
export async function download(link, filename) {
  const anchor = document.createElement("a");
  anchor.download = filename;
  anchor.href = hasKey() ? URL.createObjectURL(await (await api(link)).blob()) : url(link);
  document.body.append(anchor);
  anchor.click();
  anchor.remove();
  if (anchor.href.startsWith("blob:")) setTimeout(() => URL.revokeObjectURL(anchor.href), 60_000);
}
