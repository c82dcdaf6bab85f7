/* page.js: what the demo pages share besides the client (aether_compat/aether.js):
 * DOM helpers, the connection state badge, and the reading of the demo's messages,
 * which are ChannelMessage JSON carried in the `data` of aether.message frames. */

export const $ = (id) => document.getElementById(id);

export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.className = value;
    else if (key === "style") node.style.cssText = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function colour(name) {
  let hash = 0;
  for (const ch of String(name)) hash = (hash * 31 + ch.codePointAt(0)) >>> 0;
  return "hsl(" + (hash % 360) + " 55% 52%)";
}

export function avatar(name) {
  const initial = String(name || "?").trim().charAt(0).toUpperCase() || "?";
  return el("span", { class: "avatar", style: "background:" + colour(name) }, initial);
}

export function time(ms) {
  return new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

const STATE_WORDS = {
  connecting: "Connecting…",
  open: "Live",
  reconnecting: "Reconnecting…",
  closed: "Disconnected",
};

/** Show a client state ("connecting", "open", "reconnecting", "closed") in `node`. */
export function setStatus(node, state) {
  node.className = "status " + state;
  node.dataset.state = state;
  node.textContent = STATE_WORDS[state] || state;
}

/** The ChannelMessage in an aether.message frame: {type, payload, sender, target,
 * timestamp}; text that is not one reads as a plain "text" message. */
export function unwrap(frame) {
  try {
    const message = JSON.parse(frame.data);
    if (message && typeof message.type === "string" && "payload" in message) return message;
  } catch {
    /* plain text broadcast */
  }
  return {
    type: "text",
    payload: frame.data,
    sender: frame.sender,
    target: frame.group,
    timestamp: Date.now(),
  };
}

/** A system line for a message that is not chat: a plain-text broadcast (such as
 * `manage.py broadcast room:lobby "text"`) or a ChannelMessage type the page does not
 * draw otherwise, so that nothing sent to the room goes unseen. */
export function systemLine(message) {
  const text = message.type === "text" ? message.payload : message.type + ": " + message.payload;
  const from = message.sender ? message.sender + ": " : "";
  return el("p", { class: "notice system", "data-type": message.type }, from + text);
}
