import assert from "node:assert/strict";
import { test } from "node:test";

import { DEFAULTS } from "../../aether_compat/static/aether_compat/aether.js";
import { openClient } from "./fakes.mjs";

/** Answer every command the socket has not had a reply to yet, successfully. */
function answerAll(socket, from = 0) {
  for (const frame of socket.frames.slice(from)) {
    const type = { join: "aether.joined", leave: "aether.left", ping: "aether.pong" }[frame.action];
    socket.deliver({ type, ref: frame.ref, group: frame.group ?? null });
  }
}

async function reconnect({ clock, socket }) {
  socket().drop(1006);
  clock.advance(DEFAULTS.backoffBase);
  socket().accept();
  return socket();
}

test("after a reconnect it joins again exactly the groups it joined, not left ones", async () => {
  const made = await openClient();
  const { client, socket } = made;
  const joins = ["room:a", "room:b", "room:c"].map((group) => client.join(group));
  answerAll(socket());
  await Promise.all(joins);
  const leaving = client.leave("room:b");
  answerAll(socket(), 3);
  await leaving;
  assert.deepEqual(client.groups.sort(), ["room:a", "room:c"]);

  const second = await reconnect(made);
  const rejoins = second.frames;
  assert.deepEqual(rejoins.map((f) => [f.action, f.group]).sort(), [
    ["join", "room:a"],
    ["join", "room:c"],
  ]);
  answerAll(second);
  const third = await reconnect(made);
  assert.equal(third.frames.length, 2, "rejoined groups stay tracked");
  client.close();
});

test("rejoins are sent before the open state is announced", async () => {
  const made = await openClient();
  const { client, socket } = made;
  const joining = client.join("room:a");
  answerAll(socket());
  await joining;
  const seen = [];
  client.on("state", (state) => seen.push([state, made.socket().sent.length]));
  await reconnect(made);
  assert.deepEqual(seen.at(-1), ["open", 1]);
  client.close();
});

test("groups the server joined by URL are not tracked, so never rejoined", async () => {
  const made = await openClient();
  made.socket().deliver({ type: "aether.message", group: "user:7", sender: null, data: "hi" });
  const second = await reconnect(made);
  assert.deepEqual(second.sent, []);
  made.client.close();
});

test("a join the connection dropped before answering is not rejoined", async () => {
  const made = await openClient();
  const joining = made.client.join("room:a");
  const second = await reconnect(made);
  await assert.rejects(joining, { code: "disconnected" });
  assert.deepEqual(second.sent, []);
  made.client.close();
});

test("a leave called while its join is under way wins", async () => {
  const made = await openClient();
  const { client, socket } = made;
  const joining = client.join("room:a");
  const leaving = client.leave("room:a");
  answerAll(socket());
  await Promise.all([joining, leaving]);
  assert.deepEqual(client.groups, []);
  const second = await reconnect(made);
  assert.deepEqual(second.sent, []);
  client.close();
});

test("a group refused on rejoin is dropped and reported as an error event", async () => {
  const made = await openClient();
  const { client, socket } = made;
  const joins = [client.join("room:a"), client.join("room:b")];
  answerAll(socket());
  await Promise.all(joins);
  const errors = [];
  client.on("error", (error) => errors.push(error));
  const second = await reconnect(made);
  const [a, b] = second.frames;
  second.deliver({ type: "aether.joined", ref: a.ref, group: a.group });
  second.deliver({ type: "aether.error", ref: b.ref, group: b.group, code: "forbidden", detail: "no" });
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(errors.map((e) => [e.code, e.group]), [["forbidden", "room:b"]]);
  assert.deepEqual(client.groups, ["room:a"]);
  client.close();
});
