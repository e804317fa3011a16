// Same-origin REST client: session cookie auth, CSRF header on writes, one error shape
// (docs/api-contract.md "Errors") turned into an ApiError the pages can render next to fields.

/** The page's bootstrap object rendered by the Django view (json_script id="bootstrap"). */
export function bootstrap() {
  const node = document.getElementById("bootstrap");
  return node ? JSON.parse(node.textContent) : {};
}

/** Read a cookie by name (Django's csrftoken), falling back to the token in the bootstrap. */
function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : bootstrap().csrf_token || "";
}

export class ApiError extends Error {
  /** @param {number} status @param {object|null} body */
  constructor(status, body) {
    const err = (body && body.error) || {};
    super(err.message || `HTTP ${status}`);
    this.status = status;
    this.code = err.code || (status === 404 ? "not_found" : "server_error");
    this.fields = Array.isArray(err.fields) ? err.fields : [];
  }
}

/**
 * Call the API. `path` is relative to /api/v1/ unless it starts with "/".
 * Returns the parsed JSON body (null for 204) or throws ApiError.
 */
export async function api(path, { method = "GET", body, signal, params } = {}) {
  let url = path.startsWith("/") ? path : `/api/v1/${path}`;
  if (params) {
    const qs = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") qs.set(k, v);
    const s = qs.toString();
    if (s) url += (url.includes("?") ? "&" : "?") + s;
  }
  const headers = { Accept: "application/json" };
  if (method !== "GET" && method !== "HEAD") headers["X-CSRFToken"] = csrfToken();
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let resp;
  try {
    resp = await fetch(url, {
      method, headers, signal, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (exc) {
    if (exc.name === "AbortError") throw exc;
    throw new ApiError(0, { error: { code: "network_error", message: "The server could not be reached." } });
  }
  if (resp.status === 204) return null;
  let data = null;
  try { data = await resp.json(); } catch { data = null; }
  if (!resp.ok) {
    if (resp.status === 401 || resp.status === 403) {
      const code = data && data.error && data.error.code;
      if (code === "not_authenticated") window.location.assign(`/login/?next=${encodeURIComponent(location.pathname + location.search)}`);
    }
    throw new ApiError(resp.status, data);
  }
  return data;
}
