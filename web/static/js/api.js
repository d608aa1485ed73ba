// JSON over fetch against this origin. Cookies go along (same-origin default); the server
// checks Origin on cookie-authenticated writes, which a same-origin fetch always sends.

export class ApiError extends Error {
  /** @type {number} */ status;
  /** `detail` of the error body: a string, or FastAPI's list of validation problems. */
  detail;
  /** The parsed error body, or null when it was not JSON. */
  body;

  constructor(status, detail, body) {
    super(describe(status, detail));
    this.name = "ApiError";
    this.status = status;
    this.detail = detail;
    this.body = body;
  }
}

function describe(status, detail) {
  if (typeof detail === "string" && detail) return detail[0].toUpperCase() + detail.slice(1);
  if (Array.isArray(detail) && detail.length) {
    // Validation errors: [{loc: ["body", "name"], msg: "..."}]
    return detail
      .map((item) => {
        const where = Array.isArray(item?.loc) ? item.loc.filter((p) => p !== "body").join(".") : "";
        const msg = String(item?.msg ?? "invalid value").replace(/^Value error, /, "");
        return where ? `${where}: ${msg}` : msg;
      })
      .join("; ");
  }
  if (status === 0) return "The server cannot be reached. Check your connection.";
  if (status === 401) return "You are not signed in.";
  if (status === 403) return "You are not allowed to do that.";
  if (status === 404) return "Not found.";
  if (status >= 500) return `The server failed (${status}). Try again in a moment.`;
  return `Request failed (${status}).`;
}

/**
 * api("GET", "/api/repos") → parsed JSON; api("POST", path, body) sends JSON.
 * Throws ApiError on a non-2xx answer (status 0 when the network failed); 204 → null.
 * A 401 also fires `upstream:unauthorized` on window so the shell can offer sign-in.
 */
export async function api(method, path, body, { signal } = {}) {
  const init = {
    method,
    headers: { Accept: "application/json" },
    credentials: "same-origin",
    signal,
  };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    if (err?.name === "AbortError") throw err;
    throw new ApiError(0, null, null);
  }
  if (response.status === 204) return null;
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    if (response.status === 401) {
      window.dispatchEvent(new CustomEvent("upstream:unauthorized", { detail: { path } }));
    }
    throw new ApiError(response.status, data && typeof data === "object" ? data.detail : null, data);
  }
  return data;
}

/** A readable message for anything thrown by `api` (or anything else). */
export function errorMessage(err) {
  if (err instanceof ApiError) return err.message;
  if (err instanceof Error && err.message) return err.message;
  return "Something went wrong.";
}

/** Path segment encoding for ids and names that end up in a URL. */
export function seg(value) {
  return encodeURIComponent(String(value));
}

const cache = new Map();
/** GET with a short-lived cache for rarely changing lists (agents, settings). */
export function apiCached(path, ttlMs = 60_000) {
  const hit = cache.get(path);
  if (hit && Date.now() - hit.at < ttlMs) return hit.promise;
  const promise = api("GET", path);
  cache.set(path, { at: Date.now(), promise });
  promise.catch(() => cache.delete(path));
  return promise;
}

export function invalidateCache(path) {
  if (path === undefined) cache.clear();
  else cache.delete(path);
}
