// Reconnecting websocket on a run stream (docs/api-contract.md "Websockets").
// Each message is one item {pos, type, data}. The stream remembers the last pos it delivered
// and reconnects with ?after=<pos>, so a page left open through a server restart catches up
// on what it missed without a reload; items at or below that pos are dropped (exactly once).

import { probeArrival } from "./probe.js";

const indicator = () => document.getElementById("conn");

function showConnection(state, text) {
  const el = indicator();
  if (!el) return;
  el.hidden = false;
  el.dataset.state = state;
  el.textContent = text;
  el.title = `Live updates: ${text}`;
}

export class LiveStream {
  /**
   * @param {string} path e.g. "/ws/runs/12/"
   * @param {{after?: number|null, onItem: (item: object) => void, onGone?: (code: number) => void, onReconnect?: () => void}} opts
   */
  constructor(path, { after = null, onItem, onGone = null, onReconnect = null } = {}) {
    this.path = path;
    this.pos = after;
    this.onItem = onItem;
    this.onGone = onGone;
    this.onReconnect = onReconnect;   // called after a re-connect (not the first connect)
    this.opened = 0;
    this.attempt = 0;
    this.closed = false;
    this.ws = null;
    this.timer = null;
  }

  url() {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const q = this.pos === null || this.pos === undefined ? "" : `?after=${this.pos}`;
    return `${proto}//${location.host}${this.path}${q}`;
  }

  start() {
    this.closed = false;
    showConnection(this.attempt ? "reconnecting" : "connecting", this.attempt ? "reconnecting" : "connecting");
    const ws = new WebSocket(this.url());
    this.ws = ws;
    ws.onopen = () => {
      this.attempt = 0;
      this.opened += 1;
      showConnection("live", "live");
      if (this.opened > 1 && this.onReconnect) this.onReconnect();
    };
    ws.onmessage = (ev) => this.handle(ev.data);
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.closed) return;
      if (ev.code === 4404 || ev.code === 4403 || ev.code === 4401) {
        showConnection("offline", ev.code === 4404 ? "not found" : "no access");
        if (this.onGone) this.onGone(ev.code);
        return;
      }
      this.schedule();
    };
    ws.onerror = () => { /* onclose follows and schedules the retry */ };
    return this;
  }

  /** Exponential backoff with jitter: 0.5 s, 1 s, 2 s ... capped at 10 s. */
  schedule() {
    const delay = Math.min(10000, 500 * 2 ** this.attempt) * (0.75 + Math.random() * 0.5);
    this.attempt += 1;
    showConnection("reconnecting", `reconnecting in ${Math.round(delay / 1000)} s`);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.start(), delay);
  }

  handle(raw) {
    probeArrival();
    let msg;
    try { msg = JSON.parse(raw); } catch { return; }
    const items = Array.isArray(msg) ? msg : [msg];
    for (const item of items) {
      if (typeof item.pos === "number") {
        if (this.pos !== null && this.pos !== undefined && item.pos <= this.pos) continue;
        this.pos = item.pos;
      }
      try { this.onItem(item); } catch (exc) { console.error("live item handler failed", exc, item); }
    }
  }

  stop() {
    this.closed = true;
    clearTimeout(this.timer);
    if (this.ws) this.ws.close(1000);
    this.ws = null;
  }
}
