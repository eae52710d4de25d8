// The base of each page's state object (photos/, video/ and cameras/ state.js): the data
// lives on the object, its methods change it and emit a topic, and each component
// subscribes to the topics it renders. A topic is a string, a subscriber a function.

export class Store {
  constructor() { this.subscribers = new Map(); }

  // Calls ``fn(...args)`` on every emit of ``topic``; returns the unsubscribe function.
  on(topic, fn) {
    let set = this.subscribers.get(topic);
    if (!set) this.subscribers.set(topic, (set = new Set()));
    set.add(fn);
    return () => set.delete(fn);
  }

  emit(topic, ...args) {
    const set = this.subscribers.get(topic);
    if (set) for (const fn of set) fn(...args);
  }

  // The page is gone: nobody listens any more.
  clearSubscribers() { this.subscribers.clear(); }
}
