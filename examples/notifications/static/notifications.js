// A user's page: their notifications, from their own channel "notifications:#<user id>".
// New ones pop up as toasts and raise the bell's badge; the bell's panel lists them.
//
// What the page has seen is kept in localStorage (per user): the notifications, which of
// them were read, and the channel's stream position (epoch and offset) after the last one.
// Opening the page again subscribes with `since` that position: the server sends what
// was published meanwhile (recovery) before anything new. A browser that never came here
// loads the latest ones from history instead.
import { Centrifuge } from "centrifuge";

const $ = (id) => document.getElementById(id);
const KEEP = 50; // notifications kept (and shown) per user
const TOAST_MS = 6000;
const TOASTS_AT_ONCE = 3; // more at once (coming back after a while) make one summary toast
const ICONS = { info: "ℹ", success: "✓", warning: "!", mention: "@" };
const SIGNED_IN = "notifications-user";

let me = null; // { user, name, channel, token, websocket_port }
// { epoch, offset, items: [{ key, offset, data, read }] }: the items newest first, each
// keyed by its stream position ("epoch:offset"), the position that of the last one.
let saved = null;
let centrifuge = null;
let catchingUp = null; // while recovered publications arrive: the ones received so far
const highlighted = new Set(); // keys shown as new in the open panel (read already)

// Signing in: the backend signs a connection token for a demo user.

async function login(user) {
  const response = await fetch("login", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ user }),
  });
  if (!response.ok) throw new Error("sign-in failed: " + response.status);
  return response.json();
}

async function showAccounts() {
  const accounts = await (await fetch("users")).json();
  $("accounts").replaceChildren(...accounts.map(({ id, name }) => {
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.user = id;
    const avatar = document.createElement("span");
    avatar.className = "avatar";
    avatar.style.background = "hsl(" + hue(name) + " 80% 70%)";
    avatar.textContent = name[0];
    const id_ = document.createElement("small");
    id_.textContent = "user " + id;
    button.append(avatar, name, id_);
    button.addEventListener("click", () => signIn(id));
    return button;
  }));
}

async function signIn(user) {
  try {
    start(await login(user));
  } catch (err) {
    localStorage.removeItem(SIGNED_IN);
    $("login-error").textContent = err.message;
    showAccounts();
  }
}

$("sign-out").addEventListener("click", () => {
  localStorage.removeItem(SIGNED_IN);
  location.reload();
});

// Connecting, and the user's channel.

function start(session) {
  me = session;
  localStorage.setItem(SIGNED_IN, me.user);
  saved = load(me.user);
  $("login").hidden = true;
  $("sign-out").hidden = false;
  $("bell").disabled = false;
  $("me").replaceChildren(bold(me.name), " · user " + me.user);
  $("who").textContent = me.name;
  $("channel").textContent = me.channel;
  render();

  // wirehub runs beside the app, on a port of its own, on the same host.
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const endpoint = `${scheme}//${location.hostname}:${me.websocket_port}/connection/websocket`;
  centrifuge = new Centrifuge(endpoint, {
    token: me.token,
    getToken: async () => (await login(me.user)).token, // when it expires
  });
  centrifuge.on("connecting", () => setStatus("connecting", "connecting…"));
  centrifuge.on("connected", () => setStatus("connected", "live"));
  centrifuge.on("disconnected", (ctx) => setStatus("disconnected", "offline: " + ctx.reason));

  // Been here before: recover from where this browser left off.
  const since = saved.epoch ? { offset: saved.offset, epoch: saved.epoch } : null;
  const sub = centrifuge.newSubscription(me.channel, since ? { since } : {});
  sub.on("subscribed", (ctx) => subscribed(sub, ctx));
  sub.on("publication", received);
  sub.on("error", (ctx) => console.warn("subscription error", ctx.error));
  sub.subscribe();
  centrifuge.connect();
}

function subscribed(sub, ctx) {
  const position = ctx.streamPosition || { offset: 0, epoch: "" };
  const sameStream = position.epoch === saved.epoch;
  saved.epoch = position.epoch;
  if (ctx.wasRecovering && ctx.recovered) {
    // The publications missed meanwhile follow this event, in order, at once.
    catchingUp = [];
    setTimeout(caughtUp);
  } else if (ctx.wasRecovering) {
    // Away longer than the history keeps, or the server lost it (a new epoch): what
    // history still has, after what this browser has seen when it is the same stream.
    if (!sameStream) saved.offset = 0;
    loadLatest(sub, "Some notifications sent while you were away are no longer kept: " +
      "here are the latest.", sameStream ? saved.offset : null);
  } else {
    // A browser new here: the latest ones, from history.
    saved.offset = position.offset;
    loadLatest(sub, "");
  }
  store();
}

function received(ctx) {
  const item = add(saved.epoch, ctx.offset, ctx.data);
  if (!item) return;
  if (catchingUp) catchingUp.push(item);
  else toast(item);
  render(true);
}

function caughtUp() {
  const items = catchingUp || [];
  catchingUp = null;
  if (items.length > TOASTS_AT_ONCE) {
    toast({ data: { kind: "info", title: `${items.length} new notifications`,
      body: "sent while you were away", time: Date.now() / 1000 } });
  } else {
    items.forEach(toast);
  }
  if (items.length) {
    const plural = items.length === 1 ? "notification was" : "notifications were";
    note(`${items.length} ${plural} sent while you were away: they arrived as you came back.`);
  }
}

// A browser that never came here, or one that cannot recover: the latest from history.
async function loadLatest(sub, message, after = null) {
  try {
    const page = await sub.history({ limit: KEEP, reverse: true });
    const fresh = page.publications
      .filter((pub) => after === null || pub.offset > after)
      .map((pub) => add(page.epoch, pub.offset, pub.data))
      .filter(Boolean);
    render(fresh.length > 0);
    if (message) note(message, true);
  } catch (err) {
    console.warn("could not load the latest notifications", err);
  }
}

// The notifications this browser has, newest first.

function load(user) {
  try {
    const value = JSON.parse(localStorage.getItem("notifications:" + user));
    if (value && Array.isArray(value.items)) return value;
  } catch (err) {
    console.warn("ignoring what was stored", err);
  }
  return { epoch: "", offset: 0, items: [] };
}

function store() {
  localStorage.setItem("notifications:" + me.user, JSON.stringify(saved));
}

function add(epoch, offset, data) {
  const key = epoch + ":" + offset;
  if (saved.items.some((item) => item.key === key)) return null; // seen already
  const item = { key, offset, data, read: false };
  if (!$("panel").hidden) {
    item.read = true; // in sight already
    highlighted.add(key);
  }
  saved.items.push(item);
  // Newest first: by time, then by offset (history and live ones may interleave).
  saved.items.sort((a, b) => b.data.time - a.data.time || b.offset - a.offset);
  saved.items.length = Math.min(saved.items.length, KEEP);
  if (epoch === saved.epoch) saved.offset = Math.max(saved.offset, offset);
  store();
  return item;
}

function unread() {
  return saved.items.filter((item) => !item.read).length;
}

// The bell: the badge counts what is unread; opening the panel reads them all, and
// shows which were new until it closes.

$("bell").addEventListener("click", () => setPanel($("panel").hidden));
$("mark-read").addEventListener("click", () => markAllRead());
document.addEventListener("click", (event) => {
  if (!$("panel").hidden && !event.target.closest(".bell-wrap")) setPanel(false);
});
document.addEventListener("keydown", (event) => { if (event.key === "Escape") setPanel(false); });

function setPanel(open) {
  if (open === !$("panel").hidden) return;
  $("panel").hidden = !open;
  $("bell").setAttribute("aria-expanded", String(open));
  highlighted.clear();
  if (open) saved.items.filter((item) => !item.read).forEach((item) => highlighted.add(item.key));
  markAllRead(open);
}

function markAllRead(keepHighlights = false) {
  if (!keepHighlights) highlighted.clear();
  saved.items.forEach((item) => { item.read = true; });
  store();
  render();
}

function render(bump = false) {
  const count = unread();
  const badge = $("badge");
  badge.hidden = count === 0;
  badge.textContent = count > 99 ? "99+" : String(count);
  if (bump && count) {
    badge.classList.remove("bump");
    void badge.offsetWidth; // restart the animation
    badge.classList.add("bump");
  }
  document.title = (count ? `(${count}) ` : "") + "wirehub · notifications";
  const items = saved.items.map((item) => view(item));
  if (!items.length) {
    const empty = document.createElement("li");
    empty.className = "empty";
    empty.textContent = "Nothing yet.";
    items.push(empty);
  }
  $("list").replaceChildren(...items);
}

function view(item, tag = "li") {
  const { kind, title, body, time } = item.data;
  const element = document.createElement(tag);
  element.className = "item" + (item.read === false || highlighted.has(item.key) ? " unread" : "");
  element.dataset.kind = ICONS[kind] ? kind : "info";
  if (item.key) element.dataset.key = item.key;
  const icon = document.createElement("span");
  icon.className = "icon";
  icon.textContent = ICONS[element.dataset.kind];
  const heading = document.createElement("span");
  heading.className = "title";
  const when = document.createElement("time");
  when.textContent = ago(time);
  heading.append(title, when);
  const text = document.createElement("span");
  text.className = "body";
  text.textContent = body;
  element.append(icon, heading, text);
  return element;
}

function toast(item) {
  const element = view({ data: item.data, read: true }, "div");
  element.classList.add("toast");
  const close = () => {
    element.classList.add("leaving");
    setTimeout(() => element.remove(), 300);
  };
  element.addEventListener("click", close);
  setTimeout(close, TOAST_MS);
  $("toasts").append(element);
}

// Bits.

function note(text, bad = false) {
  $("away").textContent = text;
  $("away").className = "note" + (bad ? " bad" : "");
  $("away").hidden = false;
}

function setStatus(state, text) {
  $("status").dataset.state = state;
  $("status").textContent = text;
}

function ago(seconds) {
  const elapsed = Math.max(0, Date.now() / 1000 - seconds);
  if (elapsed < 60) return "just now";
  if (elapsed < 3600) return Math.floor(elapsed / 60) + " min ago";
  if (elapsed < 86400) return Math.floor(elapsed / 3600) + " h ago";
  return new Date(seconds * 1000).toLocaleDateString();
}

function bold(text) {
  const b = document.createElement("b");
  b.textContent = text;
  return b;
}

function hue(text) {
  let h = 0;
  for (const ch of text) h = (h * 31 + ch.codePointAt(0)) % 360;
  return h;
}

setInterval(() => { if (saved && !$("panel").hidden) render(); }, 30000); // "2 min ago"
const user = localStorage.getItem(SIGNED_IN);
if (user) signIn(user);
else showAccounts();
