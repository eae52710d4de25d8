// Object URLs of frame images behind the key: a small LRU cache, a queue that drops
// loads the viewer no longer wants (scrubbing past them), a client-side rate limit.
// nginx allows 20 requests/s (burst 40) per client; a 429 would be retried, but frames
// are cheap to wait for, so the viewer stays under the limit by itself.

const IMG_RATE = 12;
const IMG_BURST = 16;
const IMG_PARALLEL = 4;
const IMG_CACHE = 96;

const dropped = () => Object.assign(new Error("dropped"), { code: "dropped" });

export function frameLoader(api, signal) {
  const cache = new Map(); // key -> {url, promise}; Map order = least recently used first
  const queue = [];
  const shown = new Set(); // URLs in an <img> now: never revoked while shown
  let wanted = new Set();
  let inflight = 0, tokens = IMG_BURST, last = performance.now(), timer = null;

  function pump() {
    if (signal.aborted) return;
    const now = performance.now();
    tokens = Math.min(IMG_BURST, tokens + ((now - last) * IMG_RATE) / 1000);
    last = now;
    while (inflight < IMG_PARALLEL && queue.length && tokens >= 1) {
      const job = queue.shift();
      tokens -= 1;
      inflight++;
      api.objectUrl(job.path, { signal }).then((url) => {
        const entry = cache.get(job.key);
        if (signal.aborted || !entry) { URL.revokeObjectURL(url); job.reject(dropped()); return; }
        entry.url = url;
        job.resolve(url);
      }, (err) => {
        cache.delete(job.key);
        job.reject(err);
      }).finally(() => { inflight--; pump(); });
    }
    if (queue.length && tokens < 1 && !timer) {
      timer = setTimeout(() => { timer = null; pump(); }, Math.ceil(((1 - tokens) * 1000) / IMG_RATE));
    }
  }

  function evict() {
    for (const [key, e] of cache) {
      if (cache.size <= IMG_CACHE) break;
      if (e.url && !shown.has(e.url) && !wanted.has(key)) {
        URL.revokeObjectURL(e.url);
        cache.delete(key);
      }
    }
  }

  return {
    shown,
    get(key, path) {
      let e = cache.get(key);
      if (e) {
        cache.delete(key);
        cache.set(key, e);
        return e.promise;
      }
      e = { url: null };
      e.promise = new Promise((resolve, reject) => queue.push({ key, path, resolve, reject }));
      cache.set(key, e);
      pump();
      evict();
      return e.promise;
    },
    // Only these keys matter now: queued loads of any other are dropped.
    want(keys) {
      wanted = keys;
      for (let i = queue.length - 1; i >= 0; i--) {
        if (wanted.has(queue[i].key)) continue;
        const [job] = queue.splice(i, 1);
        cache.delete(job.key);
        job.reject(dropped());
      }
    },
    destroy() {
      clearTimeout(timer);
      for (const job of queue.splice(0)) job.reject(dropped());
      for (const e of cache.values()) if (e.url) URL.revokeObjectURL(e.url);
      cache.clear();
      shown.clear();
    },
  };
}
