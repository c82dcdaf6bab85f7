import assert from "node:assert/strict";
import { test } from "node:test";

import { DEFAULTS, PROTOCOL, connect } from "../../aether_compat/static/aether_compat/aether.js";
import { FakeClock, fakeWebSocket, makeClient, openClient } from "./fakes.mjs";

test("it always offers the aether.v1 subprotocol and takes binary as ArrayBuffer", async () => {
  const { socket } = await openClient();
  assert.equal(PROTOCOL, "aether.v1");
  assert.deepEqual(socket().protocols, ["aether.v1"]);
  assert.equal(socket().url, "ws://test/ws/");
  assert.equal(socket().binaryType, "arraybuffer");
});

test("it answers the server's aether.ping with a pong", async () => {
  const { socket } = await openClient();
  socket().deliver({ type: "aether.ping" });
  assert.deepEqual(socket().frames, [{ action: "pong" }]);
});

test("aether.message frames, binary frames and other frames are events", async () => {
  const { client, socket } = await openClient();
  const seen = [];
  for (const name of ["message", "binary", "frame", "reply", "error"]) {
    client.on(name, (value) => seen.push([name, value]));
  }
  const message = {
    type: "aether.message", group: "room:a", sender: "alice", data: "hi", offset: null, epoch: null,
  };
  socket().deliver(message);
  const bytes = new Uint8Array([1, 2, 3]).buffer;
  socket().deliver(bytes);
  socket().deliver({ type: "demo.custom", x: 1 });
  socket().deliver("not json");
  assert.deepEqual(seen, [
    ["message", message],
    ["binary", bytes],
    ["frame", { type: "demo.custom", x: 1 }],
    ["frame", "not json"],
  ]);
});

test("state events: connecting, open, reconnecting, open, closed", async () => {
  const { client, clock, socket, states } = await makeClient();
  client.connect();
  socket().accept();
  socket().drop(1006, "gone");
  clock.advance(DEFAULTS.backoffBase);
  socket().accept();
  client.close();
  assert.deepEqual(states.map((s) => s.state), [
    "connecting", "open", "reconnecting", "open", "closed",
  ]);
  const reconnecting = states[2];
  assert.equal(reconnecting.code, 1006);
  assert.equal(reconnecting.reason, "gone");
  assert.equal(reconnecting.attempt, 1);
  assert.ok(reconnecting.delay >= 0 && reconnecting.delay < DEFAULTS.backoffBase);
});

test("on() returns an unsubscribe function; off() removes a listener too", async () => {
  const { client, socket } = await openClient();
  const a = [];
  const b = [];
  const stopA = client.on("message", (frame) => a.push(frame.data));
  const listenB = (frame) => b.push(frame.data);
  client.on("message", listenB);
  const say = (data) => socket().deliver({ type: "aether.message", group: null, sender: null, data });
  say("one");
  stopA();
  say("two");
  client.off("message", listenB);
  say("three");
  assert.deepEqual(a, ["one"]);
  assert.deepEqual(b, ["one", "two"]);
});

test("a listener that throws does not stop the others or the client", async () => {
  const { client, socket } = await openClient();
  const reported = [];
  const saved = globalThis.reportError;
  globalThis.reportError = (error) => reported.push(error.message);
  try {
    const got = [];
    client.on("message", () => {
      throw new Error("listener bug");
    });
    client.on("message", (frame) => got.push(frame.data));
    socket().deliver({ type: "aether.message", group: null, sender: null, data: "x" });
    socket().deliver({ type: "aether.ping" });
    assert.deepEqual(got, ["x"]);
    assert.deepEqual(reported, ["listener bug"]);
    assert.deepEqual(socket().frames, [{ action: "pong" }]);
  } finally {
    globalThis.reportError = saved;
  }
});

test("connect() starts at once and options.on listens from the first state", async () => {
  const clock = new FakeClock();
  const WebSocket = fakeWebSocket(clock);
  const states = [];
  const client = connect("ws://test/ws/", {
    WebSocket,
    setTimeout: clock.setTimeout,
    clearTimeout: clock.clearTimeout,
    on: { state: (state) => states.push(state) },
  });
  WebSocket.instances[0].accept();
  assert.deepEqual(states, ["connecting", "open"]);
  client.close();
});

test("relative URLs follow the page: ws: for http:, wss: for https:", async () => {
  const { resolveUrl } = await import("../../aether_compat/static/aether_compat/aether.js");
  const saved = Object.getOwnPropertyDescriptor(globalThis, "location");
  try {
    globalThis.location = { href: "https://example.com/chat/lobby/" };
    assert.equal(resolveUrl("/ws/chat/lobby/"), "wss://example.com/ws/chat/lobby/");
    globalThis.location = { href: "http://127.0.0.1:8000/" };
    assert.equal(resolveUrl("/ws/x/"), "ws://127.0.0.1:8000/ws/x/");
    assert.equal(resolveUrl("wss://other/ws/"), "wss://other/ws/");
  } finally {
    if (saved) Object.defineProperty(globalThis, "location", saved);
    else delete globalThis.location;
  }
});

test("a silent server is pinged, and the socket replaced when no pong comes", async () => {
  const { client, clock, WebSocket, socket } = await openClient({ idleTimeout: 30000 });
  clock.advance(30000);
  assert.deepEqual(socket().sent, [], "the first quiet period only clears the flag");
  clock.advance(30000);
  assert.equal(socket().frames[0].action, "ping");
  socket().reply("aether.pong");
  await new Promise((resolve) => setImmediate(resolve));
  socket().deliver({ type: "aether.ping" }); // heard: the next period sends nothing
  clock.advance(30000);
  assert.equal(socket().frames.length, 2);
  clock.advance(30000);
  assert.equal(socket().frames.at(-1).action, "ping");
  clock.advance(DEFAULTS.timeout);
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(socket().closedWith.code, 4000);
  assert.equal(client.state, "reconnecting");
  clock.advance(DEFAULTS.backoffBase);
  assert.equal(WebSocket.instances.length, 2);
  client.close();
});

test("idleTimeout 0 turns the liveness check off", async () => {
  const { client, clock, socket } = await openClient({ idleTimeout: 0 });
  clock.advance(10 * 60 * 1000);
  assert.deepEqual(socket().sent, []);
  assert.equal(client.state, "open");
});
