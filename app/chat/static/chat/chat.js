// The chat page: rooms and history over REST, new messages live over a WebSocket that
// reconnects by itself (exponential backoff with jitter) and catches up with ?after=<id>.
// Plain browser JavaScript, no build step. Message text is only ever set as textContent.
"use strict";

const SUBPROTOCOL = "mainkode.v1";
const TOKEN_PREFIX = "auth.";
const CLOSE_NOT_FOUND = 4404;
const CLOSE_INVALID_TOKEN = 4401;
const MAX_BACKOFF_MS = 30000;

const state = {
  token: sessionStorage.getItem("token"),
  username: sessionStorage.getItem("username"),
  room: null, // slug of the open room
  lastId: 0, // highest message id shown: the ?after= of the next catch-up
  socket: null,
  attempts: 0, // reconnect attempts since the last successful open
  reconnectTimer: null,
};

const $ = (id) => document.getElementById(id);

function showError(text) {
  $("error").textContent = text || "";
}

async function api(path, options = {}) {
  const headers = { Accept: "application/json", ...(options.headers || {}) };
  if (state.token) headers.Authorization = `Token ${state.token}`;
  // A session-authenticated user (no token) needs Django's CSRF header on writes.
  const csrf = document.cookie.match(/(?:^|; )csrftoken=([^;]+)/);
  if (!state.token && csrf && options.method && options.method !== "GET") headers["X-CSRFToken"] = csrf[1];
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    ...options,
    headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
  });
  const data = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) {
    const detail = data && (data.detail || JSON.stringify(data));
    throw new Error(`${response.status}: ${detail || response.statusText}`);
  }
  return data;
}

// --- session -------------------------------------------------------------------------------

function renderSession() {
  const loggedIn = Boolean(state.token);
  $("login-form").hidden = loggedIn;
  $("session").hidden = !loggedIn;
  $("session-user").textContent = state.username || "";
  $("message-body").placeholder = loggedIn ? "Message" : "Log in to post";
}

async function logIn(event) {
  event.preventDefault();
  const username = $("login-username").value;
  try {
    const data = await api("/api/auth/token/", {
      method: "POST",
      body: { username, password: $("login-password").value },
    });
    state.token = data.token;
    state.username = username;
    sessionStorage.setItem("token", state.token);
    sessionStorage.setItem("username", username);
    showError("");
    renderSession();
    if (state.room) connect(); // reconnect with the token, to post over the socket too
  } catch (error) {
    showError(`Login failed (${error.message})`);
  }
}

function logOut() {
  // The server ends the token too (it would stay valid until it expires); a token the
  // server refused already answers 401, which changes nothing here.
  if (state.token) {
    fetch("/api/auth/logout/", { method: "POST", headers: { Authorization: `Token ${state.token}` } }).catch(() => {});
  }
  state.token = null;
  state.username = null;
  sessionStorage.clear();
  renderSession();
}

// --- rooms -----------------------------------------------------------------------------------

async function loadRooms() {
  const data = await api("/api/rooms/");
  const list = $("rooms");
  list.replaceChildren();
  for (const room of data.results || data) {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = `${room.title} (${room.slug})`;
    button.dataset.slug = room.slug;
    button.addEventListener("click", () => openRoom(room.slug, room.title));
    item.append(button);
    list.append(item);
  }
}

async function createRoom(event) {
  event.preventDefault();
  try {
    const room = await api("/api/rooms/", {
      method: "POST",
      body: { slug: $("room-slug").value, title: $("room-title").value },
    });
    await loadRooms();
    openRoom(room.slug, room.title);
  } catch (error) {
    showError(`Could not create the room (${error.message})`);
  }
}

// --- messages --------------------------------------------------------------------------------

function renderMessage(message) {
  if (message.id <= state.lastId) return; // already shown (catch-up and live overlap)
  state.lastId = message.id;
  const item = document.createElement("li");
  item.dataset.id = message.id;
  const author = document.createElement("span");
  author.className = "author";
  author.textContent = message.author;
  const body = document.createElement("span");
  body.className = "body";
  body.textContent = message.body;
  const time = document.createElement("time");
  time.dateTime = message.created_at;
  time.textContent = new Date(message.created_at).toLocaleTimeString();
  item.append(author, body, time);
  const list = $("messages");
  list.append(item);
  list.scrollTop = list.scrollHeight;
}

async function loadHistory(slug) {
  const page = await api(`/api/rooms/${encodeURIComponent(slug)}/messages/`);
  if (state.room !== slug) return;
  page.results.forEach(renderMessage);
}

async function catchUp(slug) {
  // Everything after the last message shown, oldest first, page by page.
  let url = `/api/rooms/${encodeURIComponent(slug)}/messages/?after=${state.lastId}`;
  while (url && state.room === slug) {
    const page = await api(url);
    page.results.forEach(renderMessage);
    url = page.next;
  }
}

async function postMessage(event) {
  event.preventDefault();
  if (!state.token) {
    showError("Log in to post.");
    return;
  }
  const input = $("message-body");
  try {
    const message = await api(`/api/rooms/${encodeURIComponent(state.room)}/messages/`, {
      method: "POST",
      body: { body: input.value },
    });
    renderMessage(message); // the socket brings it too; renderMessage ignores the repeat
    input.value = "";
    showError("");
  } catch (error) {
    showError(`Not sent (${error.message})`);
  }
}

// --- socket ---------------------------------------------------------------------------------

function setStatus(text, live) {
  const status = $("connection");
  status.textContent = text;
  status.classList.toggle("live", Boolean(live));
}

function closeSocket() {
  clearTimeout(state.reconnectTimer);
  if (state.socket) {
    state.socket.onclose = null;
    state.socket.close(1000);
    state.socket = null;
  }
}

function connect() {
  closeSocket();
  const slug = state.room;
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const protocols = [SUBPROTOCOL];
  if (state.token) protocols.push(TOKEN_PREFIX + state.token);
  const socket = new WebSocket(`${scheme}://${location.host}/ws/rooms/${encodeURIComponent(slug)}/`, protocols);
  state.socket = socket;
  setStatus("connecting…");

  socket.onopen = async () => {
    state.attempts = 0;
    setStatus("live", true);
    try {
      await catchUp(slug); // what was posted while we were away
    } catch (error) {
      showError(`Catch-up failed (${error.message})`);
    }
  };
  socket.onmessage = (event) => {
    const data = JSON.parse(event.data);
    if (data.error) showError(`${data.error}: ${JSON.stringify(data.detail)}`);
    else if (data.export) renderExport(data.export);
    else if (data.room === state.room) renderMessage(data);
  };
  socket.onclose = (event) => {
    if (state.socket !== socket) return;
    state.socket = null;
    if (event.code === CLOSE_NOT_FOUND) {
      setStatus("this room does not exist");
      return;
    }
    if (event.code === CLOSE_INVALID_TOKEN) {
      showError("Your session expired; log in again.");
      logOut();
    }
    // Exponential backoff with full jitter, so a restarted server is not stampeded.
    const delay = Math.random() * Math.min(MAX_BACKOFF_MS, 500 * 2 ** state.attempts);
    state.attempts += 1;
    setStatus(`reconnecting in ${(delay / 1000).toFixed(1)} s…`);
    state.reconnectTimer = setTimeout(() => {
      if (state.room === slug) connect();
    }, delay);
  };
}

// --- exports (built by the worker service; the socket says when one is finished) -----------

async function requestExport() {
  if (!state.token) {
    showError("Log in to export a room.");
    return;
  }
  try {
    renderExport(await api(`/api/rooms/${encodeURIComponent(state.room)}/exports/`, { method: "POST" }));
  } catch (error) {
    showError(`Export refused (${error.message})`);
  }
}

function renderExport(exported) {
  const status = $("export-status");
  status.replaceChildren();
  if (exported.status === "succeeded") {
    const link = document.createElement("a");
    link.href = exported.download_url;
    link.textContent = `Download ${exported.room} (${exported.message_count} messages)`;
    link.addEventListener("click", (event) => {
      event.preventDefault();
      downloadExport(exported);
    });
    status.append(link);
  } else if (exported.status === "failed") {
    status.textContent = `Export of ${exported.room} failed: ${exported.error}`;
  } else {
    status.textContent = `Export of ${exported.room} ${exported.status}…`;
  }
}

async function downloadExport(exported) {
  // The token travels in a header, which a plain link cannot send.
  const response = await fetch(exported.download_url, { headers: { Authorization: `Token ${state.token}` } });
  if (!response.ok) {
    showError(`Download failed (${response.status})`);
    return;
  }
  const link = document.createElement("a");
  link.href = URL.createObjectURL(await response.blob());
  link.download = `${exported.room}-${exported.id}.jsonl.gz`;
  link.click();
  URL.revokeObjectURL(link.href);
}

async function openRoom(slug, title) {
  closeSocket();
  state.room = slug;
  state.lastId = 0;
  state.attempts = 0;
  $("room").hidden = false;
  $("room-title-heading").textContent = title || slug;
  $("messages").replaceChildren();
  history.replaceState(null, "", `#${slug}`);
  try {
    await loadHistory(slug);
  } catch (error) {
    showError(`Could not load the room (${error.message})`);
    return;
  }
  connect();
}

document.addEventListener("DOMContentLoaded", async () => {
  $("login-form").addEventListener("submit", logIn);
  $("logout").addEventListener("click", logOut);
  $("room-form").addEventListener("submit", createRoom);
  $("message-form").addEventListener("submit", postMessage);
  $("export-button").addEventListener("click", requestExport);
  renderSession();
  try {
    await loadRooms();
  } catch (error) {
    showError(`Could not list rooms (${error.message})`);
  }
  const slug = decodeURIComponent(location.hash.slice(1));
  if (slug) openRoom(slug, slug);
});
