// The WebSocket to /ws: JSON frames, heartbeat pings, reconnect with backoff and jitter.

const MIN_DELAY = 500;
const MAX_DELAY = 30000;

export class Socket {
  /**
   * onFrame(frame) gets every server frame; onStatus(state) gets
   * "connecting" | "connected" | "reconnecting" | "offline"; onBanned() runs when the
   * server closes with 4003 (the user was banned: no reconnect);
   * beforeReconnect() runs after a connection that never said hello (e.g. an expired
   * cookie: the browser hides the 401 of the handshake) and may refresh the session.
   */
  constructor({ url, onFrame, onStatus, onBanned, beforeReconnect }) {
    this.url = url;
    this.onFrame = onFrame;
    this.onStatus = onStatus;
    this.onBanned = onBanned;
    this.beforeReconnect = beforeReconnect;
    this.ws = null;
    this.attempt = 0;
    this.timer = null;
    this.heartbeat = null;
    this.lastFrameAt = 0;
    this.greeted = false;
    this.checkFirst = false; // the last connection never said hello: check the session
    this.stopped = false;
    window.addEventListener('online', () => this.reconnectNow());
    document.addEventListener('visibilitychange', () => {
      if (document.visibilityState === 'visible') this.reconnectNow();
    });
  }

  get isOpen() {
    return Boolean(this.ws && this.ws.readyState === WebSocket.OPEN && this.greeted);
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    this.stopHeartbeat();
    if (this.ws) this.ws.close(1000);
  }

  /** Send a frame; false when not connected (the caller falls back to HTTP). */
  send(frame) {
    if (!this.isOpen) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  connect() {
    clearTimeout(this.timer);
    this.greeted = false;
    this.onStatus(this.attempt ? 'reconnecting' : 'connecting');
    const ws = new WebSocket(this.url);
    this.ws = ws;
    ws.addEventListener('message', (event) => this.handle(ws, event));
    ws.addEventListener('close', (event) => this.closed(ws, event));
  }

  handle(ws, event) {
    if (ws !== this.ws) return;
    this.lastFrameAt = Date.now();
    let frame;
    try {
      frame = JSON.parse(event.data);
    } catch {
      return;
    }
    if (frame.type === 'hello') {
      this.greeted = true;
      this.attempt = 0;
      this.startHeartbeat((frame.heartbeat_interval || 30) * 1000);
      this.onStatus('connected');
    }
    if (frame.type !== 'pong') this.onFrame(frame);
  }

  async closed(ws, event) {
    if (ws !== this.ws) return;
    this.stopHeartbeat();
    const wasGreeted = this.greeted;
    this.greeted = false;
    this.ws = null;
    if (this.stopped) return;
    if (event.code === 4003) { // banned
      this.onStatus('offline');
      this.onBanned?.();
      return;
    }
    this.onStatus(navigator.onLine === false ? 'offline' : 'reconnecting');
    if (!wasGreeted || event.code === 4001) this.checkFirst = true;
    this.schedule();
  }

  schedule() {
    if (this.stopped || this.ws) return;
    const base = Math.min(MAX_DELAY, MIN_DELAY * 2 ** this.attempt);
    const delay = base / 2 + Math.random() * (base / 2); // "equal jitter"
    this.attempt += 1;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.reconnect(), delay);
  }

  /**
   * The next attempt. The session is checked (and refreshed) right before it, not before
   * the backoff: a cookie refreshed before a wait of a few seconds may have expired by the
   * end of it, and every later attempt would wait longer and fail again.
   */
  async reconnect() {
    if (this.stopped || this.ws) return;
    if (this.checkFirst) {
      this.checkFirst = false;
      await this.beforeReconnect?.();
      if (this.stopped || this.ws) return;
    }
    this.connect();
  }

  /** Skip the remaining backoff (the network came back, the tab became visible). */
  reconnectNow() {
    if (this.stopped || this.ws) return;
    this.attempt = Math.min(this.attempt, 1);
    this.reconnect();
  }

  startHeartbeat(intervalMs) {
    this.stopHeartbeat();
    this.heartbeat = setInterval(() => {
      if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return;
      // No frame at all for two intervals: the link is dead even if TCP has not noticed.
      if (Date.now() - this.lastFrameAt > intervalMs * 2 + 5000) {
        this.ws.close(4000, 'heartbeat timeout');
        return;
      }
      this.ws.send('{"type":"ping"}');
    }, intervalMs);
  }

  stopHeartbeat() {
    clearInterval(this.heartbeat);
    this.heartbeat = null;
  }
}
