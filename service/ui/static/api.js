// The console's only way to data: same-origin calls to the public /v1 API, with the session's
// API key when the server asks for one. Loaded first by every page; exposes window.Ragtune.
"use strict";

window.Ragtune = (() => {
  const root = document.body.dataset.root || "";
  const KEY = "ragtune.apiKey";
  const getKey = () => sessionStorage.getItem(KEY) || "";
  let pendingKey = null; // one key prompt at a time, shared by every request that hit a 401

  class ApiError extends Error {
    constructor(status, message, code) {
      super(message);
      this.status = status;
      this.code = code || null;
    }
  }

  function authHeaders(extra) {
    const headers = Object.assign({}, extra || {});
    const key = getKey();
    if (key) headers.Authorization = "Bearer " + key;
    return headers;
  }

  // OpenAI's error shape ({"error": {"message"}}) into an ApiError; anything else by status.
  function errorFrom(status, text, statusText) {
    try {
      const body = JSON.parse(text);
      if (body && body.error && body.error.message) {
        return new ApiError(status, body.error.message, body.error.code);
      }
    } catch (e) { /* not JSON: fall through */ }
    return new ApiError(status, `${status} ${statusText || "error"}`);
  }

  async function errorOf(resp) {
    return errorFrom(resp.status, await resp.text(), resp.statusText);
  }

  function showKeyState() {
    const state = document.getElementById("key-state");
    const forget = document.getElementById("key-forget");
    const has = Boolean(getKey());
    state.textContent = has ? "API key: set for this tab" : "API key: none";
    forget.hidden = !has;
  }

  // Resolves true once the user entered a key, false when they cancelled.
  function askForKey(why) {
    if (pendingKey) return pendingKey;
    const dialog = document.getElementById("key-dialog");
    const input = document.getElementById("key-input");
    document.getElementById("key-why").textContent = why || "This server asks for an API key.";
    input.value = "";
    dialog.returnValue = ""; // Escape keeps the last value: start from "not given"
    pendingKey = new Promise((resolve) => {
      dialog.addEventListener("close", function onClose() {
        dialog.removeEventListener("close", onClose);
        pendingKey = null;
        const key = input.value.trim();
        input.value = "";
        if (dialog.returnValue === "ok" && key) {
          sessionStorage.setItem(KEY, key);
          showKeyState();
          resolve(true);
        } else {
          resolve(false);
        }
      });
    });
    dialog.showModal();
    input.focus();
    return pendingKey;
  }

  // fetch() against this server; a 401 asks for a key and retries with it.
  async function request(path, options) {
    const opts = Object.assign({}, options || {});
    for (;;) {
      const resp = await fetch(root + path, Object.assign({}, opts, { headers: authHeaders(opts.headers) }));
      if (resp.status !== 401) return resp;
      const err = await errorOf(resp);
      if (!(await askForKey(err.message))) throw err;
    }
  }

  async function json(path, options) {
    const resp = await request(path, options);
    if (!resp.ok) throw await errorOf(resp);
    return resp.json();
  }

  function postJSON(body, extra) {
    return Object.assign({ method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) }, extra || {});
  }

  // A multipart upload through XMLHttpRequest, whose upload events report progress (fetch has none).
  function upload(path, file, onProgress) {
    const once = () => new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", root + path);
      const key = getKey();
      if (key) xhr.setRequestHeader("Authorization", "Bearer " + key);
      xhr.upload.addEventListener("progress", (e) => {
        if (e.lengthComputable) onProgress(e.loaded / e.total);
      });
      xhr.addEventListener("load", () => resolve(xhr));
      xhr.addEventListener("error", () => reject(new ApiError(0, "network error during upload")));
      const form = new FormData();
      form.append("file", file, file.name);
      xhr.send(form);
    });
    return (async () => {
      for (;;) {
        const xhr = await once();
        if (xhr.status === 401) {
          const err = errorFrom(401, xhr.responseText, xhr.statusText);
          if (!(await askForKey(err.message))) throw err;
          continue;
        }
        if (xhr.status < 200 || xhr.status >= 300) throw errorFrom(xhr.status, xhr.responseText, xhr.statusText);
        return JSON.parse(xhr.responseText);
      }
    })();
  }

  // Build DOM from data as nodes and text, never parsed as markup.
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "class") node.className = value;
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  // Seconds since the epoch (or an ISO string) as a local date and time.
  function when(value) {
    if (value === null || value === undefined || value === "") return "";
    const date = typeof value === "number" ? new Date(value * 1000) : new Date(value);
    return isNaN(date) ? String(value) : date.toLocaleString();
  }

  const basename = (path) => String(path || "").split(/[\\/]/).pop();

  document.addEventListener("DOMContentLoaded", () => {
    showKeyState();
    document.getElementById("key-forget").addEventListener("click", () => {
      sessionStorage.removeItem(KEY);
      showKeyState();
    });
  });

  return { root, ApiError, request, json, postJSON, upload, errorOf, askForKey, el, when, basename };
})();
