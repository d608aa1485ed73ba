// Settings: the caller's API keys, sandbox defaults, and per-repository environment.
// Secrets are write-only: inputs are cleared once saved and nothing but the last four
// characters the server reports is ever shown.

import * as apiModule from "../api.js";
import { confirmDialog } from "../dialog.js";
import { toast } from "../toast.js";
import { h } from "../dom.js";
import { errorText, uid } from "./git_actions.js";

const { api } = apiModule;

// Other parts of the page cache these briefly; drop them so a change shows at once there.
function invalidate(...paths) {
  for (const path of paths) apiModule.invalidateCache?.(path);
}

const PROVIDERS = [
  { id: "anthropic", name: "Anthropic", keyLabel: "Anthropic API key", baseUrl: true, loss: "Agents that use Anthropic models" },
  { id: "openai", name: "OpenAI", keyLabel: "OpenAI API key", baseUrl: true, loss: "Agents that use OpenAI models" },
  { id: "opencode", name: "OpenCode", keyLabel: "OpenCode API key", baseUrl: false, loss: "OpenCode agents" },
  { id: "github", name: "GitHub", keyLabel: "GitHub token", baseUrl: false, loss: "Cloning, pushing and pull requests on GitHub" },
  { id: "daytona", name: "Daytona", keyLabel: "Daytona API key", baseUrl: false, loss: "Daytona sandboxes" },
];

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;

function labelled(label, input, { hint, className = "view-field" } = {}) {
  input.id ||= uid("st-field");
  input.classList.add(input.tagName === "SELECT" ? "select" : "input");
  const row = h("div", { class: className }, h("label", { for: input.id, text: label }), input);
  const message = h("p", { class: "view-field-error", id: uid("st-msg") });
  message.hidden = true;
  row.append(message);
  const described = [message.id];
  if (hint) {
    const hintNode = h("p", { class: "view-hint", id: uid("st-hint"), text: hint });
    row.insertBefore(hintNode, message);
    described.unshift(hintNode.id);
  }
  input.setAttribute("aria-describedby", described.join(" "));
  return {
    row,
    input,
    invalid(text) {
      message.textContent = text;
      message.hidden = false;
      input.setAttribute("aria-invalid", "true");
    },
    valid() {
      message.textContent = "";
      message.hidden = true;
      input.removeAttribute("aria-invalid");
    },
  };
}

function section(title, ...children) {
  const headingId = uid("st-section");
  return h("section", { class: "settings-section", "aria-labelledby": headingId }, h("h2", { id: headingId, text: title }), ...children);
}

function alertBox() {
  // A fresh role=alert node per message is announced reliably on insertion.
  const node = h("div", { class: "settings-error-slot" });
  return {
    node,
    show(text) {
      node.replaceChildren(h("div", { class: "view-error", role: "alert" }, h("p", { text })));
    },
    clear() {
      node.replaceChildren();
    },
  };
}

export async function renderSettings(container) {
  const keys = h("div", { class: "settings-keys" }, h("p", { class: "view-status", role: "status", text: "Loading…" }));
  const sandboxes = h("div", {}, h("p", { class: "view-status", role: "status", text: "Loading…" }));
  const environment = h("div", { class: "settings-env" }, h("p", { class: "view-status", role: "status", text: "Loading…" }));
  container.replaceChildren(
    h(
      "div",
      { class: "view settings-view" },
      h("h1", { class: "settings-title", text: "Settings" }),
      section(
        "API keys",
        h("p", { class: "view-hint", text: "Keys are stored encrypted and never shown again; only their last four characters are." }),
        keys,
      ),
      section("Sandboxes", sandboxes),
      section(
        "Repository environment",
        h("p", { class: "view-hint", text: "Variables set in the sandboxes of a repository's branches. Values are write-only." }),
        environment,
      ),
    ),
  );
  await Promise.all([renderKeys(keys), renderSandboxSettings(sandboxes), renderEnvironment(environment)]);
}

// ---- API keys ----

async function renderKeys(root) {
  let rows;
  try {
    rows = await api("GET", "/api/me/credentials");
  } catch (err) {
    root.replaceChildren(h("div", { class: "view-error", role: "alert" }, h("p", { text: errorText(err) })));
    return;
  }
  const byProvider = new Map((rows ?? []).map((row) => [row.provider, row]));
  root.replaceChildren(...PROVIDERS.map((p) => providerRow(p, byProvider.get(p.id) ?? null)));
}

function providerRow(provider, initial) {
  let current = initial;
  const state = h("span", { class: "settings-key-state" });
  const key = labelled(provider.keyLabel, h("input", { type: "password", autocomplete: "off", spellcheck: "false", name: `key-${provider.id}` }));
  const base = provider.baseUrl
    ? labelled("Base URL", h("input", { type: "url", autocomplete: "off", spellcheck: "false", placeholder: "Optional", name: `base-${provider.id}` }))
    : null;
  const save = h("button", { type: "submit", class: "button" });
  const remove = h("button", { type: "button", class: "button button-danger-ghost", text: "Delete" });
  const errors = alertBox();
  const legend = h("legend", {}, h("span", { class: "settings-provider", text: provider.name }));
  const form = h(
    "form",
    { class: "settings-key", novalidate: "" },
    h("fieldset", {}, legend, h("p", { class: "settings-key-status" }, state), key.row, ...(base ? [base.row] : []), h("div", { class: "view-actions settings-key-actions" }, save, remove), errors.node),
  );

  function show() {
    state.textContent = current ? `•••• ${current.last4}` : "Not set";
    state.classList.toggle("settings-key-set", Boolean(current));
    save.textContent = current ? "Replace" : "Save";
    remove.hidden = !current;
    if (base && document.activeElement !== base.input) base.input.value = current?.base_url ?? "";
  }
  show();

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    errors.clear();
    key.valid();
    base?.valid();
    const secret = key.input.value.trim();
    if (!secret) return key.invalid(`Enter the ${provider.keyLabel}.`);
    if (secret.length < 4 || /\s/.test(secret)) return key.invalid("A key is at least 4 characters, without spaces.");
    let baseUrl = null;
    if (base && base.input.value.trim()) {
      baseUrl = base.input.value.trim();
      if (!/^https?:\/\/\S+$/i.test(baseUrl)) return base.invalid("Enter an http:// or https:// URL, or leave it empty.");
    }
    save.disabled = true;
    remove.disabled = true;
    try {
      current = await api("PUT", `/api/me/credentials/${provider.id}`, { api_key: secret, base_url: baseUrl });
      key.input.value = "";
      show();
      invalidate("/api/agents", "/api/me/credentials");
      toast(`${provider.keyLabel} saved`, { kind: "success" });
    } catch (err) {
      errors.show(errorText(err));
    } finally {
      save.disabled = false;
      remove.disabled = false;
    }
  });

  remove.addEventListener("click", async () => {
    errors.clear();
    const ok = await confirmDialog({
      title: `Delete ${provider.keyLabel}`,
      message: `Delete your ${provider.keyLabel} (•••• ${current?.last4 ?? ""})? ${provider.loss} stop working until you add one again.`,
      confirmLabel: "Delete",
      danger: true,
    });
    if (!ok) return;
    remove.disabled = true;
    try {
      await api("DELETE", `/api/me/credentials/${provider.id}`);
      current = null;
      show();
      invalidate("/api/agents", "/api/me/credentials");
      toast(`${provider.keyLabel} deleted`, { kind: "success" });
      key.input.focus();
    } catch (err) {
      // Already gone elsewhere: show it as not set.
      if (err?.status === 404) {
        current = null;
        show();
      } else {
        errors.show(errorText(err));
      }
    } finally {
      remove.disabled = false;
    }
  });

  return form;
}

// ---- Sandboxes ----

const LIMITS = {
  sandbox_auto_stop_minutes: { label: "Sandbox auto-stop (minutes)", min: 5, max: 20 },
  default_loop_max_iterations: { label: "Default loop cap", min: 1, max: 25 },
};

async function renderSandboxSettings(root) {
  let settings;
  try {
    settings = await api("GET", "/api/me/settings");
  } catch (err) {
    root.replaceChildren(h("div", { class: "view-error", role: "alert" }, h("p", { text: errorText(err) })));
    return;
  }
  const fields = Object.entries(LIMITS).map(([name, limit]) => {
    const input = h("input", { type: "number", min: String(limit.min), max: String(limit.max), step: "1", inputmode: "numeric", name });
    input.value = String(settings[name] ?? "");
    const f = labelled(limit.label, input, { hint: `${limit.min} to ${limit.max}.` });
    return { name, limit, ...f };
  });
  const errors = alertBox();
  const save = h("button", { type: "submit", class: "button button-primary", text: "Save settings" });
  const form = h("form", { class: "view-form settings-sandboxes", novalidate: "" }, ...fields.map((f) => f.row), h("div", { class: "view-actions" }, save), errors.node);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    errors.clear();
    const body = {};
    let firstBad = null;
    for (const f of fields) {
      f.valid();
      const text = f.input.value.trim();
      const value = Number(text);
      if (!text || !Number.isInteger(value) || value < f.limit.min || value > f.limit.max) {
        f.invalid(`${f.limit.label} must be a whole number from ${f.limit.min} to ${f.limit.max}.`);
        firstBad ??= f.input;
      } else {
        body[f.name] = value;
      }
    }
    if (firstBad) {
      firstBad.focus();
      return;
    }
    save.disabled = true;
    try {
      const saved = await api("PATCH", "/api/me/settings", body);
      for (const f of fields) f.input.value = String(saved[f.name]);
      invalidate("/api/me/settings");
      toast("Settings saved", { kind: "success" });
    } catch (err) {
      errors.show(errorText(err));
    } finally {
      save.disabled = false;
    }
  });
  root.replaceChildren(form);
}

// ---- Repository environment ----

async function renderEnvironment(root) {
  let repos;
  try {
    repos = (await api("GET", "/api/repos")) ?? [];
  } catch (err) {
    root.replaceChildren(h("div", { class: "view-error", role: "alert" }, h("p", { text: errorText(err) })));
    return;
  }
  if (!repos.length) {
    root.replaceChildren(h("p", { class: "view-empty", text: "No repositories yet. Add one to set its environment." }));
    return;
  }
  const select = h("select", { name: "repo" }, ...repos.map((r) => h("option", { value: r.id, text: r.github_full_name || r.name })));
  const picker = labelled("Repository", select);
  const detail = h("div", { class: "settings-repo" });
  root.replaceChildren(picker.row, detail);
  const byId = new Map(repos.map((r) => [r.id, r]));
  const show = () => renderRepoEnv(detail, byId.get(select.value), (updated) => byId.set(updated.id, updated));
  select.addEventListener("change", show);
  show();
}

function renderRepoEnv(root, initial, remember) {
  let repo = initial;
  const errors = alertBox();

  const pushId = uid("st-push");
  const push = h("input", { type: "checkbox", id: pushId });
  push.checked = repo.push_enabled;
  push.addEventListener("change", async () => {
    errors.clear();
    const wanted = push.checked;
    push.disabled = true;
    try {
      repo = await api("PATCH", `/api/repos/${encodeURIComponent(repo.id)}`, { push_enabled: wanted });
      remember(repo);
      push.checked = repo.push_enabled;
      toast(repo.push_enabled ? "Branches push after every turn" : "Branches no longer push after every turn", { kind: "success" });
    } catch (err) {
      push.checked = !wanted;
      errors.show(errorText(err));
    } finally {
      push.disabled = false;
    }
  });
  const pushRow = h(
    "div",
    { class: "view-field view-field-check" },
    push,
    h("label", { for: pushId, text: "Push after every turn" }),
  );

  const listHeadingId = uid("st-env");
  const list = h("ul", { class: "settings-env-list", "aria-labelledby": listHeadingId });
  const empty = h("p", { class: "view-empty", text: "No variables set." });

  function showKeys() {
    const keys = [...(repo.env_keys ?? [])].sort();
    empty.hidden = keys.length > 0;
    list.hidden = keys.length === 0;
    list.replaceChildren(
      ...keys.map((name) => {
        const nameId = uid("st-env-name");
        const del = h("button", { type: "button", class: "button button-small button-danger-ghost", "aria-describedby": nameId, text: "Delete" });
        del.addEventListener("click", () => deleteVar(name, del));
        return h("li", { class: "settings-env-item" }, h("code", { id: nameId, text: name }), del);
      }),
    );
  }

  async function deleteVar(name, button) {
    errors.clear();
    const ok = await confirmDialog({
      title: "Delete variable",
      message: `Delete ${name} from ${repo.name}? New sandbox commands no longer see it.`,
      confirmLabel: "Delete",
      danger: true,
    });
    if (!ok) return;
    button.disabled = true;
    try {
      repo = await api("PATCH", `/api/repos/${encodeURIComponent(repo.id)}`, { env: { [name]: null } });
      remember(repo);
      showKeys();
      toast(`${name} deleted`, { kind: "success" });
      nameField.input.focus();
    } catch (err) {
      button.disabled = false;
      errors.show(errorText(err));
    }
  }

  const nameField = labelled("Variable name", h("input", { type: "text", autocomplete: "off", spellcheck: "false", name: "env-name" }));
  const valueField = labelled("Value", h("input", { type: "password", autocomplete: "off", spellcheck: "false", name: "env-value" }));
  const save = h("button", { type: "submit", class: "button button-primary", text: "Save variable" });
  const form = h("form", { class: "view-form settings-env-form", novalidate: "" }, nameField.row, valueField.row, h("div", { class: "view-actions" }, save));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    errors.clear();
    nameField.valid();
    const name = nameField.input.value.trim();
    if (!ENV_NAME.test(name)) {
      nameField.invalid("Use letters, digits and underscores, not starting with a digit (at most 128).");
      nameField.input.focus();
      return;
    }
    save.disabled = true;
    try {
      repo = await api("PATCH", `/api/repos/${encodeURIComponent(repo.id)}`, { env: { [name]: valueField.input.value } });
      remember(repo);
      nameField.input.value = "";
      valueField.input.value = "";
      showKeys();
      toast(`${name} saved`, { kind: "success" });
    } catch (err) {
      errors.show(errorText(err));
    } finally {
      save.disabled = false;
    }
  });

  showKeys();
  root.replaceChildren(
    pushRow,
    h("h3", { id: listHeadingId, class: "settings-subheading", text: "Variables" }),
    empty,
    list,
    form,
    errors.node,
  );
}
