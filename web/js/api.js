// The REST API as the browser sees it: the bearer key from local storage, JSON errors
// turned into ApiError, automatic retries where the server asked for them (429/503
// with Retry-After: nginx's rate limit, a full queue), uploads with progress, blobs
// behind the key as object URLs, and Server-Sent Events over fetch (EventSource
// cannot send an Authorization header).

const KEY_STORAGE = "kadr.apiKey";
const MAX_RETRIES = 6;

export class ApiError extends Error {
  constructor(status, code, message, requestId = "", details = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.requestId = requestId;
    this.details = details;  // per-field / per-file reasons, when the server gave them
  }
}

export function getKey() { return localStorage.getItem(KEY_STORAGE) || ""; }
export function setKey(key) {
  if (key) localStorage.setItem(KEY_STORAGE, key); else localStorage.removeItem(KEY_STORAGE);
  window.dispatchEvent(new CustomEvent("kadr:key"));
}

function authHeaders(extra = {}) {
  const key = getKey();
  return key ? { ...extra, Authorization: `Bearer ${key}` } : { ...extra };
}

function withQuery(path, query) {
  if (!query) return path;
  const qs = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null && v !== "") qs.set(k, v);
  const s = qs.toString();
  return s ? `${path}${path.includes("?") ? "&" : "?"}${s}` : path;
}

// The server's JSON error body, or a plain one built from the status line.
function toError(status, text, requestId) {
  try {
    const e = JSON.parse(text).error;
    if (e && e.code) return new ApiError(status, e.code, e.message || e.code, e.request_id || requestId, e.details || null);
  } catch (_) { /* not JSON: a proxy's page */ }
  const code = status === 0 ? "network_error" : `http_${status}`;
  const msg = status === 0 ? "the server could not be reached" : `the server answered ${status}`;
  return new ApiError(status, code, msg, requestId);
}

function unauthorized(err) {
  if (err.status === 401) window.dispatchEvent(new CustomEvent("kadr:unauthorized", { detail: err }));
  return err;
}

function retryDelay(status, retryAfter, attempt) {
  if (!(status === 429 || (status === 503 && retryAfter))) return null;
  if (attempt >= MAX_RETRIES) return null;
  const s = Number(retryAfter);
  return Math.min(Number.isFinite(s) && s > 0 ? s * 1000 : 1000 * 2 ** attempt, 30000);
}

function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => { clearTimeout(t); reject(signal.reason); }, { once: true });
  });
}

// fetch with the key; resolves to the Response (ok) or throws ApiError.
export async function raw(method, path, { query, json, body, headers, signal } = {}) {
  const url = withQuery(path, query);
  const init = { method, headers: authHeaders(headers), signal };
  if (json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  } else if (body !== undefined) {
    init.body = body;
  }
  for (let attempt = 0; ; attempt++) {
    let resp;
    try {
      resp = await fetch(url, init);
    } catch (e) {
      if (signal?.aborted) throw e;
      throw new ApiError(0, "network_error", "the server could not be reached");
    }
    if (resp.ok) return resp;
    const wait = retryDelay(resp.status, resp.headers.get("Retry-After"), attempt);
    if (wait !== null) { await sleep(wait, signal); continue; }
    throw unauthorized(toError(resp.status, await resp.text(), resp.headers.get("X-Request-ID") || ""));
  }
}

export async function request(method, path, opts = {}) {
  const resp = await raw(method, path, opts);
  if (resp.status === 204) return null;
  const type = resp.headers.get("Content-Type") || "";
  return type.includes("json") ? resp.json() : resp.text();
}

export const get = (path, opts) => request("GET", path, opts);
export const post = (path, json, opts = {}) => request("POST", path, { ...opts, json });
export const del = (path, opts) => request("DELETE", path, opts);

// multipart upload with progress (fetch has no upload progress); same errors and retries.
export function upload(path, form, { onProgress, signal, query } = {}) {
  const url = withQuery(path, query);
  const once = (attempt) => new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", url);
    for (const [k, v] of Object.entries(authHeaders())) xhr.setRequestHeader(k, v);
    xhr.responseType = "text";
    if (onProgress) xhr.upload.onprogress = (ev) => { if (ev.lengthComputable) onProgress(ev.loaded / ev.total); };
    const abort = () => xhr.abort();
    signal?.addEventListener("abort", abort, { once: true });
    xhr.onerror = () => reject(new ApiError(0, "network_error", "the upload did not reach the server"));
    xhr.onabort = () => reject(signal?.reason || new DOMException("aborted", "AbortError"));
    xhr.onload = async () => {
      signal?.removeEventListener("abort", abort);
      if (xhr.status >= 200 && xhr.status < 300) {
        resolve(xhr.responseText ? JSON.parse(xhr.responseText) : null);
        return;
      }
      const wait = retryDelay(xhr.status, xhr.getResponseHeader("Retry-After"), attempt);
      if (wait !== null) {
        try { await sleep(wait, signal); resolve(once(attempt + 1)); } catch (e) { reject(e); }
        return;
      }
      reject(unauthorized(toError(xhr.status, xhr.responseText, xhr.getResponseHeader("X-Request-ID") || "")));
    };
    xhr.send(form);
  });
  return once(0);
}

// An image or file behind the key, as an object URL the caller revokes when done.
export async function objectUrl(path, opts = {}) {
  const resp = await raw("GET", path, opts);
  return URL.createObjectURL(await resp.blob());
}

// Save a file behind the key under ``filename``.
export async function download(path, filename, opts = {}) {
  const url = await objectUrl(path, opts);
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}

// Server-Sent Events at ``path``: calls handlers[eventName](data) for each event;
// reconnects (after the server's ``retry``) until ``signal`` aborts or a handler
// returns the string "stop". Resolves when stopped.
export async function events(path, handlers, { signal } = {}) {
  let retryMs = 2000;
  while (!signal?.aborted) {
    let resp;
    try {
      resp = await raw("GET", path, { headers: { Accept: "text/event-stream" }, signal });
    } catch (e) {
      if (signal?.aborted) return;
      if (e instanceof ApiError && e.status >= 400 && e.status < 500) throw e;
      await sleep(retryMs, signal).catch(() => {});
      continue;
    }
    const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = "";
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value.replace(/\r\n/g, "\n");
        let cut;
        while ((cut = buf.indexOf("\n\n")) >= 0) {
          const block = buf.slice(0, cut);
          buf = buf.slice(cut + 2);
          let name = "message", data = "";
          for (const line of block.split("\n")) {
            if (line.startsWith("event:")) name = line.slice(6).trim();
            else if (line.startsWith("data:")) data += (data ? "\n" : "") + line.slice(5).trimStart();
            else if (line.startsWith("retry:")) retryMs = Number(line.slice(6)) || retryMs;
          }
          if (!data || !handlers[name]) continue;
          if (handlers[name](JSON.parse(data)) === "stop") { reader.cancel().catch(() => {}); return; }
        }
      }
    } catch (e) {
      if (signal?.aborted) return;
    }
    await sleep(retryMs, signal).catch(() => {});
  }
}
