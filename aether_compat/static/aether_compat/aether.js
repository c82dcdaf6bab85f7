/* aether.js: the browser client of the aether.v1 WebSocket protocol (docs/protocol.md).
 * One ES module, no dependencies, no build step; runs in modern browsers and Node 20.
 *
 *   import { connect } from "/static/aether_compat/aether.js";
 *
 *   const client = connect("/ws/realtime/", {
 *     on: { state: (state) => ..., message: (frame) => ... },
 *   });
 *   await client.join("room:lobby");                        // the aether.joined frame
 *   const { sent_count } = await client.send("room:lobby", "hi", { echo: false });
 *   client.close();
 *
 * Commands (`join`, `leave`, `send`, `ping`) return promises that resolve with their
 * reply frame and reject with an `AetherError` whose `code` is the server's error code,
 * or "timeout", "disconnected" (the socket dropped first), "not_connected" (sent while
 * the socket is not open) or "closed" (`close()` was called first).
 *
 * Events (`client.on(name, fn)` returns a function that removes `fn`; `off` too):
 *   state    (state, info)  "connecting" | "open" | "reconnecting" | "closed";
 *                           info: {code, reason, attempt, delay}
 *   message  (frame)        an aether.message frame: {group, sender, data, offset, epoch}
 *   resumed  (info)         a group came back after a reconnect from the last position
 *                           seen: {group, recovered, replayed, epoch, offset}; recovered
 *                           true: `replayed` missed messages follow as message events;
 *                           false: they cannot be replayed: reload the group's state
 *   binary   (data)         a binary frame, as an ArrayBuffer
 *   presence (frame)        an aether.presence_state {group, presence} or
 *                           aether.presence_diff {group, joins, leaves} frame (groups
 *                           with presence events; docs/presence.md); `trackPresence`
 *                           keeps a group's member map from them
 *   reply    (frame)        every reply frame with a ref, aether.error ones included
 *   error    (error)        an AetherError nobody awaits: an aether.error frame with no
 *                           pending command, or a group that could not be rejoined
 *   frame    (frame)        any other text frame: a JSON object of another type (as an
 *                           object) or text that is not JSON (as a string)
 *
 * After a drop the client reconnects with exponential backoff and full jitter
 * (delay = random() * min(cap, base * 2^attempt)); the attempt count starts over once
 * a connection has stayed open for `stableAfter`. After the close codes in
 * RECONNECT_AT_ONCE (4012: the server's maximum connection lifetime) it reconnects
 * without waiting and the count starts over. It does not reconnect after
 * `close()` or the close codes in NO_RECONNECT. After a reconnect it joins again the
 * groups that it joined itself (a join that succeeded, with no leave since); groups
 * the server joins by URL are the server's to rejoin. For groups that keep history
 * it remembers the last position seen (`positions`) and resumes from it: a rejoin
 * carries `since`, and the URL of a reconnect carries `?since=group:epoch:offset,...`
 * for the groups the server joins by URL (docs/history.md). It answers the server's
 * aether.ping, and when it has heard nothing for `idleTimeout` it pings, and
 * reconnects if no pong comes back within `timeout`. docs/client.md has the options;
 * what neither documents is internal.
 */

export const PROTOCOL = "aether.v1";
export const NO_RECONNECT = new Set([4008, 4009]);
export const RECONNECT_AT_ONCE = new Set([4012]);
export const DEFAULTS = Object.freeze({
  timeout: 10000, // ms a command (and an opening handshake) may take
  backoffBase: 2500, // ms; 100 clients dropped at once spread their first retries over it
  backoffCap: 30000, // ms, the longest wait between two attempts
  stableAfter: 5000, // ms open before the attempt count starts over
  idleTimeout: 30000, // ms of silence before the client pings; 0 turns it off
});

const REPLIES = new Set(["aether.joined", "aether.left", "aether.sent", "aether.pong"]);
const PRESENCE = new Set(["aether.presence_state", "aether.presence_diff"]);
const OPEN = 1;

/** What a command's promise rejects with; `code` and `detail` say why. */
export class AetherError extends Error {
  constructor(code, detail, frame = null) {
    super(`${code}: ${detail}`);
    this.name = "AetherError";
    this.code = code;
    this.detail = detail;
    this.group = frame?.group ?? null;
    this.frame = frame;
  }
}

export class AetherClient {
  constructor(url, options = {}) {
    const { on = {}, ...rest } = options;
    this.options = { ...DEFAULTS, ...rest };
    this.url = resolveUrl(url);
    this.WebSocket = rest.WebSocket ?? globalThis.WebSocket;
    this.setTimeout = rest.setTimeout ?? globalThis.setTimeout.bind(globalThis);
    this.clearTimeout = rest.clearTimeout ?? globalThis.clearTimeout.bind(globalThis);
    this.random = rest.random ?? Math.random;
    this.state = "closed";
    this.attempt = 0;
    this.listeners = new Map();
    this.pending = new Map(); // ref -> {resolve, reject, timer, frame}
    this.joined = new Set(); // groups to join again after a reconnect
    this.joining = new Map(); // group -> ref of its join under way
    this.positions = new Map(); // group -> {epoch, offset}: the last message seen
    this.resuming = new Map(); // group -> the since its rejoin (or URL) carried
    this.nextRef = 1;
    this.socket = null;
    this.timers = {};
    this.stopped = true;
    for (const [event, fn] of Object.entries(on)) this.on(event, fn);
  }

  /** The groups this client joined and will join again after a reconnect. */
  get groups() {
    return [...this.joined];
  }

  on(event, fn) {
    if (!this.listeners.has(event)) this.listeners.set(event, new Set());
    this.listeners.get(event).add(fn);
    return () => this.off(event, fn);
  }

  off(event, fn) {
    this.listeners.get(event)?.delete(fn);
  }

  /** Open the socket (again after `close()`); reconnects until `close()`. */
  connect() {
    if (!this.stopped) return this;
    this.stopped = false;
    this.attempt = 0;
    this.open();
    return this;
  }

  /** Close for good: no reconnect; commands awaiting a reply reject with "closed". */
  close(code = 1000, reason = "") {
    this.stopped = true;
    this.clearTimers();
    const socket = this.detach();
    if (socket) socket.close(code, reason);
    this.rejectAll("closed", "the client was closed");
    if (this.state !== "closed") this.setState("closed", { code, reason });
  }

  join(group) {
    const { ref, promise } = this.request({ action: "join", group });
    if (ref !== null) this.joining.set(group, ref);
    return promise;
  }

  leave(group) {
    this.joined.delete(group);
    this.joining.delete(group);
    this.positions.delete(group);
    return this.request({ action: "leave", group }).promise;
  }

  send(group, message, { echo = true } = {}) {
    return this.request({ action: "send", group, message, echo }).promise;
  }

  ping() {
    return this.request({ action: "ping" }).promise;
  }

  // Connection

  open() {
    if (!this.attempt) this.setState("connecting", { attempt: 0 });
    if (this.stopped) return; // a listener closed the client
    let socket;
    try {
      socket = new this.WebSocket(this.resumeUrl(), [PROTOCOL]);
    } catch (error) {
      this.emit("error", new AetherError("connect_failed", String(error)));
      this.stop({ code: null, reason: String(error) });
      return;
    }
    socket.binaryType = "arraybuffer";
    socket.onopen = () => this.opened();
    socket.onmessage = (event) => this.receive(event.data);
    socket.onclose = (event) => this.dropped(event.code, event.reason);
    socket.onerror = () => {}; // a close event follows and says the rest
    this.socket = socket;
    this.timer("handshake", this.options.timeout, () => this.abandon(4000, "no handshake"));
  }

  opened() {
    this.clearTimer("handshake");
    this.timer("stable", this.options.stableAfter, () => (this.attempt = 0));
    this.heard = true;
    this.watchIdle();
    for (const group of this.joined) this.rejoin(group);
    this.setState("open", { attempt: this.attempt });
  }

  /** The URL with the positions of groups the server joins by URL, to resume them. */
  resumeUrl() {
    this.resuming.clear();
    const since = [];
    for (const [group, { epoch, offset }] of this.positions) {
      if (this.joined.has(group) || this.joining.has(group)) continue;
      since.push(`${group}:${epoch}:${offset}`);
      this.resuming.set(group, { epoch, offset });
    }
    if (!since.length) return this.url;
    const url = new URL(this.url);
    url.searchParams.set("since", since.join(","));
    return url.href;
  }

  rejoin(group) {
    const since = this.positions.get(group);
    const fields = since ? { action: "join", group, since } : { action: "join", group };
    if (since) this.resuming.set(group, since);
    this.request(fields).promise.catch((error) => {
      if (error.code === "disconnected" || error.code === "closed") return;
      if (error.code !== "timeout") this.joined.delete(group);
      this.emit("error", error);
    });
  }

  /** Drop a socket that no longer answers, without waiting for its close event. */
  abandon(code, reason) {
    const socket = this.detach();
    if (socket) socket.close(code, reason);
    this.dropped(code, reason);
  }

  dropped(code, reason) {
    this.detach();
    this.clearTimers();
    this.rejectAll("disconnected", `the connection closed (${code})`);
    if (this.stopped || NO_RECONNECT.has(code)) {
      this.stop({ code, reason });
      return;
    }
    if (RECONNECT_AT_ONCE.has(code)) this.attempt = 0; // no failure: a planned close
    const delay = RECONNECT_AT_ONCE.has(code) ? 0 : this.backoff(this.attempt);
    this.attempt += 1;
    // The timer first: a listener may call close(), which must cancel it.
    this.timer("retry", delay, () => this.open());
    this.setState("reconnecting", { code, reason, attempt: this.attempt, delay });
  }

  /** Full jitter: a uniform wait up to the exponential bound of this attempt. */
  backoff(attempt) {
    const { backoffBase, backoffCap } = this.options;
    return this.random() * Math.min(backoffCap, backoffBase * 2 ** attempt);
  }

  stop(info) {
    this.stopped = true;
    this.clearTimers();
    this.setState("closed", info);
  }

  detach() {
    const socket = this.socket;
    if (socket) socket.onopen = socket.onmessage = socket.onclose = socket.onerror = null;
    this.socket = null;
    return socket;
  }

  watchIdle() {
    if (!this.options.idleTimeout) return;
    this.timer("idle", this.options.idleTimeout, () => {
      if (this.heard) {
        this.heard = false;
        this.watchIdle();
        return;
      }
      this.ping().then(
        () => this.watchIdle(),
        (error) => error.code === "timeout" && this.abandon(4000, "no pong"),
      );
    });
  }

  // Frames

  request(fields) {
    if (!this.socket || this.socket.readyState !== OPEN) {
      const error = new AetherError("not_connected", `the client is ${this.state}`);
      return { ref: null, promise: Promise.reject(error) };
    }
    const ref = this.nextRef++;
    const frame = { ...fields, ref };
    const promise = new Promise((resolve, reject) => {
      const timer = this.setTimeout(() => {
        const detail = `no reply to ${fields.action} within ${this.options.timeout} ms`;
        this.settle(ref, null, new AetherError("timeout", detail, frame));
      }, this.options.timeout);
      this.pending.set(ref, { resolve, reject, timer, frame });
    });
    this.socket.send(JSON.stringify(frame));
    return { ref, promise };
  }

  receive(data) {
    this.heard = true;
    if (typeof data !== "string") {
      this.emit("binary", data);
      return;
    }
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      frame = null;
    }
    if (!frame || typeof frame !== "object") {
      this.emit("frame", data);
    } else if (frame.type === "aether.ping") {
      this.socket?.send(JSON.stringify({ action: "pong" }));
    } else if (frame.type === "aether.message") {
      this.track(frame);
      this.emit("message", frame);
    } else if (PRESENCE.has(frame.type)) {
      this.emit("presence", frame);
    } else if (frame.type === "aether.error") {
      const error = new AetherError(frame.code, frame.detail, frame);
      if (!this.settle(frame.ref, null, error)) this.emit("error", error);
      this.emit("reply", frame);
    } else if (REPLIES.has(frame.type)) {
      if (frame.type === "aether.joined") this.joinedAt(frame);
      this.settle(frame.ref, frame, null);
      this.emit("reply", frame);
    } else {
      this.emit("frame", frame);
    }
  }

  /** Remember the newest position seen in each group that keeps history. */
  track(frame) {
    const { group, epoch, offset } = frame;
    if (group == null || epoch == null || offset == null) return;
    const known = this.positions.get(group);
    if (!known || known.epoch !== epoch || known.offset < offset) {
      this.positions.set(group, { epoch, offset });
    }
  }

  /** A join's position: kept, and told as `resumed` when it answers a resume. On a
   * recovered resume the replay that follows moves the position on. */
  joinedAt(frame) {
    const { group, recovered, epoch, offset } = frame;
    const since = this.resuming.get(group);
    this.resuming.delete(group);
    if (epoch == null || offset == null) {
      this.positions.delete(group);
    } else if (recovered !== true) {
      this.positions.set(group, { epoch, offset });
    }
    if (since && recovered != null) {
      const replayed = recovered ? offset - since.offset : 0;
      this.emit("resumed", { group, recovered, replayed, epoch, offset });
    }
  }

  /** Resolve or reject the command `ref`; false when no command awaits it. */
  settle(ref, frame, error) {
    const entry = this.pending.get(ref);
    if (!entry) return false;
    this.pending.delete(ref);
    this.clearTimeout(entry.timer);
    const { action, group } = entry.frame;
    if (action === "join" && this.joining.get(group) === ref) {
      this.joining.delete(group);
      if (!error) this.joined.add(group);
    }
    if (error) entry.reject(error);
    else entry.resolve(frame);
    return true;
  }

  rejectAll(code, detail) {
    for (const [ref, entry] of [...this.pending]) {
      this.settle(ref, null, new AetherError(code, detail, entry.frame));
    }
  }

  // Plumbing

  setState(state, info = {}) {
    this.state = state;
    this.emit("state", state, info);
  }

  emit(event, ...args) {
    for (const fn of [...(this.listeners.get(event) ?? [])]) {
      try {
        fn(...args);
      } catch (error) {
        (globalThis.reportError ?? console.error)(error);
      }
    }
  }

  timer(name, ms, fn) {
    this.clearTimer(name);
    this.timers[name] = this.setTimeout(() => {
      delete this.timers[name];
      fn();
    }, ms);
  }

  clearTimer(name) {
    if (name in this.timers) this.clearTimeout(this.timers[name]);
    delete this.timers[name];
  }

  clearTimers() {
    for (const name of Object.keys(this.timers)) this.clearTimer(name);
  }
}

/** One group's members, kept from its presence frames: `members` maps each user key
 * to the metadata of its connections ({user, name, connected_at, ...}; anonymous
 * members have opaque "anon-..." keys). A state replaces the map (on every join and
 * rejoin); a diff removes its `leaves`, then adds its `joins`. */
export class PresenceMap {
  constructor(group) {
    this.group = group;
    this.members = new Map();
  }

  /** Apply a presence frame; true when it was this group's. */
  apply(frame) {
    if (frame?.group !== this.group) return false;
    if (frame.type === "aether.presence_state") {
      this.members = new Map(Object.entries(frame.presence ?? {}));
    } else if (frame.type === "aether.presence_diff") {
      for (const key of Object.keys(frame.leaves ?? {})) this.members.delete(key);
      for (const [key, metas] of Object.entries(frame.joins ?? {})) {
        this.members.set(key, metas);
      }
    } else if (frame.type === "aether.left") {
      this.members = new Map();
    } else {
      return false;
    }
    return true;
  }
}

/** Keep `group`'s member map from the client's presence frames (and empty it when
 * the client leaves the group); `onChange(members, frame)` after each change.
 * Returns the PresenceMap, with `stop()` to stop following. */
export function trackPresence(client, group, onChange = () => {}) {
  const map = new PresenceMap(group);
  const follow = (frame) => {
    if (map.apply(frame)) onChange(map.members, frame);
  };
  const offPresence = client.on("presence", follow);
  const offReply = client.on("reply", (frame) => {
    if (frame.type === "aether.left") follow(frame);
  });
  map.stop = () => {
    offPresence();
    offReply();
  };
  return map;
}

/** A client already connecting; `options.on` registers listeners before it starts. */
export function connect(url, options) {
  return new AetherClient(url, options).connect();
}

/** "/ws/x/" against the page's own host (ws: or wss: to match); full URLs as they are. */
export function resolveUrl(url) {
  if (/^wss?:\/\//.test(url)) return url;
  const base = globalThis.location;
  if (!base) throw new TypeError(`a relative URL needs a page location: ${url}`);
  const resolved = new URL(url, base.href);
  resolved.protocol = resolved.protocol === "https:" ? "wss:" : "ws:";
  return resolved.href;
}
