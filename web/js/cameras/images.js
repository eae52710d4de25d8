// Event images (and clips) behind the key: object URLs fetched a few at a time (nginx
// allows 20 requests/s, burst 40, per client), kept while shown, let go when not.

import { errorText, h } from "../dom.js";
import { isAbort } from "./format.js";

const IMAGE_CONCURRENCY = 3;

export class Images {
  constructor(api, signal) {
    this.api = api;
    this.signal = signal;
    this.cache = new Map();   // path -> Promise<object URL>
    this.waiting = [];
    this.active = 0;
  }

  url(path) {
    let p = this.cache.get(path);
    if (!p) {
      const job = { path };
      p = new Promise((resolve, reject) => Object.assign(job, { resolve, reject }));
      job.promise = p;
      p.catch(() => {});  // failures are shown where the image is used
      this.cache.set(path, p);
      this.waiting.push(job);
      this.pump();
    }
    return p;
  }

  // Still wanted: the path may have been dropped, or dropped and asked for again.
  wanted(job) { return this.cache.get(job.path) === job.promise; }

  pump() {
    while (this.active < IMAGE_CONCURRENCY && this.waiting.length) {
      const job = this.waiting.shift();
      if (!this.wanted(job)) { job.reject(new DOMException("dropped", "AbortError")); continue; }
      this.active++;
      this.api.objectUrl(job.path, { signal: this.signal })
        .then((u) => {
          // Dropped while loading: nobody else will revoke it.
          if (!this.wanted(job)) { URL.revokeObjectURL(u); job.reject(new DOMException("dropped", "AbortError")); }
          else job.resolve(u);
        }, job.reject)
        .finally(() => { this.active--; this.pump(); });
    }
  }

  keepOnly(paths) {
    for (const [path, p] of this.cache) {
      if (paths.has(path)) continue;
      this.cache.delete(path);
      p.then((u) => URL.revokeObjectURL(u), () => {});
    }
  }

  // An <img> that shows ``path`` once loaded, or says why it cannot.
  image(path, alt, cls) {
    const img = h("img", { alt, class: cls, decoding: "async" });
    this.url(path).then((u) => { img.src = u; }, (err) => {
      if (isAbort(err)) return;
      img.replaceWith(h("span", { class: `${cls} missing bad` }, `image unavailable: ${errorText(err)}`));
    });
    return img;
  }
}
