// The parent API, as the mini-program calls it: Bearer tokens kept in localStorage, one
// refresh on a 401 (the refresh token rotates, so concurrent 401s share one refresh), and
// every error in the API's one shape {code, message, fields}.
// Plain ES2019 + fetch: WeChat's in-app browser runs it as is.

const ACCESS = "scrm.parent.access";
const REFRESH = "scrm.parent.refresh";

let root = "/api/v1/parent/";
let onLoggedOut = function () {};
let refreshing = null;

export function configure(options) {
  root = options.root;
  onLoggedOut = options.onLoggedOut;
}

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || "");
    this.status = status;
    this.code = (body && body.code) || "error";
    this.fields = (body && body.fields) || {};
  }
}

function storage() {
  try {
    return window.localStorage;
  } catch (e) {
    // Private mode on some phones: keep the tokens for this page's life only.
    return memory;
  }
}
const memory = {
  data: {},
  getItem(key) { return Object.prototype.hasOwnProperty.call(this.data, key) ? this.data[key] : null; },
  setItem(key, value) { this.data[key] = String(value); },
  removeItem(key) { delete this.data[key]; },
};

export function loggedIn() {
  return Boolean(storage().getItem(ACCESS));
}

export function accessToken() {
  return storage().getItem(ACCESS);
}

export function keepTokens(body) {
  storage().setItem(ACCESS, body.access);
  storage().setItem(REFRESH, body.refresh);
}

export function forgetTokens() {
  storage().removeItem(ACCESS);
  storage().removeItem(REFRESH);
}

// An Idempotency-Key: one per user action, reused when that action is retried.
// crypto.randomUUID needs a secure context, which a phone on the school's LAN may not have.
export function newKey() {
  const bytes = new Uint8Array(16);
  window.crypto.getRandomValues(bytes);
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = Array.prototype.map.call(bytes, function (b) { return (b + 0x100).toString(16).slice(1); }).join("");
  return hex.slice(0, 8) + "-" + hex.slice(8, 12) + "-" + hex.slice(12, 16) + "-" + hex.slice(16, 20) + "-" + hex.slice(20);
}

async function send(path, options, token) {
  const headers = { Accept: "application/json" };
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  if (token) headers.Authorization = "Bearer " + token;
  if (options.key) headers["Idempotency-Key"] = options.key;
  let response;
  try {
    response = await fetch(path.indexOf("/") === 0 ? path : root + path, {
      method: options.method || "GET",
      headers: headers,
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
      // Never the staff's session cookie: a parent is who the token says.
      credentials: "omit",
      cache: "no-store",
    });
  } catch (e) {
    throw new ApiError(0, { code: "network", message: "" });
  }
  return response;
}

async function refreshTokens() {
  const refresh = storage().getItem(REFRESH);
  if (!refresh) return false;
  const response = await send("auth/refresh/", { method: "POST", body: { refresh: refresh } }, null);
  if (!response.ok) return false;
  keepTokens(await response.json());
  return true;
}

// The one refresh in flight: a second 401 waits for it rather than spending the rotated token.
function refreshOnce() {
  if (!refreshing) {
    refreshing = refreshTokens().finally(function () { refreshing = null; });
  }
  return refreshing;
}

async function body(response) {
  const type = response.headers.get("Content-Type") || "";
  if (type.indexOf("json") === -1) return null;
  try {
    return await response.json();
  } catch (e) {
    return null;
  }
}

// options: {method, body, key, auth (default true), raw (return the Response)}
export async function api(path, options) {
  options = options || {};
  const auth = options.auth !== false;
  let token = auth ? accessToken() : null;
  let response = await send(path, options, token);
  if (response.status === 401 && auth) {
    const renewed = await refreshOnce().catch(function () { return false; });
    if (!renewed) {
      forgetTokens();
      onLoggedOut();
      throw new ApiError(401, await body(response));
    }
    token = accessToken();
    response = await send(path, options, token);
    if (response.status === 401) {
      forgetTokens();
      onLoggedOut();
      throw new ApiError(401, await body(response));
    }
  }
  if (options.raw && response.ok) return response;
  const data = await body(response);
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

// A section of the app whose endpoint may not be on this server yet: null on a 404.
export async function optional(path, options) {
  try {
    return await api(path, options);
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) return null;
    throw e;
  }
}
