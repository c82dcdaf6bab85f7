/* Test doubles for aether.js: a virtual clock, a scripted WebSocket, a seeded random
 * source. Nothing here waits on real time. */

/** setTimeout/clearTimeout on a virtual clock that only moves when told to. */
export class FakeClock {
  constructor() {
    this.now = 0;
    this.timers = new Map(); // id -> {at, fn, seq}
    this.seq = 0;
    this.setTimeout = (fn, ms = 0) => {
      if (!Number.isFinite(ms)) throw new TypeError(`setTimeout delay ${ms}`);
      const id = ++this.seq;
      this.timers.set(id, { at: this.now + Math.max(0, ms), fn, seq: id });
      return id;
    };
    this.clearTimeout = (id) => this.timers.delete(id);
  }

  /** Run every timer due within `ms`, in time order (timers they set included). */
  advance(ms) {
    const end = this.now + ms;
    for (;;) {
      let next = null;
      for (const [id, timer] of this.timers) {
        if (timer.at > end) continue;
        if (!next || timer.at < next[1].at || (timer.at === next[1].at && id < next[0])) {
          next = [id, timer];
        }
      }
      if (!next) break;
      this.timers.delete(next[0]);
      this.now = next[1].at;
      next[1].fn();
    }
    this.now = end;
  }

  /** Delays of the pending timers, shortest first. */
  pending() {
    return [...this.timers.values()].map((t) => t.at - this.now).sort((a, b) => a - b);
  }
}

/** A WebSocket class whose instances the test drives from the server side. */
export function fakeWebSocket(clock, { onCreate = () => {} } = {}) {
  class FakeWebSocket {
    static CONNECTING = 0;
    static OPEN = 1;
    static CLOSING = 2;
    static CLOSED = 3;
    static instances = [];

    constructor(url, protocols) {
      this.url = url;
      this.protocols = protocols;
      this.readyState = 0;
      this.sent = [];
      this.closedWith = null;
      this.createdAt = clock.now;
      FakeWebSocket.instances.push(this);
      onCreate(this);
    }

    send(data) {
      if (this.readyState !== 1) throw new Error("send() on a socket that is not open");
      this.sent.push(data);
    }

    close(code, reason) {
      this.closedWith = { code, reason };
      this.readyState = 3;
    }

    /** The commands the client sent, parsed. */
    get frames() {
      return this.sent.map((text) => JSON.parse(text));
    }

    // The server's side

    accept() {
      this.readyState = 1;
      this.onopen?.({});
    }

    deliver(frame) {
      const data = typeof frame === "string" || frame instanceof ArrayBuffer
        ? frame
        : JSON.stringify(frame);
      this.onmessage?.({ data });
    }

    /** Answer the last command sent with a reply of `type` (fields added). */
    reply(type, fields = {}) {
      const command = this.frames.at(-1);
      this.deliver({ type, ref: command.ref, group: command.group ?? null, ...fields });
    }

    drop(code = 1006, reason = "") {
      this.readyState = 3;
      this.onclose?.({ code, reason, wasClean: code !== 1006 });
    }
  }
  return FakeWebSocket;
}

/** mulberry32: a small seeded PRNG returning floats in [0, 1). */
export function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The most values of `times` (ms) that fall in any window of `width` ms. */
export function busiestWindow(times, width = 100) {
  const sorted = [...times].sort((a, b) => a - b);
  let most = 0;
  for (let i = 0, j = 0; i < sorted.length; i++) {
    while (sorted[i] - sorted[j] >= width) j++;
    most = Math.max(most, i - j + 1);
  }
  return most;
}

/** A client on a fake clock and fake sockets, with a seeded random source. */
export async function makeClient(options = {}) {
  const { AetherClient } = await import("../../aether_compat/static/aether_compat/aether.js");
  const { seed = 1, onCreate, ...rest } = options;
  const clock = options.clock ?? new FakeClock();
  const WebSocket = options.WebSocket ?? fakeWebSocket(clock, { onCreate });
  const client = new AetherClient("ws://test/ws/", {
    WebSocket,
    setTimeout: clock.setTimeout,
    clearTimeout: clock.clearTimeout,
    random: mulberry32(seed),
    ...rest,
  });
  const states = [];
  client.on("state", (state, info) => states.push({ state, ...info }));
  return { client, clock, WebSocket, states, socket: () => WebSocket.instances.at(-1) };
}

/** A client whose first socket is open. */
export async function openClient(options) {
  const made = await makeClient(options);
  made.client.connect();
  made.socket().accept();
  return made;
}
