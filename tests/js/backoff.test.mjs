import assert from "node:assert/strict";
import { test } from "node:test";

import { DEFAULTS } from "../../aether_compat/static/aether_compat/aether.js";
import { FakeClock, busiestWindow, fakeWebSocket, makeClient, openClient } from "./fakes.mjs";

const { backoffBase: BASE, backoffCap: CAP, stableAfter: STABLE } = DEFAULTS;
const bound = (attempt) => Math.min(CAP, BASE * 2 ** attempt);

/** When each socket of `WebSocket` was created, as delays since the one before. */
function gaps(WebSocket) {
  const times = WebSocket.instances.map((socket) => socket.createdAt);
  return times.slice(1).map((t, i) => t - times[i]);
}

test("each retry waits a random time below base * 2^attempt, capped", async () => {
  const randoms = [0, 0.999999, 0.5, 0.25, 0.999999, 0.999999, 0.999999, 0.999999, 0.999999];
  const clock = new FakeClock();
  const WebSocket = fakeWebSocket(clock, {
    onCreate: (socket) => clock.setTimeout(() => socket.drop(1006), 0),
  });
  const { client } = await makeClient({ clock, WebSocket, random: () => randoms.shift() ?? 0.5 });
  client.connect();
  clock.advance(10 * CAP);
  const waits = gaps(WebSocket).slice(0, 9);
  const expected = [0, 0.999999 * 2 * BASE, 0.5 * 4 * BASE, 0.25 * 8 * BASE];
  expected.push(...[4, 5, 6, 7, 8].map((attempt) => 0.999999 * bound(attempt)));
  waits.forEach((wait, i) => assert.ok(Math.abs(wait - expected[i]) < 1e-6, `attempt ${i}`));
  assert.ok(bound(3) < CAP && bound(4) === CAP, "the cap bounds the fifth retry on");
  client.close();
});

test("with a seeded random source every wait stays within its attempt's bound", async () => {
  for (const seed of [1, 2, 3, 42, 2024]) {
    const clock = new FakeClock();
    const WebSocket = fakeWebSocket(clock, {
      onCreate: (socket) => clock.setTimeout(() => socket.drop(1006), 0),
    });
    const { client } = await makeClient({ clock, WebSocket, seed });
    client.connect();
    clock.advance(20 * CAP);
    const waits = gaps(WebSocket);
    assert.ok(waits.length >= 20);
    waits.forEach((wait, attempt) => {
      assert.ok(wait >= 0 && wait < bound(attempt), `seed ${seed} attempt ${attempt}: ${wait}`);
    });
    const late = waits.slice(8);
    assert.ok(Math.max(...late) > CAP / 2, "capped waits still use the whole range");
    client.close();
  }
});

/** 100 clients on one clock, all dropped at t = 0; returns every reconnect time. */
async function dropHundred(seed, { serverDown }) {
  const clock = new FakeClock();
  let up = true;
  const WebSocket = fakeWebSocket(clock, {
    onCreate: (socket) => clock.setTimeout(() => (up ? socket.accept() : socket.drop(1006)), 0),
  });
  const clients = [];
  for (let i = 0; i < 100; i++) {
    const { client } = await makeClient({ clock, WebSocket, seed: seed * 1000 + i });
    clients.push(client.connect());
  }
  clock.advance(STABLE * 2);
  assert.ok(clients.every((client) => client.state === "open"));
  const before = WebSocket.instances.length;
  const start = clock.now;
  up = !serverDown;
  for (const socket of WebSocket.instances.slice()) socket.drop(1006);
  clock.advance(serverDown ? 8 * CAP : 2 * BASE);
  clients.forEach((client) => client.close());
  return WebSocket.instances.slice(before).map((socket) => socket.createdAt - start);
}

test("100 clients dropped at once: at most 20 reconnect in any 100 ms", async () => {
  const worst = { back: 0, down: 0 };
  for (const seed of [1, 2, 3, 4, 5]) {
    const back = await dropHundred(seed, { serverDown: false });
    assert.equal(back.length, 100, "each client reconnects once");
    assert.ok(Math.max(...back) < BASE && Math.max(...back) > BASE * 0.9);
    worst.back = Math.max(worst.back, busiestWindow(back));
    const down = await dropHundred(seed, { serverDown: true });
    assert.ok(down.length > 800, "the clients keep trying while the server is down");
    worst.down = Math.max(worst.down, busiestWindow(down));
  }
  console.log(`busiest 100 ms: ${worst.back} (server back), ${worst.down} (server down)`);
  assert.ok(worst.back <= 20, `${worst.back} reconnects in one 100 ms window`);
  assert.ok(worst.down <= 20, `${worst.down} reconnects in one 100 ms window`);
});

test("the attempt count starts over once a connection stays open", async () => {
  const { client, clock, socket } = await makeClient({ random: () => 0.999999 });
  client.connect();
  for (let attempt = 0; attempt < 3; attempt++) {
    socket().drop(1006);
    assert.ok(Math.abs(clock.pending()[0] - 0.999999 * bound(attempt)) < 1e-6);
    clock.advance(clock.pending()[0]);
  }
  socket().accept();
  clock.advance(STABLE - 1);
  socket().drop(1006);
  assert.ok(Math.abs(clock.pending()[0] - 0.999999 * bound(3)) < 1e-6, "not stable yet");
  clock.advance(clock.pending()[0]);
  socket().accept();
  clock.advance(STABLE);
  socket().drop(1006);
  assert.ok(Math.abs(clock.pending()[0] - 0.999999 * bound(0)) < 1e-6, "reset");
  client.close();
});

for (const code of [4008, 4009]) {
  test(`no reconnect after close code ${code}`, async () => {
    const { client, clock, WebSocket, socket, states } = await openClient();
    socket().drop(code, "refused");
    clock.advance(10 * CAP);
    assert.equal(WebSocket.instances.length, 1);
    assert.equal(client.state, "closed");
    assert.deepEqual(states.at(-1), { state: "closed", code, reason: "refused" });
    assert.deepEqual(clock.pending(), []);
    const seen = states.length;
    client.close();
    assert.equal(states.length, seen, "closing a closed client announces nothing");
  });
}

for (const code of [1001, 1006, 4001, 4013]) {
  test(`reconnects after close code ${code}`, async () => {
    const { clock, WebSocket, socket, states } = await openClient();
    socket().drop(code);
    assert.equal(states.at(-1).state, "reconnecting");
    assert.equal(states.at(-1).code, code);
    clock.advance(BASE);
    assert.equal(WebSocket.instances.length, 2);
  });
}

test("close code 4012 (maximum lifetime) reconnects at once, the count starts over", async () => {
  const { clock, WebSocket, socket, states } = await openClient();
  socket().drop(1006);
  clock.advance(clock.pending()[0]);
  socket().accept();
  socket().drop(4012, "lifetime");
  assert.deepEqual(
    { state: states.at(-1).state, code: states.at(-1).code, delay: states.at(-1).delay },
    { state: "reconnecting", code: 4012, delay: 0 },
  );
  clock.advance(0);
  assert.equal(WebSocket.instances.length, 3);
  socket().accept();
  socket().drop(1006);
  assert.ok(clock.pending()[0] < bound(1), "attempt 1 after the planned close");
});

test("no reconnect after close(), whatever the socket does next", async () => {
  const { client, clock, WebSocket, socket, states } = await openClient();
  const first = socket();
  client.close();
  assert.deepEqual(first.closedWith, { code: 1000, reason: "" });
  first.drop(1006);
  clock.advance(10 * CAP);
  assert.equal(WebSocket.instances.length, 1);
  assert.equal(states.at(-1).state, "closed");
  assert.deepEqual(clock.pending(), []);
});

test("close() during a backoff wait cancels the retry", async () => {
  const { client, clock, WebSocket, socket } = await openClient();
  socket().drop(1006);
  client.close();
  clock.advance(10 * CAP);
  assert.equal(WebSocket.instances.length, 1);
  assert.equal(client.state, "closed");
});

test("a handshake that never completes is abandoned and retried", async () => {
  const { client, clock, WebSocket, socket } = await makeClient();
  client.connect();
  clock.advance(DEFAULTS.timeout);
  assert.equal(socket().closedWith.code, 4000);
  assert.equal(client.state, "reconnecting");
  clock.advance(BASE);
  assert.equal(WebSocket.instances.length, 2);
  client.close();
});

for (const state of ["connecting", "reconnecting"]) {
  test(`close() from a "${state}" listener stops the client for good`, async () => {
    const { client, clock, WebSocket, socket } = await makeClient();
    client.on("state", (now) => now === state && client.close());
    client.connect();
    if (state === "reconnecting") {
      socket().accept();
      socket().drop(1006);
    }
    clock.advance(10 * CAP);
    assert.equal(WebSocket.instances.length, state === "connecting" ? 0 : 1);
    assert.equal(client.state, "closed");
    assert.deepEqual(clock.pending(), []);
  });
}
