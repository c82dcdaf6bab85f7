import assert from "node:assert/strict";
import { test } from "node:test";

import { DEFAULTS } from "../../aether_compat/static/aether_compat/aether.js";
import { openClient } from "./fakes.mjs";

function message(group, offset, epoch = "e1") {
  return { type: "aether.message", group, sender: null, data: `m${offset}`, offset, epoch };
}

async function reconnect({ clock, socket }) {
  socket().drop(1006);
  clock.advance(DEFAULTS.backoffBase);
  socket().accept();
  return socket();
}

async function joinedWithHistory(made, group, offset = 0) {
  const joining = made.client.join(group);
  made.socket().reply("aether.joined", { recovered: null, epoch: "e1", offset });
  await joining;
}

test("a rejoin carries the last position seen, and the resume is told with its count", async () => {
  const made = await openClient();
  const { client } = made;
  await joinedWithHistory(made, "room:a", 3);
  made.socket().deliver(message("room:a", 4));
  made.socket().deliver(message("room:a", 5));
  assert.deepEqual(client.positions.get("room:a"), { epoch: "e1", offset: 5 });
  const resumed = [];
  client.on("resumed", (info) => resumed.push(info));

  const second = await reconnect(made);
  assert.deepEqual(second.frames[0].since, { epoch: "e1", offset: 5 });
  second.reply("aether.joined", { recovered: true, epoch: "e1", offset: 8 });
  assert.deepEqual(resumed, [
    { group: "room:a", recovered: true, replayed: 3, epoch: "e1", offset: 8 },
  ]);
  for (const offset of [6, 7, 8]) second.deliver(message("room:a", offset));
  assert.deepEqual(client.positions.get("room:a"), { epoch: "e1", offset: 8 });
  client.close();
});

test("a resume that cannot be recovered says so and starts from the new position", async () => {
  const made = await openClient();
  const { client } = made;
  await joinedWithHistory(made, "room:a");
  made.socket().deliver(message("room:a", 1));
  const resumed = [];
  client.on("resumed", (info) => resumed.push(info));
  const second = await reconnect(made);
  second.reply("aether.joined", { recovered: false, epoch: "e2", offset: 40 });
  assert.deepEqual(resumed, [
    { group: "room:a", recovered: false, replayed: 0, epoch: "e2", offset: 40 },
  ]);
  assert.deepEqual(client.positions.get("room:a"), { epoch: "e2", offset: 40 });
  const third = await reconnect(made);
  assert.deepEqual(third.frames[0].since, { epoch: "e2", offset: 40 });
  client.close();
});

test("groups joined by URL resume through the URL of the reconnect", async () => {
  const made = await openClient();
  const { client } = made;
  assert.equal(made.socket().url, "ws://test/ws/", "no positions yet: the plain URL");
  made.socket().deliver({
    type: "aether.joined", ref: null, group: "room:x", recovered: null, epoch: "e1", offset: 2,
  });
  made.socket().deliver(message("room:x", 3));
  const resumed = [];
  client.on("resumed", (info) => resumed.push(info));
  const second = await reconnect(made);
  const url = new URL(second.url);
  assert.equal(url.searchParams.get("since"), "room:x:e1:3");
  assert.deepEqual(second.frames, [], "the server rejoins URL groups: no join sent");
  second.deliver({
    type: "aether.joined", ref: null, group: "room:x", recovered: true, epoch: "e1", offset: 5,
  });
  assert.deepEqual(resumed, [
    { group: "room:x", recovered: true, replayed: 2, epoch: "e1", offset: 5 },
  ]);
  client.close();
});

test("a group without history has no position and resumes nothing", async () => {
  const made = await openClient();
  const { client } = made;
  const joining = client.join("room:plain");
  made.socket().reply("aether.joined", { recovered: null, epoch: null, offset: null });
  await joining;
  made.socket().deliver({ ...message("room:plain", 1), offset: null, epoch: null });
  assert.equal(client.positions.has("room:plain"), false);
  const second = await reconnect(made);
  assert.equal("since" in second.frames[0], false);
  assert.equal(second.url, "ws://test/ws/");
  client.close();
});

test("a left group is forgotten, and an older message never moves a position back", async () => {
  const made = await openClient();
  const { client } = made;
  await joinedWithHistory(made, "room:a");
  made.socket().deliver(message("room:a", 9));
  made.socket().deliver(message("room:a", 7));
  assert.deepEqual(client.positions.get("room:a"), { epoch: "e1", offset: 9 });
  const leaving = client.leave("room:a");
  made.socket().reply("aether.left");
  await leaving;
  assert.equal(client.positions.has("room:a"), false);
  client.close();
});
