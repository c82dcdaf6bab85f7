import assert from "node:assert/strict";
import { test } from "node:test";

import { PresenceMap, trackPresence } from "../../aether_compat/static/aether_compat/aether.js";
import { openClient } from "./fakes.mjs";

const state = (group, presence) => ({ type: "aether.presence_state", group, presence });
const diff = (group, joins = {}, leaves = {}) => ({
  type: "aether.presence_diff", group, joins, leaves,
});

test("presence frames are presence events, not generic frames", async () => {
  const { client, socket } = await openClient();
  const seen = [];
  for (const name of ["presence", "frame", "message"]) {
    client.on(name, (value) => seen.push([name, value]));
  }
  const first = state("room:a", { 1: [{ user: "1", name: "ann" }] });
  const second = diff("room:a", { 2: [{ user: "2" }] });
  socket().deliver(first);
  socket().deliver(second);
  assert.deepEqual(seen, [["presence", first], ["presence", second]]);
});

test("trackPresence keeps a group's member map from its state and diffs", async () => {
  const { client, socket } = await openClient();
  const changes = [];
  const room = trackPresence(client, "room:a", (members, frame) => {
    changes.push([[...members.keys()].sort(), frame.type]);
  });
  socket().deliver(state("room:a", { 1: [{ user: "1" }], "anon-f00": [{}] }));
  socket().deliver(diff("room:b", { 9: [{ user: "9" }] })); // another group's
  socket().deliver(diff("room:a", { 2: [{ user: "2", name: "bo" }] }, { "anon-f00": [{}] }));
  assert.deepEqual([...room.members.entries()], [
    ["1", [{ user: "1" }]],
    ["2", [{ user: "2", name: "bo" }]],
  ]);
  assert.deepEqual(changes, [
    [["1", "anon-f00"], "aether.presence_state"],
    [["1", "2"], "aether.presence_diff"],
  ]);
  room.stop();
  socket().deliver(diff("room:a", {}, { 1: [{}] }));
  assert.equal(room.members.size, 2);
});

test("a diff applies its leaves before its joins (a user who left and came back)", () => {
  const map = new PresenceMap("g");
  map.apply(state("g", { 1: [{ device: "old" }] }));
  map.apply(diff("g", { 1: [{ device: "new" }] }, { 1: [{ device: "old" }] }));
  assert.deepEqual(map.members.get("1"), [{ device: "new" }]);
});

test("a new state replaces the map (a rejoin after a reconnect)", () => {
  const map = new PresenceMap("g");
  map.apply(state("g", { 1: [{}], 2: [{}] }));
  map.apply(state("g", { 3: [{}] }));
  assert.deepEqual([...map.members.keys()], ["3"]);
});

test("leaving the group empties its map", async () => {
  const { client, socket } = await openClient();
  const room = trackPresence(client, "room:a");
  socket().deliver(state("room:a", { 1: [{}] }));
  socket().deliver({ type: "aether.left", ref: null, group: "room:a" });
  assert.equal(room.members.size, 0);
});
