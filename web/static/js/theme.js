// Light / dark / follow the system. The choice is kept in localStorage; the resolved theme is
// set as data-theme on <html> so CSS has one switch. Before this module runs, the stylesheet
// follows prefers-color-scheme on its own, so "system" users never see a flash.
import { h, storage } from "./dom.js";

const KEY = "upstream.theme";
const ORDER = ["system", "light", "dark"];
const LABELS = { system: "System", light: "Light", dark: "Dark" };
const media = window.matchMedia("(prefers-color-scheme: dark)");
const listeners = new Set();

export function getThemeChoice() {
  const value = storage.get(KEY, "system");
  return ORDER.includes(value) ? value : "system";
}

export function resolvedTheme(choice = getThemeChoice()) {
  if (choice === "system") return media.matches ? "dark" : "light";
  return choice;
}

function apply() {
  const choice = getThemeChoice();
  const theme = resolvedTheme(choice);
  const root = document.documentElement;
  root.dataset.theme = theme;
  root.dataset.themeChoice = choice;
  for (const fn of listeners) fn(choice, theme);
}

export function setThemeChoice(choice) {
  storage.set(KEY, choice === "system" ? null : choice);
  apply();
}

export function cycleTheme() {
  const next = ORDER[(ORDER.indexOf(getThemeChoice()) + 1) % ORDER.length];
  setThemeChoice(next);
  return next;
}

export function onThemeChange(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

export function initTheme() {
  apply();
  media.addEventListener("change", () => {
    if (getThemeChoice() === "system") apply();
  });
  // Another tab changed it.
  window.addEventListener("storage", (event) => {
    if (event.key === KEY) apply();
  });
}

/** The "Theme" button: cycles system → light → dark; its visible text names the current one. */
export function themeButton() {
  const value = h("span", { class: "theme-value" });
  const icon = h("span", { class: "theme-icon", "aria-hidden": "true" });
  const button = h(
    "button",
    {
      type: "button",
      class: "button button-ghost theme-button",
      title: "Switch theme: system, light, dark",
      onclick: () => cycleTheme(),
    },
    icon,
    h("span", { class: "theme-label", text: "Theme" }),
    value,
  );
  // The accessible name stays "Theme"; the current choice is its description.
  const descId = `theme-desc-${Math.random().toString(36).slice(2, 8)}`;
  value.id = descId;
  button.setAttribute("aria-label", "Theme");
  button.setAttribute("aria-describedby", descId);
  const render = (choice) => {
    value.textContent = LABELS[choice];
    icon.dataset.choice = choice;
  };
  render(getThemeChoice());
  onThemeChange(render);
  return button;
}
