/* aether.js: the one WebSocket client of the demo pages (no build step).
 *
 *   const socket = Aether.connect("/ws/chat/lobby/", {
 *     onStatus: (state) => ...,            // "connecting" | "open" | "closed"
 *     onMessage: (message) => ...,         // every ChannelMessage the server sends
 *   });
 *   socket.command("send", "room:lobby", "hello");
 *
 * Frames from the server are ChannelMessage JSON: {type, payload, sender, target,
 * timestamp}. Replies (aether.joined/left/sent/error) carry a JSON payload, which
 * `Aether.data(message)` decodes. The socket reconnects with backoff, except after
 * the closes that mean "do not retry as is" (4008 flood, 4009 frame too big).
 */
(function () {
  "use strict";

  const NO_RETRY = new Set([4008, 4009]);

  function url(path) {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    return scheme + "//" + location.host + path;
  }

  function parse(text) {
    try {
      const message = JSON.parse(text);
      if (message && typeof message.type === "string") return message;
    } catch (error) { /* plain text broadcast */ }
    return { type: "text", payload: text, sender: null, target: null, timestamp: Date.now() };
  }

  function data(message) {
    try { return JSON.parse(message.payload); } catch (error) { return {}; }
  }

  function connect(path, handlers) {
    const on = Object.assign({ onStatus() {}, onMessage() {}, onClose() {} }, handlers);
    let socket = null;
    let delay = 500;
    let stopped = false;

    function open() {
      on.onStatus("connecting");
      socket = new WebSocket(url(path));
      socket.onopen = () => { delay = 500; on.onStatus("open"); };
      socket.onmessage = (event) => {
        if (typeof event.data === "string") on.onMessage(parse(event.data));
      };
      socket.onclose = (event) => {
        const retry = !stopped && !NO_RETRY.has(event.code);
        on.onStatus(retry ? "closed" : "stopped");
        on.onClose(event);
        if (!retry) return;
        setTimeout(open, delay);
        delay = Math.min(delay * 2, 8000);
      };
    }

    open();
    return {
      command(action, group, message) {
        if (!socket || socket.readyState !== WebSocket.OPEN) return false;
        const frame = { action, group };
        if (message !== undefined) frame.message = message;
        socket.send(JSON.stringify(frame));
        return true;
      },
      close() { stopped = true; if (socket) socket.close(1000); },
    };
  }

  /* Small page helpers shared by the templates. */
  function el(tag, attrs, ...children) {
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

  function colour(name) {
    let hash = 0;
    for (const ch of String(name)) hash = (hash * 31 + ch.codePointAt(0)) >>> 0;
    return "hsl(" + (hash % 360) + " 55% 52%)";
  }

  function avatar(name) {
    const initial = String(name || "?").trim().charAt(0).toUpperCase() || "?";
    return el("span", { class: "avatar", style: "background:" + colour(name) }, initial);
  }

  function time(ms) {
    return new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  function setStatus(node, state) {
    const words = {
      connecting: "Connecting…", open: "Live", closed: "Reconnecting…", stopped: "Disconnected",
    };
    node.className = "status " + (state === "stopped" ? "closed" : state);
    node.textContent = words[state] || state;
  }

  window.Aether = { connect, parse, data, el, avatar, colour, time, setStatus };
})();
