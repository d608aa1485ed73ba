// Small DOM helpers. Everything untrusted goes in as text nodes or attribute values, never as
// markup: there is deliberately no way to pass HTML through `h`.

const PROPERTIES = new Set(["value", "checked", "selected", "indeterminate"]);

/**
 * h("button", { class: "x", text: "Go", "aria-label": "Go", onclick: fn }, child, [more])
 * attrs: class, text, aria-*, data-*, on* handlers (functions), style (object, set through the
 * CSSOM so the CSP's style-src stays intact), boolean attributes as true/false, other attributes
 * as strings. null / undefined / false leave an attribute out. children: Node | string |
 * number | null | arrays of those.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class" || key === "className") {
      el.className = Array.isArray(value) ? value.filter(Boolean).join(" ") : String(value);
    } else if (key === "text") {
      el.textContent = String(value);
    } else if (key === "style" && typeof value === "object") {
      for (const [prop, v] of Object.entries(value)) {
        if (prop.startsWith("--")) el.style.setProperty(prop, String(v));
        else el.style[prop] = v;
      }
    } else if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (PROPERTIES.has(key)) {
      el[key] = value;
    } else if (value === true) {
      el.setAttribute(key, "");
    } else {
      el.setAttribute(key, String(value));
    }
  }
  append(el, children);
  return el;
}

function append(parent, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(parent, child);
    else if (child instanceof Node) parent.appendChild(child);
    else parent.appendChild(document.createTextNode(String(child)));
  }
}

/** Remove every child of `el`; returns `el`. */
export function clear(el) {
  el.replaceChildren();
  return el;
}

/** A random UUID; crypto.randomUUID only exists in secure contexts (not plain http on a LAN). */
export function uuid() {
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const x = [...b].map((n) => n.toString(16).padStart(2, "0")).join("");
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

export function debounce(fn, ms) {
  let timer = 0;
  const wrapped = (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
  wrapped.cancel = () => clearTimeout(timer);
  return wrapped;
}

// localStorage throws in some privacy modes and when full; a lost preference must not break
// the page.
export const storage = {
  get(key, fallback = null) {
    try {
      const value = localStorage.getItem(key);
      return value === null ? fallback : value;
    } catch {
      return fallback;
    }
  },
  set(key, value) {
    try {
      if (value === null || value === undefined || value === "") localStorage.removeItem(key);
      else localStorage.setItem(key, String(value));
    } catch {
      /* preference not kept */
    }
  },
};

/** Text for screen readers only, announced politely through a shared live region. */
let announcer = null;
export function announce(message) {
  if (!announcer) {
    announcer = h("div", { class: "sr-only", "aria-live": "polite", "aria-atomic": "true" });
    document.body.appendChild(announcer);
  }
  announcer.textContent = "";
  // A fresh text node after a tick makes repeated identical messages announce again.
  setTimeout(() => {
    announcer.textContent = message;
  }, 50);
}

const numberFormat = new Intl.NumberFormat();
export function formatNumber(n) {
  return numberFormat.format(n);
}

export function formatTime(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  const sameDay = d.toDateString() === new Date().toDateString();
  return sameDay
    ? d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
    : d.toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
}

/** Is `url` safe to put in an href: http(s) or mailto only. Returns the normalised URL or null. */
export function safeUrl(url) {
  try {
    const parsed = new URL(String(url), window.location.href);
    return ["http:", "https:", "mailto:"].includes(parsed.protocol) ? parsed.href : null;
  } catch {
    return null;
  }
}
