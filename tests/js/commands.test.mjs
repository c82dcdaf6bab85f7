import assert from "node:assert/strict";
import { test } from "node:test";

import { AetherError, DEFAULTS } from "../../aether_compat/static/aether_compat/aether.js";
import { makeClient, openClient } from "./fakes.mjs";

test("each command carries a fresh ref and resolves with the reply of that ref", async () => {
  const { client, socket } = await openClient();
  const joined = client.join("room:a");
  const sent = client.send("room:a", "hello", { echo: false });
  const pong = client.ping();
  const [join, send, ping] = socket().frames;
  assert.deepEqual(join, { action: "join", group: "room:a", ref: join.ref });
  assert.deepEqual(send, {
    action: "send", group: "room:a", message: "hello", echo: false, ref: send.ref,
  });
  assert.deepEqual(ping, { action: "ping", ref: ping.ref });
  assert.equal(new Set([join.ref, send.ref, ping.ref]).size, 3);

  // Replies matched by ref, not by arrival order.
  const counts = { type: "aether.sent", ref: send.ref, group: "room:a", sent_count: 3, failed_count: 1 };
  socket().deliver({ type: "aether.pong", ref: ping.ref });
  socket().deliver(counts);
  socket().deliver({ type: "aether.joined", ref: join.ref, group: "room:a" });
  assert.deepEqual(await sent, counts);
  assert.equal((await joined).type, "aether.joined");
  assert.equal((await pong).type, "aether.pong");
  client.close();
});

test("send echoes by default", async () => {
  const { client, socket } = await openClient();
  client.send("room:a", "hi").catch(() => {});
  assert.equal(socket().frames[0].echo, true);
  client.close();
});

test("refs stay unique across reconnects", async () => {
  const { client, clock, socket } = await openClient();
  client.ping().catch(() => {});
  const first = socket().frames[0].ref;
  socket().drop(1006);
  clock.advance(DEFAULTS.backoffBase);
  socket().accept();
  client.ping().catch(() => {});
  assert.notEqual(socket().frames[0].ref, first);
  client.close();
});

test("an aether.error reply rejects with an AetherError carrying code and detail", async () => {
  const { client, socket } = await openClient();
  const errors = [];
  client.on("error", (error) => errors.push(error));
  const replies = [];
  client.on("reply", (frame) => replies.push(frame));
  const joining = client.join("dashboard:staff");
  socket().reply("aether.error", { code: "forbidden", detail: "staff only" });
  const error = await joining.then(() => assert.fail("resolved"), (e) => e);
  assert.ok(error instanceof AetherError);
  assert.ok(error instanceof Error);
  assert.equal(error.code, "forbidden");
  assert.equal(error.detail, "staff only");
  assert.equal(error.group, "dashboard:staff");
  assert.deepEqual(errors, [], "an awaited error is not also an error event");
  assert.equal(replies.length, 1);
  assert.deepEqual(client.groups, [], "a refused join is not rejoined later");
  client.close();
});

test("an error frame that no command awaits is an error event", async () => {
  const { client, socket } = await openClient();
  const errors = [];
  client.on("error", (error) => errors.push(error));
  socket().deliver({ type: "aether.error", ref: null, group: null, code: "bad_frame", detail: "?" });
  socket().deliver({ type: "aether.error", ref: 999, group: null, code: "late", detail: "?" });
  assert.deepEqual(errors.map((e) => e.code), ["bad_frame", "late"]);
  client.close();
});

test("a command with no reply in time rejects with code timeout", async () => {
  const { client, clock, socket } = await openClient({ timeout: 2000 });
  const pinging = client.ping();
  clock.advance(1999);
  let settled = false;
  pinging.finally(() => (settled = true)).catch(() => {});
  await Promise.resolve();
  assert.equal(settled, false);
  clock.advance(1);
  await assert.rejects(pinging, { name: "AetherError", code: "timeout" });
  const late = [];
  client.on("reply", (frame) => late.push(frame));
  socket().reply("aether.pong");
  assert.equal(late.length, 1, "a late reply is only an event");
  client.close();
});

test("commands awaiting a reply reject when the socket drops", async () => {
  const { client, clock, socket } = await openClient();
  const commands = [client.join("room:a"), client.send("room:a", "x"), client.ping()];
  socket().drop(1006);
  for (const command of commands) {
    await assert.rejects(command, { code: "disconnected" });
  }
  assert.deepEqual(clock.pending().length, 1, "only the retry timer is left");
  client.close();
});

test("commands reject with not_connected while the socket is not open", async () => {
  const { client, socket } = await makeClient();
  await assert.rejects(client.ping(), { code: "not_connected" });
  client.connect();
  await assert.rejects(client.join("room:a"), { code: "not_connected" });
  assert.deepEqual(socket().sent, []);
  socket().accept();
  socket().drop(1006);
  await assert.rejects(client.send("room:a", "x"), { code: "not_connected" });
  client.close();
});

test("close() rejects what is pending with code closed", async () => {
  const { client, socket } = await openClient();
  const pinging = client.ping();
  client.close();
  await assert.rejects(pinging, { code: "closed" });
  assert.equal(socket().closedWith.code, 1000);
});
