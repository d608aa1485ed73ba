// A branch's event stream (SSE). The browser's EventSource reconnects by itself and resends
// Last-Event-ID; when it gives up (an HTTP error answer closes it for good) we reconnect by
// hand with ?after=<last seen seq>. Every event reaches the caller once, in seq order: anything
// at or below the last delivered seq is dropped, so a replay after a reconnect cannot repeat.

export const EVENT_TYPES = [
  "turn-started",
  "token",
  "tool",
  "tool-result",
  "stdout",
  "stderr",
  "session-id",
  "status",
  "usage",
  "error",
  "done",
  "git",
  "loop",
];

/**
 * openEventStream(branchId, { after, onEvent({seq, type, data}), onState(state) })
 * state: "connecting" | "open" | "reconnecting" | "closed". Returns { close(), reconnect(), lastSeq }.
 */
export function openEventStream(branchId, { after = 0, onEvent, onState } = {}) {
  let lastSeq = Number(after) || 0;
  let source = null;
  let closed = false;
  let retryTimer = 0;
  let attempts = 0;

  const setState = (state) => onState?.(state);

  function connect() {
    if (closed) return;
    clearTimeout(retryTimer);
    source?.close();
    setState(attempts ? "reconnecting" : "connecting");
    const url = `/api/branches/${encodeURIComponent(branchId)}/events?after=${lastSeq}`;
    const es = new EventSource(url, { withCredentials: true });
    source = es;
    es.addEventListener("open", () => {
      if (source !== es) return;
      attempts = 0;
      setState("open");
    });
    for (const type of EVENT_TYPES) {
      es.addEventListener(type, (event) => {
        // A server-sent event named "error" arrives as a MessageEvent; the connection's own
        // failures are plain Events and are handled below.
        if (source !== es || !(event instanceof MessageEvent)) return;
        deliver(type, event);
      });
    }
    es.addEventListener("error", (event) => {
      if (source !== es || event instanceof MessageEvent) return;
      if (es.readyState === EventSource.CLOSED) {
        scheduleRetry();
      } else {
        setState("reconnecting");
      }
    });
  }

  function deliver(type, event) {
    const seq = Number(event.lastEventId);
    if (!Number.isFinite(seq) || seq <= lastSeq) return;
    lastSeq = seq;
    let data = null;
    try {
      data = JSON.parse(event.data);
    } catch {
      data = null;
    }
    try {
      onEvent?.({ seq, type, data: data ?? {} });
    } catch (err) {
      // One bad event must not stop the stream; surface it for debugging.
      reportError(err);
    }
  }

  function scheduleRetry() {
    source?.close();
    source = null;
    if (closed) return;
    attempts++;
    setState("reconnecting");
    const delay = Math.min(30_000, 1000 * 2 ** Math.min(attempts - 1, 5)) * (0.75 + Math.random() / 2);
    retryTimer = setTimeout(connect, delay);
  }

  const wake = () => {
    if (!closed && (!source || source.readyState === EventSource.CLOSED)) {
      attempts = Math.max(attempts, 1);
      connect();
    }
  };
  const onVisible = () => {
    if (document.visibilityState === "visible") wake();
  };
  window.addEventListener("online", wake);
  document.addEventListener("visibilitychange", onVisible);

  connect();

  return {
    close() {
      closed = true;
      clearTimeout(retryTimer);
      source?.close();
      source = null;
      window.removeEventListener("online", wake);
      document.removeEventListener("visibilitychange", onVisible);
      setState("closed");
    },
    /** Reconnect now, resuming after the last delivered seq. */
    reconnect() {
      if (closed) return;
      attempts = Math.max(attempts, 1);
      connect();
    },
    get lastSeq() {
      return lastSeq;
    },
  };
}
