// The application shell: sidebar + main panel, hash routing, the branch view (header, tabs)
// and sign-in state. Views owned elsewhere (diff, history, git actions, settings) are loaded
// on first use, so a failure in one of them cannot take the whole client down.
import { api, ApiError, errorMessage, seg } from "./api.js";
import { h, safeUrl } from "./dom.js";
import { initTheme } from "./theme.js";
import { toast } from "./toast.js";
import { createSidebar } from "./sidebar.js";
import { mountChat, statusText } from "./chat.js";

initTheme();

const TABS = [
  { id: "chat", label: "Chat" },
  { id: "diff", label: "Diff" },
  { id: "history", label: "History" },
];
const NARROW = window.matchMedia("(max-width: 800px)");

const views = {
  diff: () => import("./views/diff.js"),
  history: () => import("./views/history.js"),
  git: () => import("./views/git_actions.js"),
  settings: () => import("./views/settings.js"),
};
const loaded = new Map();
function loadView(name) {
  if (!loaded.has(name)) {
    const promise = views[name]();
    // A failed import is retried next time rather than cached forever.
    promise.catch(() => loaded.delete(name));
    loaded.set(name, promise);
  }
  return loaded.get(name);
}

const app = {
  auth: null, // { config, me }
  branchView: null, // the mounted branch view, see mountBranchView
  routeToken: 0,
};

// ---------------------------------------------------------------------------------------------
// Shell

const sidebarEl = document.getElementById("sidebar");
const mainEl = document.getElementById("main");
const viewEl = document.getElementById("view");
const backdrop = document.getElementById("drawer-backdrop");
const menuButton = document.getElementById("menu-button");
const topbarTitle = document.getElementById("topbar-title");

const sidebar = createSidebar(sidebarEl, {
  onBranchCreated: (branch) => navigate(`#/branches/${branch.id}`),
  onRequestClose: () => closeDrawer(),
  onReposChanged: () => {
    if (!app.branchView && routeOf().name === "home") renderHome();
  },
  isDrawer: () => NARROW.matches,
});

document.querySelector(".skip-link")?.addEventListener("click", (event) => {
  // A plain #main link would replace the route in the hash.
  event.preventDefault();
  mainEl.focus();
});

// Mobile drawer -----------------------------------------------------------------------------

function drawerOpen() {
  return document.body.classList.contains("drawer-open");
}

function openDrawer() {
  document.body.classList.add("drawer-open");
  sidebarEl.inert = false;
  sidebarEl.removeAttribute("aria-hidden");
  menuButton.setAttribute("aria-expanded", "true");
  backdrop.hidden = false;
  mainEl.inert = true;
  const current = sidebarEl.querySelector('[aria-current="page"]');
  (current || sidebarEl.querySelector("a[href], button"))?.focus();
}

function closeDrawer({ restoreFocus = true } = {}) {
  if (!drawerOpen()) return;
  document.body.classList.remove("drawer-open");
  menuButton.setAttribute("aria-expanded", "false");
  backdrop.hidden = true;
  mainEl.inert = false;
  syncDrawerMode();
  if (restoreFocus) menuButton.focus();
}

function syncDrawerMode() {
  // On narrow screens the closed drawer is inert (out of the tab order and the a11y tree).
  const hideSidebar = NARROW.matches && !drawerOpen();
  sidebarEl.inert = hideSidebar;
  if (!NARROW.matches) {
    document.body.classList.remove("drawer-open");
    backdrop.hidden = true;
    mainEl.inert = false;
    menuButton.setAttribute("aria-expanded", "false");
  }
}

menuButton.addEventListener("click", () => (drawerOpen() ? closeDrawer() : openDrawer()));
backdrop.addEventListener("click", () => closeDrawer());
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && drawerOpen() && !document.querySelector("dialog[open]")) {
    closeDrawer();
  }
});
NARROW.addEventListener("change", syncDrawerMode);
syncDrawerMode();

// Routing -----------------------------------------------------------------------------------

function routeOf(hash = window.location.hash) {
  const path = hash.replace(/^#/, "");
  let m;
  if (path === "" || path === "/") return { name: "home" };
  if (path === "/settings" || path.startsWith("/settings/")) return { name: "settings" };
  if ((m = /^\/branches\/([^/]+)(?:\/(chat|diff|history))?\/?$/.exec(path))) {
    return { name: "branch", id: decodeURIComponent(m[1]), tab: m[2] || "chat" };
  }
  return { name: "notfound" };
}

function navigate(hash) {
  if (window.location.hash === hash) route();
  else window.location.hash = hash;
}

window.addEventListener("hashchange", () => route());

async function route() {
  const token = ++app.routeToken;
  const r = routeOf();
  const fromDrawer = drawerOpen();
  if (fromDrawer) closeDrawer({ restoreFocus: false });
  if (!app.auth?.me) {
    // Not signed in: the sign-in screen stays whatever the hash says.
    return;
  }
  sidebar.setActive(r.name === "branch" ? r.id : null);

  if (r.name === "branch") {
    if (app.branchView && app.branchView.branchId === r.id) {
      app.branchView.selectTab(r.tab);
      // The drawer held focus and is now inert: put focus somewhere useful.
      if (fromDrawer) app.branchView.focusHeading();
      return;
    }
    unmountBranchView();
    await mountBranchView(r.id, r.tab, token, { focus: fromDrawer || sidebarEl.contains(document.activeElement) });
    return;
  }
  unmountBranchView();
  if (r.name === "settings") {
    setTitle("Settings");
    const container = h("div", { class: "page settings-page" });
    viewEl.replaceChildren(container);
    try {
      const mod = await loadView("settings");
      if (token !== app.routeToken) return;
      await mod.renderSettings(container);
    } catch (err) {
      if (token !== app.routeToken) return;
      container.replaceChildren(loadError("Settings could not be loaded.", err));
    }
    if (fromDrawer && token === app.routeToken) focusView();
    return;
  }
  if (r.name === "notfound") {
    setTitle("Not found");
    viewEl.replaceChildren(
      h(
        "div",
        { class: "empty-state" },
        h("h1", { class: "empty-title", text: "Nothing here" }),
        h("p", {}, "This address does not match a page. ", h("a", { href: "#/", text: "Go home" })),
      ),
    );
    if (fromDrawer) focusView();
    return;
  }
  renderHome();
  if (fromDrawer) focusView();
}

/** Focus the view's heading (or the main region) after the drawer that held focus closed. */
function focusView() {
  const heading = viewEl.querySelector("h1");
  if (heading) {
    if (!heading.hasAttribute("tabindex")) heading.setAttribute("tabindex", "-1");
    heading.focus();
  } else {
    mainEl.focus();
  }
}

function setTitle(text, topbar = text) {
  document.title = text ? `${text} · Upstream Agents` : "Upstream Agents";
  topbarTitle.textContent = topbar || "Upstream Agents";
}

function renderHome() {
  setTitle("");
  const hasRepos = sidebar.repoCount() > 0;
  viewEl.replaceChildren(
    h(
      "div",
      { class: "empty-state" },
      h("div", { class: "empty-mark", "aria-hidden": "true", text: "⌥" }),
      h("h1", { class: "empty-title", text: hasRepos ? "Pick a branch" : "Welcome to Upstream Agents" }),
      h(
        "p",
        { class: "empty-text" },
        hasRepos
          ? "Choose a branch in the sidebar, or start a new one with the + next to a repository. Each branch gets its own sandbox and agent."
          : "Add a repository with the + next to “Repositories” in the sidebar, then start a branch: each branch gets its own sandbox and coding agent.",
      ),
      NARROW.matches
        ? h("p", { class: "empty-text muted", text: "The sidebar opens with the menu button at the top." })
        : null,
    ),
  );
}

function loadError(message, err) {
  return h(
    "div",
    { class: "load-error", role: "alert" },
    h("p", { class: "load-error-title", text: message }),
    err ? h("p", { class: "muted", text: errorMessage(err) }) : null,
  );
}

// ---------------------------------------------------------------------------------------------
// Branch view

function unmountBranchView() {
  if (!app.branchView) return;
  app.branchView.destroy();
  app.branchView = null;
}

async function mountBranchView(branchId, tab, token, { focus = false } = {}) {
  viewEl.replaceChildren(h("div", { class: "loading-view", role: "status", text: "Loading branch…" }));
  let branch;
  try {
    branch = await api("GET", `/api/branches/${seg(branchId)}`);
  } catch (err) {
    if (token !== app.routeToken) return;
    setTitle("Branch");
    viewEl.replaceChildren(
      err instanceof ApiError && (err.status === 404 || err.status === 422)
        ? h(
            "div",
            { class: "empty-state" },
            h("h1", { class: "empty-title", text: "Branch not found" }),
            h("p", { class: "empty-text", text: "It may have been deleted. Pick another branch in the sidebar." }),
          )
        : loadError("The branch could not be loaded.", err),
    );
    return;
  }
  if (token !== app.routeToken) return;
  const view = createBranchView(branch);
  app.branchView = view;
  viewEl.replaceChildren(view.element);
  view.selectTab(tab);
  if (focus) {
    // Wide screens: straight to the composer, as in a chat app. Narrow: the heading, so the
    // on-screen keyboard does not pop up over the conversation.
    if (!NARROW.matches && tab === "chat") view.focusComposer();
    else view.focusHeading();
  }
}

function createBranchView(initial) {
  let branch = initial;
  let destroyed = false;
  let currentTab = null;
  const repo = sidebar.repo(branch.repo_id);

  const heading = h("h1", { class: "branch-name", tabindex: "-1" });
  const subtitle = h("p", { class: "branch-sub" });
  const badge = h("span", { class: "status-badge" });
  const actions = h("div", { class: "branch-actions" });
  const prSlot = h("span", { class: "pr-slot" });
  const gitSlot = h("span", { class: "git-slot" });
  actions.append(prSlot, gitSlot);

  const header = h(
    "header",
    { class: "branch-header" },
    h("div", { class: "branch-heading" }, h("div", { class: "branch-title-row" }, heading, badge), subtitle),
    actions,
  );

  const tablist = h("div", { class: "tabs", role: "tablist", "aria-label": "Branch views" });
  const tabs = {};
  const panels = {};
  for (const t of TABS) {
    const tabId = `tab-${t.id}`;
    const panelId = `panel-${t.id}`;
    const tabEl = h("button", {
      type: "button",
      class: "tab",
      role: "tab",
      id: tabId,
      "aria-controls": panelId,
      "aria-selected": "false",
      tabindex: "-1",
      text: t.label,
      onclick: () => navigate(`#/branches/${branch.id}${t.id === "chat" ? "" : `/${t.id}`}`),
    });
    tabs[t.id] = tabEl;
    panels[t.id] = h("div", {
      class: ["tabpanel", `tabpanel-${t.id}`],
      role: "tabpanel",
      id: panelId,
      "aria-labelledby": tabId,
      hidden: true,
    });
    tablist.appendChild(tabEl);
  }
  tablist.addEventListener("keydown", (event) => {
    const order = TABS.map((t) => t.id);
    const index = order.indexOf(currentTab);
    let next = null;
    if (event.key === "ArrowRight") next = order[(index + 1) % order.length];
    else if (event.key === "ArrowLeft") next = order[(index - 1 + order.length) % order.length];
    else if (event.key === "Home") next = order[0];
    else if (event.key === "End") next = order[order.length - 1];
    if (!next) return;
    event.preventDefault();
    tabs[next].focus();
    tabs[next].click();
  });

  const element = h(
    "div",
    { class: "branch-view" },
    header,
    tablist,
    TABS.map((t) => panels[t.id]),
  );

  const chat = mountChat(panels.chat, branch, {
    onStatus: (status, detail) => setStatus(status, detail),
    onBranchChanged: () => reload(),
    onBranchUpdated: (updated) => apply(updated),
  });

  function setStatus(status, detail) {
    branch = { ...branch, status, status_detail: detail ?? null };
    renderBadge();
    sidebar.setBranchStatus(branch.id, status, detail);
  }

  function renderBadge() {
    badge.dataset.status = branch.status;
    badge.textContent = branch.status;
    badge.title = statusText(branch.status, branch.status_detail);
  }

  function renderHeader() {
    heading.textContent = branch.name;
    const repoName = sidebar.repo(branch.repo_id)?.name || repo?.name;
    // The narrow top bar names the repository: the branch is the heading right below it.
    setTitle(branch.name, repoName || "Upstream Agents");
    subtitle.replaceChildren(
      repoName ? h("span", { class: "branch-repo", text: repoName }) : null,
      repoName ? h("span", { class: "sep", "aria-hidden": "true", text: " · " }) : null,
      h("span", { text: `from ${branch.base_branch}` }),
      branch.agent ? h("span", { class: "sep", "aria-hidden": "true", text: " · " }) : null,
      branch.agent ? h("span", { text: branch.model ? `${branch.agent} / ${branch.model}` : branch.agent }) : null,
    );
    renderBadge();
    renderPullRequest();
    renderGitActions();
  }

  function renderPullRequest() {
    const pr = branch.pull_request;
    const href = pr ? safeUrl(pr.url) : null;
    if (pr && href) {
      prSlot.replaceChildren(
        h(
          "a",
          { class: "button button-ghost pr-link", href, target: "_blank", rel: "noopener noreferrer" },
          `Pull request #${pr.number}`,
          h("span", { class: "sr-only", text: " (opens in a new tab)" }),
          h("span", { class: "ext", "aria-hidden": "true", text: "↗" }),
        ),
      );
      return;
    }
    prSlot.replaceChildren(
      h("button", {
        type: "button",
        class: "button",
        text: "Create pull request",
        onclick: async () => {
          try {
            const mod = await loadView("git");
            mod.openCreatePullRequest(branch, () => reload());
          } catch (err) {
            toast(`Pull requests are unavailable: ${errorMessage(err)}`, { kind: "error" });
          }
        },
      }),
    );
  }

  let gitToken = 0;
  async function renderGitActions() {
    const mine = ++gitToken;
    try {
      const mod = await loadView("git");
      if (mine !== gitToken || destroyed) return;
      const hadFocus = gitSlot.contains(document.activeElement);
      gitSlot.replaceChildren(mod.gitActionsMenu(branch, () => reload()));
      if (hadFocus) gitSlot.querySelector("button")?.focus();
    } catch (err) {
      if (mine !== gitToken || destroyed) return;
      gitSlot.replaceChildren();
      console.warn("git actions unavailable:", errorMessage(err));
    }
  }

  function apply(updated) {
    if (destroyed || !updated || updated.id !== branch.id) return;
    const nameChanged = updated.name !== branch.name;
    branch = { ...branch, ...updated };
    renderHeader();
    chat.updateBranch(branch);
    sidebar.upsertBranch(branch);
    if (nameChanged && currentTab && currentTab !== "chat") renderTab(currentTab);
  }

  let reloading = null;
  async function reload() {
    if (destroyed) return;
    // Collapse bursts (several git events in a row) into one request.
    if (reloading) return reloading;
    reloading = (async () => {
      try {
        const fresh = await api("GET", `/api/branches/${seg(branch.id)}`);
        apply(fresh);
      } catch (err) {
        if (err instanceof ApiError && err.status === 404) {
          toast("This branch was deleted.", { kind: "info" });
          sidebar.removeBranch(branch.id);
          navigate("#/");
        } else {
          toast(`Could not refresh the branch: ${errorMessage(err)}`, { kind: "error" });
        }
      } finally {
        reloading = null;
      }
    })();
    return reloading;
  }

  function renderTab(id) {
    const panel = panels[id];
    // A fresh container per render: an older render still in flight writes into a detached node.
    const container = h("div", { class: "view-container" });
    panel.replaceChildren(container);
    const name = id === "diff" ? "diff" : "history";
    loadView(name)
      .then((mod) => {
        if (destroyed || !container.isConnected) return;
        const fn = id === "diff" ? mod.renderDiff : mod.renderHistory;
        return fn(container, branch);
      })
      .catch((err) => {
        if (!container.isConnected) return;
        container.replaceChildren(loadError(`The ${id} could not be loaded.`, err));
      });
  }

  function selectTab(id) {
    if (!panels[id]) id = "chat";
    const changed = id !== currentTab;
    currentTab = id;
    for (const t of TABS) {
      const on = t.id === id;
      tabs[t.id].setAttribute("aria-selected", on ? "true" : "false");
      tabs[t.id].tabIndex = on ? 0 : -1;
      panels[t.id].hidden = !on;
    }
    if (id === "chat") chat.onShow();
    else if (changed) renderTab(id);
  }

  renderHeader();
  sidebar.upsertBranch(branch);

  return {
    branchId: branch.id,
    element,
    selectTab,
    focusHeading: () => heading.focus(),
    focusComposer: () => chat.focusComposer(),
    destroy() {
      destroyed = true;
      chat.destroy();
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Sign-in

async function loadAuth() {
  let config = { mode: "local", login_url: "/auth/login", logout_url: "/auth/logout" };
  try {
    config = await api("GET", "/auth/config");
  } catch {
    /* defaults: the /api/me answer below decides */
  }
  let me = null;
  let failure = null;
  try {
    me = await api("GET", "/api/me");
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 401)) failure = err;
  }
  return { config, me, failure };
}

function renderSignIn(config) {
  setTitle("Sign in");
  const login = config.login_url && config.login_url.startsWith("/") ? config.login_url : "/auth/login";
  viewEl.replaceChildren(
    h(
      "div",
      { class: "empty-state signin" },
      h("div", { class: "empty-mark", "aria-hidden": "true", text: "⌥" }),
      h("h1", { class: "empty-title", text: "Sign in to Upstream Agents" }),
      h(
        "p",
        { class: "empty-text" },
        config.mode === "dev"
          ? "Development mode: signing in uses the server's configured GitHub token."
          : "Sign in with your GitHub account to see your repositories and branches.",
      ),
      h("a", { class: "button button-primary button-large", href: login, text: "Sign in with GitHub" }),
    ),
  );
}

async function signOut() {
  try {
    await api("POST", app.auth?.config?.logout_url || "/auth/logout");
  } catch (err) {
    toast(`Sign-out failed: ${errorMessage(err)}`, { kind: "error" });
    return;
  }
  window.location.assign("/");
}

window.addEventListener("upstream:unauthorized", () => {
  // The session ended (expired or signed out elsewhere): offer sign-in once.
  if (!app.auth?.me || app.auth.config.mode === "local") return;
  app.auth.me = null;
  unmountBranchView();
  sidebar.setAccount({ config: app.auth.config, me: null, onSignOut: signOut });
  renderSignIn(app.auth.config);
});

async function start() {
  const params = new URLSearchParams(window.location.search);
  const loginError = params.get("login_error");
  if (loginError) {
    toast(
      loginError === "access_denied" ? "Sign-in was cancelled." : `Sign-in failed: ${loginError}`,
      { kind: loginError === "access_denied" ? "info" : "error" },
    );
    history.replaceState(null, "", window.location.pathname + window.location.hash);
  }

  const auth = await loadAuth();
  app.auth = auth;
  sidebar.setAccount({ config: auth.config, me: auth.me, onSignOut: signOut });
  if (!auth.me) {
    if (auth.failure) {
      setTitle("Unavailable");
      viewEl.replaceChildren(loadError("The service cannot be reached.", auth.failure));
      return;
    }
    renderSignIn(auth.config);
    return;
  }
  await sidebar.load();
  route();
}

start();
