// The Chat tab: transcript + live event stream, composer, agent/model and loop controls.
//
// Consistency: the transcript is a snapshot cut at `last_event_seq`; the stream resumes right
// after it and every event is applied at most once (seq <= last applied is dropped, both in
// stream.js and here), so nothing is shown twice or lost across reloads and reconnects.
// Events are applied strictly in order through a promise chain, because a few need a fetch
// first (a turn whose user message this client has not seen).
import { api, apiCached, errorMessage, seg } from "./api.js";
import { announce, formatNumber, formatTime, h, storage, uuid } from "./dom.js";
import { renderMarkdown, highlight } from "./markdown.js";
import { openEventStream } from "./stream.js";
import { toast } from "./toast.js";

const DRAFT_KEY = (id) => `upstream.draft.${id}`;
const LOOP_DISMISSED_KEY = (id) => `upstream.loopDismissed.${id}`;
const MAX_OUTPUT_CHARS = 20_000;

const STOP_REASONS = {
  finished: "the agent replied FINISHED",
  max_iterations: "it reached the iteration cap",
  budget_tokens: "the token budget was used up",
  budget_cost: "the cost budget was used up",
  budget_time: "the time budget ran out",
  stopped: "it was stopped",
  turn_failed: "a turn failed",
};

export function stopReasonText(reason) {
  return STOP_REASONS[reason] || (reason ? String(reason).replace(/_/g, " ") : "it ended");
}

export function statusText(status, detail) {
  switch (status) {
    case "creating":
      return detail ? `Starting sandbox… ${detail}` : "Starting sandbox…";
    case "running":
      return detail ? `Agent is working… ${detail}` : "Agent is working…";
    case "stopped":
      return "Sandbox stopped; it starts again with your next message.";
    case "error":
      return detail ? `Error: ${detail}` : "The branch is in an error state.";
    case "idle":
    default:
      return detail ? `Ready. ${detail}` : "Ready";
  }
}

// -- agent / model selects, shared with the New branch dialog -------------------------------

export function fillAgentSelect(select, agents, selectedId) {
  select.replaceChildren(
    ...agents.map((agent) =>
      h("option", {
        value: agent.id,
        text: agent.available ? agent.name : `${agent.name} (no key)`,
        selected: agent.id === selectedId,
      }),
    ),
  );
  if (selectedId && !agents.some((a) => a.id === selectedId)) {
    select.appendChild(h("option", { value: selectedId, text: selectedId, selected: true }));
  }
  if (selectedId) select.value = selectedId;
}

export function fillModelSelect(select, agent, selectedId) {
  const models = agent?.models || [];
  select.replaceChildren(
    ...models.map((model) =>
      h("option", {
        value: model.id,
        text: model.available ? model.name : `${model.name} (no key)`,
        selected: model.id === selectedId,
      }),
    ),
  );
  if (selectedId && !models.some((m) => m.id === selectedId)) {
    select.appendChild(h("option", { value: selectedId, text: selectedId, selected: true }));
  }
  const pick = selectedId || agent?.default_model;
  if (pick) select.value = pick;
}

const PROVIDER_NAMES = {
  anthropic: "an Anthropic API key",
  openai: "an OpenAI API key",
  opencode: "an OpenCode API key",
  github: "a GitHub token",
  daytona: "a Daytona API key",
};

/** A note (with a Settings link) when the chosen agent/model lacks a credential, else null. */
export function agentCredentialHint(agent, modelId, onNavigate) {
  if (!agent) return null;
  const model = agent.models?.find((m) => m.id === modelId);
  const missing = model ? !model.available : !agent.available;
  if (!missing) return null;
  const provider = model?.credential || agent.credentials?.[0];
  return h(
    "p",
    { class: "hint hint-warn" },
    `${agent.name} needs ${PROVIDER_NAMES[provider] || `a ${provider} credential`} to answer. `,
    h("a", { href: "#/settings", text: "Add an API key", onclick: () => onNavigate?.() }),
    ".",
  );
}

// -- the chat panel ---------------------------------------------------------------------------

/**
 * mountChat(container, branch, { onStatus(status, detail), onBranchChanged(), onBranchUpdated(branch) })
 * → { updateBranch(branch), onShow(), focusComposer(), destroy() }
 */
export function mountChat(container, initialBranch, callbacks = {}) {
  let branch = initialBranch;
  let destroyed = false;
  let stream = null;
  let lastSeq = 0;
  let queue = Promise.resolve();
  let agents = [];
  let loopState = initialBranch.loop ? { ...initialBranch.loop } : null;
  let stopping = false;
  let connection = "connecting";

  const userMessages = new Map(); // message id → { article, queued }
  const userByTurn = new Map(); // turn id → message id
  const turns = new Map(); // turn id → turn state
  const pendingSends = new Set(); // promises of POSTs in flight
  // Messages sent from this page, until a loaded transcript is known to hold them: a
  // transcript fetched before a send must not wipe that message off the page.
  const localSends = new Map(); // article -> { messageId, turnId, queued }
  const dirty = new Set();
  let frame = 0;

  // ---- DOM ----
  const agentSelect = h("select", { id: "chat-agent", class: "select select-small" }, h("option", { text: "Loading…", value: "" }));
  const modelSelect = h("select", { id: "chat-model", class: "select select-small" }, h("option", { text: "Loading…", value: "" }));
  const loopSwitch = h("input", { type: "checkbox", id: "loop-enabled", role: "switch", class: "switch-input", checked: Boolean(branch.loop_enabled) });
  const loopCap = h("input", {
    type: "number",
    id: "loop-cap",
    class: "input input-small input-number",
    min: "1",
    max: "25",
    step: "1",
    inputmode: "numeric",
    value: branch.loop_max_iterations ?? "",
    placeholder: "10",
  });
  const credHint = h("div", { class: "chat-cred-hint" });

  const toolbar = h(
    "div",
    { class: "chat-toolbar", role: "group", "aria-label": "Chat options" },
    h("div", { class: "field-inline" }, h("label", { for: "chat-agent", text: "Agent" }), agentSelect),
    h("div", { class: "field-inline" }, h("label", { for: "chat-model", text: "Model" }), modelSelect),
    h(
      "div",
      { class: "field-inline loop-controls" },
      h(
        "label",
        { class: "switch", for: "loop-enabled", title: "Loop mode: keep prompting until the agent replies FINISHED" },
        loopSwitch,
        h("span", { class: "switch-track", "aria-hidden": "true" }, h("span", { class: "switch-thumb" })),
        h("span", { class: "switch-label", text: "Loop mode" }),
      ),
      h("label", { for: "loop-cap", class: "cap-label", text: "Loop cap" }),
      loopCap,
    ),
  );

  const loopText = h("span", { class: "loop-text" });
  const loopProgress = h("span", { class: "loop-progress", "aria-hidden": "true" }, h("span", { class: "loop-progress-fill" }));
  const loopStopButton = h("button", { type: "button", class: "button button-small", text: "Stop loop", onclick: () => stopLoop() });
  const loopDismiss = h("button", { type: "button", class: "icon-button", "aria-label": "Dismiss loop summary", text: "×", onclick: () => dismissLoop() });
  const loopBar = h(
    "div",
    { class: "loop-bar", role: "status", hidden: true },
    h("span", { class: "loop-icon", "aria-hidden": "true", text: "↻" }),
    h("span", { class: "loop-title", text: "Loop" }),
    loopText,
    loopProgress,
    loopStopButton,
    loopDismiss,
  );

  const log = h("div", { class: "conversation-inner" });
  const conversation = h("section", { class: "conversation", "aria-label": "Conversation", tabindex: "0" }, log);
  const jump = h("button", { type: "button", class: "button button-small jump-latest", hidden: true, text: "Jump to latest ↓", onclick: () => scrollToBottom(true) });

  const statusDot = h("span", { class: "status-dot", "aria-hidden": "true" });
  const statusLabel = h("span", { class: "status-text" });
  const connLabel = h("span", { class: "conn-text" });
  const statusLine = h("div", { class: "chat-status", role: "status" }, statusDot, statusLabel, connLabel);

  const textarea = h("textarea", {
    id: "composer-input",
    class: "composer-input",
    rows: "1",
    placeholder: "Message the agent…",
    "aria-describedby": "composer-hint",
    autocomplete: "off",
  });
  const sendButton = h("button", { type: "submit", class: "button button-primary composer-send", text: "Send" });
  const stopButton = h("button", { type: "button", class: "button button-danger-ghost composer-stop", text: "Stop", disabled: true, onclick: () => stop() });
  const composer = h(
    "form",
    { class: "composer", novalidate: true },
    h("label", { class: "sr-only", for: "composer-input", text: "Message" }),
    textarea,
    h("div", { class: "composer-bar" },
      h("span", { class: "composer-hint", id: "composer-hint", text: "Enter to send · Shift+Enter for a new line" }),
      h("span", { class: "composer-buttons" }, stopButton, sendButton),
    ),
  );

  const root = h("div", { class: "chat" }, toolbar, credHint, loopBar, h("div", { class: "conversation-wrap" }, conversation, jump), statusLine, composer);
  container.replaceChildren(root);

  // ---- composer ----
  textarea.value = storage.get(DRAFT_KEY(branch.id), "");
  autoGrow();
  textarea.addEventListener("input", () => {
    storage.set(DRAFT_KEY(branch.id), textarea.value);
    autoGrow();
  });
  textarea.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing && !event.altKey && !event.ctrlKey && !event.metaKey) {
      event.preventDefault();
      send();
    }
  });
  composer.addEventListener("submit", (event) => {
    event.preventDefault();
    send();
  });

  function autoGrow() {
    textarea.style.height = "auto";
    textarea.style.height = `${Math.min(textarea.scrollHeight + 2, Math.round(window.innerHeight * 0.4))}px`;
  }

  async function send() {
    const content = textarea.value;
    if (!content.trim()) {
      textarea.focus();
      return;
    }
    textarea.value = "";
    storage.set(DRAFT_KEY(branch.id), null);
    autoGrow();
    await postMessage(content, uuid(), null);
  }

  async function postMessage(content, key, existing) {
    const article = existing || userArticle({ content, created_at: new Date().toISOString() });
    article.classList.remove("is-failed");
    article.querySelector(".message-retry")?.remove();
    setUserLabel(article, "Sending…", "sending");
    if (!existing) {
      dropEmptyNote();
      withScroll(() => log.appendChild(article), true);
      localSends.set(article, { messageId: null, turnId: null, queued: false });
    }
    const request = api("POST", `/api/branches/${seg(branch.id)}/messages`, { content, idempotency_key: key });
    const pending = request.then(
      (accepted) => {
        article.dataset.messageId = accepted.message_id;
        const entry = { article, queued: false };
        userMessages.set(accepted.message_id, entry);
        userByTurn.set(accepted.turn_id, accepted.message_id);
        const local = localSends.get(article);
        if (local) {
          local.messageId = accepted.message_id;
          local.turnId = accepted.turn_id;
          local.queued = accepted.queue_position > 0;
        }
        if (turns.has(accepted.turn_id)) setUserLabel(article, null);
        else if (accepted.queue_position > 0) markQueued(accepted.message_id, true);
        else setUserLabel(article, null);
        if (accepted.loop_id && (!loopState || loopState.id !== accepted.loop_id)) fetchLoop(accepted.loop_id);
      },
      () => {},
    );
    pendingSends.add(pending);
    try {
      await request;
    } catch (err) {
      article.classList.add("is-failed");
      setUserLabel(article, "Not sent", "failed");
      const retry = h("div", { class: "message-retry", role: "alert" },
        h("span", { text: errorMessage(err) }),
        h("button", { type: "button", class: "button button-small", text: "Retry", onclick: () => postMessage(content, key, article) }),
      );
      article.querySelector(".message-main").appendChild(retry);
    } finally {
      await pending;
      pendingSends.delete(pending);
    }
  }

  async function stop() {
    stopping = true;
    updateStopButton();
    try {
      await api("POST", `/api/branches/${seg(branch.id)}/stop`);
      announce("Stop requested.");
    } catch (err) {
      toast(`Could not stop: ${errorMessage(err)}`, { kind: "error" });
      stopping = false;
      updateStopButton();
    }
  }

  function isBusy() {
    if (branch.status === "running") return true;
    if (loopState && loopState.status === "running") return true;
    for (const t of turns.values()) if (t.status === "running") return true;
    return false;
  }

  function updateStopButton() {
    const busy = isBusy();
    if (!busy) stopping = false;
    stopButton.disabled = !busy || stopping;
    stopButton.textContent = stopping ? "Stopping…" : "Stop";
  }

  // ---- agent / model / loop controls ----
  async function loadAgents() {
    try {
      agents = await apiCached("/api/agents", 30_000);
    } catch (err) {
      agents = [];
      credHint.replaceChildren(h("p", { class: "hint hint-warn", text: `Agents could not be listed: ${errorMessage(err)}` }));
    }
    if (destroyed) return;
    renderAgentControls();
  }

  function renderAgentControls() {
    fillAgentSelect(agentSelect, agents, branch.agent);
    fillModelSelect(modelSelect, agents.find((a) => a.id === branch.agent), branch.model);
    const hint = agentCredentialHint(agents.find((a) => a.id === branch.agent), branch.model);
    credHint.replaceChildren(...(hint ? [hint] : []));
  }

  async function patchBranch(body, revert) {
    try {
      const updated = await api("PATCH", `/api/branches/${seg(branch.id)}`, body);
      branch = { ...branch, ...updated };
      callbacks.onBranchUpdated?.(branch);
      return true;
    } catch (err) {
      toast(errorMessage(err), { kind: "error" });
      revert?.();
      return false;
    }
  }

  agentSelect.addEventListener("change", async () => {
    const agent = agents.find((a) => a.id === agentSelect.value);
    const model = agent?.default_model ?? null;
    fillModelSelect(modelSelect, agent, model);
    await patchBranch({ agent: agentSelect.value, model }, renderAgentControls);
    renderAgentControls();
  });
  modelSelect.addEventListener("change", async () => {
    await patchBranch({ agent: agentSelect.value, model: modelSelect.value }, renderAgentControls);
    renderAgentControls();
  });
  loopSwitch.addEventListener("change", async () => {
    const on = loopSwitch.checked;
    const ok = await patchBranch({ loop_enabled: on }, () => {
      loopSwitch.checked = !on;
    });
    if (ok) announce(on ? "Loop mode on: your next message starts a loop." : "Loop mode off.");
  });
  loopCap.addEventListener("change", async () => {
    const raw = loopCap.value.trim();
    const value = Number(raw);
    if (!raw || !Number.isInteger(value) || value < 1 || value > 25) {
      toast("The loop cap is a whole number from 1 to 25.", { kind: "error" });
      loopCap.value = branch.loop_max_iterations ?? "";
      return;
    }
    if (value === branch.loop_max_iterations) return;
    await patchBranch({ loop_max_iterations: value }, () => {
      loopCap.value = branch.loop_max_iterations ?? "";
    });
  });
  apiCached("/api/me/settings", 30_000)
    .then((prefs) => {
      if (prefs?.default_loop_max_iterations) loopCap.placeholder = String(prefs.default_loop_max_iterations);
    })
    .catch(() => {});

  // ---- loop bar ----
  async function fetchLoop(id) {
    try {
      const run = await api("GET", `/api/loops/${seg(id)}`);
      if (destroyed) return;
      if (loopState && loopState.id === run.id && loopState.status !== "running" && run.status === "running") return;
      loopState = { id: run.id, status: run.status, iterations: run.iterations, max_iterations: run.max_iterations, stop_reason: run.stop_reason };
      renderLoop();
    } catch {
      /* the loop events carry the same facts */
    }
  }

  function renderLoop() {
    const s = loopState;
    if (!s || (s.status !== "running" && storage.get(LOOP_DISMISSED_KEY(branch.id)) === s.id)) {
      loopBar.hidden = true;
      updateStopButton();
      return;
    }
    loopBar.hidden = false;
    const max = s.max_iterations || 0;
    const running = s.status === "running";
    loopBar.dataset.state = running ? "running" : "ended";
    if (running) {
      const current = Math.min((s.iterations || 0) + 1, max || Infinity);
      loopText.textContent = max ? `Iteration ${current} of ${max}` : `Iteration ${current}`;
      setProgress(max ? (current - 1) / max : 0);
    } else {
      const n = s.iterations || 0;
      const of = max ? ` of ${max}` : "";
      loopText.textContent = `Loop ended after ${n}${of} iteration${n === 1 && !max ? "" : "s"}: ${stopReasonText(s.stop_reason)}.`;
      setProgress(max ? n / max : 1);
    }
    loopStopButton.hidden = !running;
    loopDismiss.hidden = running;
    updateStopButton();
  }

  function setProgress(fraction) {
    loopProgress.firstChild.style.width = `${Math.max(0, Math.min(1, fraction)) * 100}%`;
  }

  async function stopLoop() {
    if (!loopState) return;
    loopStopButton.disabled = true;
    try {
      await api("POST", `/api/loops/${seg(loopState.id)}/stop`);
      announce("Stopping the loop.");
    } catch (err) {
      toast(`Could not stop the loop: ${errorMessage(err)}`, { kind: "error" });
    } finally {
      loopStopButton.disabled = false;
    }
  }

  function dismissLoop() {
    if (loopState) storage.set(LOOP_DISMISSED_KEY(branch.id), loopState.id);
    renderLoop();
    textarea.focus();
  }

  // ---- status ----
  function renderStatus() {
    statusDot.dataset.status = branch.status;
    statusLabel.textContent = statusText(branch.status, branch.status_detail);
    connLabel.textContent = connection === "reconnecting" ? " · Reconnecting…" : "";
    root.dataset.status = branch.status;
    updateStopButton();
  }

  // ---- rendering messages ----
  function nearBottom() {
    return conversation.scrollHeight - conversation.scrollTop - conversation.clientHeight < 120;
  }

  // Whether the view follows new content. Kept from the last scroll, because a hidden panel
  // (Diff or History tab open) has no geometry to measure.
  let pinned = true;

  function scrollToBottom(smooth = false) {
    conversation.scrollTo({ top: conversation.scrollHeight, behavior: smooth ? "smooth" : "auto" });
    jump.hidden = true;
    pinned = true;
  }

  function withScroll(fn, force = false) {
    const stick = force || (conversation.clientHeight ? nearBottom() : pinned);
    const before = conversation.scrollHeight;
    fn();
    if (stick) scrollToBottom();
    else if (conversation.scrollHeight > before) jump.hidden = false;
  }

  conversation.addEventListener("scroll", () => {
    if (!conversation.clientHeight) return;
    pinned = nearBottom();
    if (pinned) jump.hidden = true;
  });

  function avatar(kind, text) {
    return h("div", { class: ["message-avatar", `avatar-${kind}`], "aria-hidden": "true", text });
  }

  function userArticle(entry) {
    const article = h(
      "article",
      { class: "message message-user", "aria-label": "You" },
      avatar("user", "You".slice(0, 1)),
      h(
        "div",
        { class: "message-main" },
        h("div", { class: "message-meta" },
          h("span", { class: "message-author", text: "You" }),
          h("time", { class: "message-time", datetime: entry.created_at || "", text: formatTime(entry.created_at) }),
          h("span", { class: "message-label" }),
        ),
        h("div", { class: "message-body user-text", text: entry.content }),
      ),
    );
    if (entry.id) article.dataset.messageId = entry.id;
    return article;
  }

  function setUserLabel(article, text, kind) {
    const label = article.querySelector(".message-label");
    label.textContent = text || "";
    label.className = `message-label${text ? ` pill pill-${kind}` : ""}`;
  }

  function keepLocalSends(transcript) {
    const known = new Set((transcript.messages || []).filter((m) => m.role === "user").map((m) => m.id));
    for (const [article, local] of localSends) {
      if (local.messageId && known.has(local.messageId)) {
        localSends.delete(article);
        continue;
      }
      log.appendChild(article);
      if (!local.messageId) continue; // still being sent: its answer registers it
      userMessages.set(local.messageId, { article, queued: false });
      userByTurn.set(local.turnId, local.messageId);
      if (local.queued && !turns.has(local.turnId)) markQueued(local.messageId, true);
    }
  }

  function addUserMessage(entry) {
    const article = userArticle(entry);
    log.appendChild(article);
    userMessages.set(entry.id, { article, queued: false });
    if (entry.turn_id) userByTurn.set(entry.turn_id, entry.id);
    return article;
  }

  function markQueued(messageId, queued) {
    const m = userMessages.get(messageId);
    if (!m) return;
    m.queued = queued;
    setUserLabel(m.article, queued ? "Queued" : null, "queued");
  }

  function agentName(id) {
    return agents.find((a) => a.id === id)?.name || id || "Agent";
  }

  function createTurn({ turn_id, reply_to, agent, model, created_at, status }) {
    const body = h("div", { class: "message-body" });
    const typing = h("div", { class: "typing", "aria-hidden": "true" }, h("span"), h("span"), h("span"));
    const foot = h("div", { class: "message-foot" });
    const modelLabel = h("span", { class: "message-model", text: [agentName(agent), model].filter(Boolean).join(" · ") });
    const article = h(
      "article",
      { class: "message message-agent", "aria-label": "Agent", "data-turn-id": turn_id, "data-reply-to": reply_to || "" },
      avatar("agent", "✦"),
      h(
        "div",
        { class: "message-main" },
        h("div", { class: "message-meta" },
          h("span", { class: "message-author", text: "Agent" }),
          modelLabel,
          h("time", { class: "message-time", datetime: created_at || "", text: formatTime(created_at) }),
        ),
        body,
        typing,
        foot,
      ),
    );
    const turn = {
      id: turn_id,
      article,
      body,
      typing,
      foot,
      agent,
      modelLabel,
      textEl: null,
      text: "",
      tools: new Map(),
      usage: null,
      status: status || "running",
      finished: false,
      commit: null,
    };
    turns.set(turn_id, turn);
    return turn;
  }

  function placeTurn(turn, replyTo) {
    const user = replyTo ? userMessages.get(replyTo) : null;
    if (!user) {
      log.appendChild(turn.article);
      return;
    }
    // After the user message and any earlier replies to it.
    let anchor = user.article;
    while (anchor.nextElementSibling && anchor.nextElementSibling.dataset.replyTo === replyTo) {
      anchor = anchor.nextElementSibling;
    }
    anchor.after(turn.article);
  }

  function appendText(turn, content) {
    if (!content) return;
    if (!turn.textEl) {
      turn.textEl = h("div", { class: "md" });
      turn.text = "";
      turn.body.appendChild(turn.textEl);
    }
    turn.text += content;
    dirty.add(turn);
    if (!frame) frame = requestAnimationFrame(flushText);
  }

  function flushText() {
    frame = 0;
    if (!dirty.size) return;
    withScroll(() => {
      for (const turn of dirty) {
        if (turn.textEl) turn.textEl.replaceChildren(renderMarkdown(turn.text));
      }
      dirty.clear();
    });
  }

  function renderTextNow(turn) {
    if (turn.textEl && dirty.has(turn)) {
      turn.textEl.replaceChildren(renderMarkdown(turn.text));
      dirty.delete(turn);
    }
  }

  function closeText(turn) {
    renderTextNow(turn);
    turn.textEl = null;
    turn.text = "";
  }

  function jsonText(value) {
    if (value === null || value === undefined) return "";
    if (typeof value === "string") return value;
    try {
      return JSON.stringify(value, null, 2);
    } catch {
      return String(value);
    }
  }

  function codeView(text, lang) {
    const code = h("code");
    code.appendChild(highlight(text, lang));
    return h("pre", { class: "tool-pre", tabindex: "0" }, code);
  }

  function addTool(turn, call) {
    closeText(turn);
    const id = String(call.id || `tool-${turn.tools.size}`);
    const state = h("span", { class: "tool-state", text: "running" });
    const summary = h(
      "summary",
      { class: "tool-summary" },
      h("span", { class: "tool-icon", "aria-hidden": "true", text: "⚙" }),
      h("span", { class: "tool-name", text: call.tool || "tool" }),
      call.summary ? h("span", { class: "tool-desc", text: call.summary }) : null,
      state,
    );
    const resultSlot = h("div", { class: "tool-section tool-result" }, h("div", { class: "tool-label", text: "Result" }), h("p", { class: "muted", text: "Waiting for the result…" }));
    const input = jsonText(call.input);
    const details = h(
      "details",
      { class: "tool-call", "data-tool-id": id },
      summary,
      h(
        "div",
        { class: "tool-body" },
        input ? h("div", { class: "tool-section" }, h("div", { class: "tool-label", text: "Input" }), codeView(input, typeof call.input === "string" ? "" : "json")) : null,
        resultSlot,
      ),
    );
    const tool = { details, resultSlot, state };
    turn.tools.set(id, tool);
    turn.body.appendChild(details);
    return tool;
  }

  function setToolResult(tool, result) {
    const isError = Boolean(result?.is_error);
    tool.details.classList.toggle("is-error", isError);
    tool.details.classList.add("has-result");
    tool.state.textContent = isError ? "error" : "done";
    let text = jsonText(result?.output);
    const label = h("div", { class: "tool-label", text: isError ? "Error" : "Result" });
    if (!text) {
      tool.resultSlot.replaceChildren(label, h("p", { class: "muted", text: "(no output)" }));
      return;
    }
    const full = text;
    const truncated = text.length > MAX_OUTPUT_CHARS;
    if (truncated) text = text.slice(0, MAX_OUTPUT_CHARS);
    const pre = codeView(text, typeof result?.output === "string" ? "" : "json");
    const parts = [label, pre];
    if (truncated) {
      const more = h("button", {
        type: "button",
        class: "button button-small",
        text: `Show all ${formatNumber(full.length)} characters`,
        onclick: () => {
          pre.replaceWith(codeView(full, typeof result?.output === "string" ? "" : "json"));
          more.remove();
        },
      });
      parts.push(more);
    }
    tool.resultSlot.replaceChildren(...parts);
  }

  function findTool(callId, preferred) {
    if (preferred?.tools.has(callId)) return preferred.tools.get(callId);
    for (const t of turns.values()) if (t.tools.has(callId)) return t.tools.get(callId);
    return null;
  }

  function addError(turn, message) {
    closeText(turn);
    turn.body.appendChild(h("div", { class: "error-block", role: "note" }, h("span", { class: "error-icon", "aria-hidden": "true", text: "!" }), h("span", { text: message || "The agent reported an error." })));
  }

  function renderFoot(turn) {
    const parts = [];
    if (turn.status === "failed") parts.push(h("span", { class: "pill pill-failed", text: "Failed" }));
    else if (turn.status === "cancelled") parts.push(h("span", { class: "pill pill-cancelled", text: "Cancelled" }));
    else if (turn.status === "succeeded") parts.push(h("span", { class: "pill pill-succeeded", text: "Done" }));
    if (turn.finished) parts.push(h("span", { class: "pill pill-finished", text: "FINISHED" }));
    if (turn.usage) {
      const u = turn.usage;
      const bits = [];
      if (u.input_tokens != null) bits.push(`${formatNumber(u.input_tokens)} in`);
      if (u.output_tokens != null) bits.push(`${formatNumber(u.output_tokens)} out`);
      if (u.cost_usd != null) bits.push(`$${Number(u.cost_usd).toFixed(4)}`);
      if (bits.length) parts.push(h("span", { class: "usage", title: "Tokens and cost of this turn", text: bits.join(" · ") }));
    }
    if (turn.commit) parts.push(h("span", { class: "commit", title: turn.commit }, "commit ", h("code", { text: turn.commit.slice(0, 8) })));
    turn.foot.replaceChildren(...parts);
    turn.foot.hidden = parts.length === 0;
    turn.typing.hidden = turn.status !== "running";
    turn.article.dataset.status = turn.status;
  }

  function addUsage(turn, data) {
    const u = turn.usage || { input_tokens: null, output_tokens: null, cost_usd: null };
    for (const key of ["input_tokens", "output_tokens", "cost_usd"]) {
      const v = data[key];
      if (typeof v === "number" && Number.isFinite(v)) u[key] = (u[key] ?? 0) + v;
    }
    turn.usage = u;
  }

  function systemLine(text, kind = "info", extra = null, live = true) {
    // Lines replayed from the transcript are history: only a live failure is announced.
    const line = h("div", { class: ["system-line", `system-${kind}`], role: kind === "error" && live ? "alert" : null },
      h("span", { class: "system-icon", "aria-hidden": "true", text: kind === "error" ? "!" : kind === "loop" ? "↻" : "⎇" }),
      h("span", { class: "system-text", text }),
      extra,
    );
    withScroll(() => log.appendChild(line));
  }

  // ---- transcript ----
  function renderTranscript(transcript) {
    log.replaceChildren();
    userMessages.clear();
    userByTurn.clear();
    turns.clear();
    const queued = [];
    // Pushes, git operations and loop runs sit between the messages, in time order.
    const notices = [...(transcript.notices || [])];
    const flushNotices = (until) => {
      while (notices.length && (until === null || Date.parse(notices[0].created_at) <= Date.parse(until))) {
        const notice = notices.shift();
        if (notice.type === "git") gitLine(notice.data, false);
        else if (notice.type === "loop") loopLine(notice.data, false);
      }
    };
    for (const entry of transcript.messages || []) {
      if (entry.role === "user") flushNotices(entry.created_at);
      if (entry.role === "user") {
        addUserMessage(entry);
        continue;
      }
      if (entry.status === "queued" && !(entry.blocks || []).length) {
        queued.push(entry.reply_to);
        userByTurn.set(entry.turn_id, entry.reply_to);
        continue;
      }
      const turn = createTurn(entry);
      placeTurn(turn, entry.reply_to);
      let fullText = "";
      for (const block of entry.blocks || []) {
        if (block.type === "text") {
          appendText(turn, block.text);
          fullText += block.text;
          renderTextNow(turn);
        } else if (block.type === "tool_call") {
          const tool = addTool(turn, block);
          if (block.result) setToolResult(tool, block.result);
        } else if (block.type === "error") {
          addError(turn, block.message);
        }
      }
      if (entry.error && !(entry.blocks || []).some((b) => b.type === "error")) addError(turn, entry.error);
      turn.usage = entry.usage || null;
      turn.commit = entry.commit_sha || null;
      turn.status = entry.status;
      // The transcript has no `finished` flag; the server's rule, applied to the reply's text.
      turn.finished = entry.status === "succeeded" && (fullText.trim().toLowerCase() === "finished" || fullText.includes("FINISHED"));
      renderFoot(turn);
    }
    flushNotices(null);
    for (const id of queued) markQueued(id, true);
    keepLocalSends(transcript);
    if (!log.children.length) renderEmptyConversation();
    scrollToBottom();
  }

  function renderEmptyConversation() {
    log.appendChild(
      h("div", { class: "conversation-empty" },
        h("p", { class: "empty-title-small", text: "No messages yet" }),
        h("p", { class: "muted", text: "Describe what the agent should do on this branch. It works in its own sandbox and commits its changes here." }),
      ),
    );
  }

  function dropEmptyNote() {
    log.querySelector(".conversation-empty")?.remove();
  }

  // ---- events ----
  function enqueue(event) {
    queue = queue.then(() => (destroyed ? null : apply(event))).catch((err) => reportError(err));
  }

  async function apply({ seq, type, data }) {
    if (seq <= lastSeq) return;
    lastSeq = seq;
    const turnId = data.turn_id;
    switch (type) {
      case "turn-started":
        await onTurnStarted(data);
        break;
      case "token": {
        const turn = turnId ? await ensureTurn(turnId) : null;
        if (turn) appendText(turn, String(data.content ?? ""));
        break;
      }
      case "tool": {
        const turn = turnId ? await ensureTurn(turnId) : null;
        const call = data.tool_call || {};
        if (turn) withScroll(() => addTool(turn, { ...call, id: call.id || `event-${seq}` }));
        break;
      }
      case "tool-result": {
        const turn = turnId ? await ensureTurn(turnId) : null;
        let tool = findTool(String(data.tool_call_id || ""), turn);
        if (!tool && turn) tool = addTool(turn, { id: data.tool_call_id, tool: "unknown" });
        if (tool) withScroll(() => setToolResult(tool, data));
        break;
      }
      case "error": {
        const turn = turnId ? await ensureTurn(turnId) : null;
        if (turn) withScroll(() => addError(turn, String(data.message ?? "")));
        else systemLine(String(data.message || "Error"), "error");
        break;
      }
      case "usage": {
        const turn = turnId ? await ensureTurn(turnId) : null;
        if (turn) {
          addUsage(turn, data);
          renderFoot(turn);
        }
        break;
      }
      case "done":
        if (turnId) onDone(await ensureTurn(turnId), data);
        break;
      case "status":
        branch = { ...branch, status: data.status || branch.status, status_detail: data.detail ?? null };
        renderStatus();
        callbacks.onStatus?.(branch.status, branch.status_detail);
        break;
      case "git":
        onGit(data);
        break;
      case "loop":
        onLoop(data);
        break;
      default:
        break; // stdout, stderr, session-id: not part of the conversation view
    }
  }

  async function onTurnStarted(data) {
    const { turn_id: turnId, message_id: messageId } = data;
    if (!turnId) return;
    if (messageId) userByTurn.set(turnId, messageId);
    if (messageId && !userMessages.has(messageId)) {
      // Our own POST may still be in flight (the stream can be faster than its answer).
      if (pendingSends.size) await Promise.allSettled([...pendingSends]);
      if (!userMessages.has(messageId)) await fetchUserMessage({ messageId, turnId });
    }
    if (messageId) markQueued(messageId, false);
    let turn = turns.get(turnId);
    if (!turn) {
      dropEmptyNote();
      turn = createTurn({ turn_id: turnId, reply_to: messageId, agent: data.agent, model: data.model, created_at: new Date().toISOString(), status: "running" });
      withScroll(() => placeTurn(turn, messageId));
    }
    turn.status = "running";
    renderFoot(turn);
    if (data.loop_id && (!loopState || loopState.id !== data.loop_id)) fetchLoop(data.loop_id);
    updateStopButton();
  }

  async function fetchUserMessage({ messageId, turnId }) {
    // A message sent elsewhere (another tab, a loop's continuation): read it from the transcript.
    try {
      const transcript = await api("GET", `/api/branches/${seg(branch.id)}/messages`);
      const entry = (transcript.messages || []).find(
        (m) => m.role === "user" && (messageId ? m.id === messageId : m.turn_id === turnId),
      );
      if (entry && !userMessages.has(entry.id) && !destroyed) {
        dropEmptyNote();
        withScroll(() => addUserMessage(entry));
      }
      if (entry && turnId) userByTurn.set(turnId, entry.id);
    } catch {
      /* shown without its prompt */
    }
  }

  async function ensureTurn(turnId) {
    let turn = turns.get(turnId);
    if (turn) return turn;
    // A turn can end (failed before its agent started, or a queued turn dropped by Stop)
    // without a turn-started event; the transcript shows it as a reply all the same.
    if (!userByTurn.has(turnId) && pendingSends.size) await Promise.allSettled([...pendingSends]);
    if (!userByTurn.has(turnId)) await fetchUserMessage({ turnId });
    turn = turns.get(turnId);
    if (turn) return turn;
    dropEmptyNote();
    const replyTo = userByTurn.get(turnId);
    turn = createTurn({ turn_id: turnId, reply_to: replyTo, agent: branch.agent, model: branch.model, created_at: new Date().toISOString(), status: "running" });
    if (replyTo) markQueued(replyTo, false);
    renderFoot(turn);
    withScroll(() => placeTurn(turn, replyTo));
    return turn;
  }

  function onDone(turn, data) {
    closeText(turn);
    turn.status = data.status || "succeeded";
    turn.finished = Boolean(data.finished);
    withScroll(() => renderFoot(turn));
    updateStopButton();
    if (turn.status === "failed") announce("The agent's turn failed.");
    else if (turn.status === "cancelled") announce("The agent's turn was cancelled.");
    else announce(turn.finished ? "The agent replied FINISHED." : "The agent has replied.");
  }

  function onGit(data) {
    gitLine(data, true);
    const op = String(data.op || "git");
    if (data.pull_request || data.branch_name || ["rename", "pull-request", "delete-remote", "push"].includes(op)) {
      callbacks.onBranchChanged?.();
    }
  }

  function gitLine(data, live) {
    const op = String(data.op || "git");
    if (data.ok) {
      let text = data.message || `${op} done`;
      let extra = null;
      if (data.pull_request?.url) {
        const href = safeHttp(data.pull_request.url);
        if (href) {
          extra = h("a", { href, target: "_blank", rel: "noopener noreferrer", class: "system-link" }, `Pull request #${data.pull_request.number}`, h("span", { class: "sr-only", text: " (opens in a new tab)" }));
        }
      }
      systemLine(text, "git", extra, live);
    } else {
      const what = { push: "Push failed", "pull-request": "Pull request failed", merge: "Merge failed", rebase: "Rebase failed", reset: "Reset failed", tag: "Tag failed", rename: "Rename failed", "delete-remote": "Deleting the remote branch failed" }[op] || `${op} failed`;
      const conflicts = Array.isArray(data.conflicts) && data.conflicts.length
        ? h("span", { class: "system-detail", text: ` Conflicts: ${data.conflicts.slice(0, 20).join(", ")}${data.conflicts.length > 20 ? ", …" : ""}` })
        : null;
      systemLine(`${what}: ${data.message || "unknown error"}`, "error", conflicts, live);
    }
  }

  function onLoop(data) {
    const prev = loopState;
    loopState = {
      id: data.loop_id || prev?.id,
      status: data.phase === "stopped" ? "completed" : "running",
      iterations: Number(data.iteration) || 0,
      max_iterations: Number(data.max_iterations) || prev?.max_iterations || 0,
      stop_reason: data.phase === "stopped" ? data.reason : null,
    };
    if (data.phase === "started") storage.set(LOOP_DISMISSED_KEY(branch.id), null);
    loopLine(data, true);
    if (data.phase === "stopped") announce(`Loop ended: ${stopReasonText(data.reason)}.`);
    renderLoop();
  }

  function loopLine(data, live) {
    if (data.phase === "started") {
      const max = Number(data.max_iterations) || 0;
      systemLine(max ? `Loop started: up to ${max} iterations.` : "Loop started.", "loop", null, live);
    } else if (data.phase === "stopped") {
      const n = Number(data.iteration) || 0;
      systemLine(`Loop ended after ${n} iteration${n === 1 ? "" : "s"}: ${stopReasonText(data.reason)}.`, "loop", null, live);
    }
  }

  // ---- load ----
  async function start() {
    log.replaceChildren(h("p", { class: "conversation-loading", role: "status", text: "Loading conversation…" }));
    renderStatus();
    renderLoop();
    loadAgents();
    if (loopState && loopState.status === "running") fetchLoop(loopState.id);
    let transcript;
    try {
      transcript = await api("GET", `/api/branches/${seg(branch.id)}/messages`);
    } catch (err) {
      if (destroyed) return;
      log.replaceChildren(
        h("div", { class: "load-error", role: "alert" },
          h("p", { text: `The conversation could not be loaded: ${errorMessage(err)}` }),
          h("button", { type: "button", class: "button", text: "Try again", onclick: () => start() }),
        ),
      );
      return;
    }
    if (destroyed) return;
    renderTranscript(transcript);
    lastSeq = Number(transcript.last_event_seq) || 0;
    updateStopButton();
    stream?.close();
    stream = openEventStream(branch.id, {
      after: lastSeq,
      onEvent: enqueue,
      onState: (state) => {
        connection = state;
        renderStatus();
      },
    });
  }

  start();

  return {
    updateBranch(next) {
      const agentChanged = next.agent !== branch.agent || next.model !== branch.model;
      branch = { ...branch, ...next };
      if (agentChanged) renderAgentControls();
      loopSwitch.checked = Boolean(branch.loop_enabled);
      if (document.activeElement !== loopCap) loopCap.value = branch.loop_max_iterations ?? "";
      if (next.loop && (!loopState || next.loop.id !== loopState.id || next.loop.status !== loopState.status)) {
        // A newer run, or one that ended while the stream was away.
        if (!loopState || next.loop.id !== loopState.id || next.loop.status === "completed") {
          loopState = { ...next.loop };
          renderLoop();
        }
      }
      renderStatus();
    },
    onShow() {
      if (pinned) scrollToBottom();
    },
    focusComposer() {
      textarea.focus();
    },
    destroy() {
      destroyed = true;
      cancelAnimationFrame(frame);
      stream?.close();
    },
  };
}

function safeHttp(url) {
  try {
    const u = new URL(String(url));
    return u.protocol === "https:" || u.protocol === "http:" ? u.href : null;
  } catch {
    return null;
  }
}
