// The chat page: log in, then one room at a time ("chat:<room>") with its history,
// who is online (presence, kept current by join/leave) and typing notices ("typing:<room>").
import { Centrifuge } from "centrifuge";

const $ = (id) => document.getElementById(id);
const ROOM_NAME = /^[a-z0-9][a-z0-9-]{0,23}$/;
const HISTORY_ON_JOIN = 50;
const TYPING_EVERY_MS = 2000; // send "typing" at most this often while typing
const TYPING_SHOWN_MS = 3500; // and show it this long after the last one

const rooms = ["lobby", "random", "python"];
let me = "";
let centrifuge = null;
let room = null; // the room shown: { name, sub, typingSub, offsets, online, left, typers }
let lastTypingSent = 0;

// Login: the server signs the name into a connection token.

async function login(name) {
  const response = await fetch("login", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ name }),
  });
  if (!response.ok) {
    const detail = (await response.json().catch(() => ({}))).detail;
    throw new Error(typeof detail === "string" ? detail : "that name is not allowed");
  }
  return response.json(); // { token, user }
}

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const name = $("login-name").value.trim();
  $("login-button").disabled = true;
  try {
    const { token, user } = await login(name);
    sessionStorage.setItem("chat-name", user);
    start(user, token);
  } catch (err) {
    $("login-error").textContent = err.message;
  } finally {
    $("login-button").disabled = false;
  }
});

function start(user, token) {
  me = user;
  $("login").hidden = true;
  $("me").replaceChildren("signed in as ", bold(me));
  const endpoint = new URL("rt/connection/websocket", location.href);
  endpoint.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  centrifuge = new Centrifuge(endpoint.href, {
    token,
    // When the token expires, the SDK asks for a new one: log in again under the same name.
    getToken: async () => (await login(me)).token,
  });
  centrifuge.on("connecting", () => setStatus("connecting", "connecting…"));
  centrifuge.on("connected", () => setStatus("connected", "connected"));
  centrifuge.on("disconnected", (ctx) => setStatus("disconnected", "offline: " + ctx.reason));
  centrifuge.connect();
  const wanted = decodeURIComponent(location.hash.slice(1));
  enterRoom(ROOM_NAME.test(wanted) ? wanted : "lobby");
  $("message").focus();
}

// Rooms.

function enterRoom(name) {
  if (room) {
    centrifuge.removeSubscription(room.sub);
    centrifuge.removeSubscription(room.typingSub);
    room.typers.forEach((timer) => clearTimeout(timer));
  }
  if (!rooms.includes(name)) rooms.push(name);
  const current = {
    name,
    offsets: new Set(), // offsets shown: history and live publications may overlap
    online: new Map(), // client id -> user
    left: new Set(), // clients that left while presence was loading
    typers: new Map(), // user -> timer hiding their notice
  };
  room = current;
  history.replaceState(null, "", "#" + name);
  $("room-title").textContent = "#" + name;
  $("messages").replaceChildren(emptyNote());
  renderRooms();
  renderOnline();
  renderTypers();
  $("send").disabled = true;

  const sub = centrifuge.newSubscription("chat:" + name);
  current.sub = sub;
  sub.on("subscribing", () => { $("send").disabled = true; });
  sub.on("unsubscribed", () => { $("send").disabled = true; });
  sub.on("subscribed", async (ctx) => {
    $("send").disabled = false;
    try {
      // A reconnect that recovered got what it missed as publications: nothing to load.
      if (!(ctx.wasRecovering && ctx.recovered)) {
        const page = await sub.history({ limit: HISTORY_ON_JOIN, reverse: true });
        page.publications.forEach((pub) => showMessage(current, pub));
      }
      current.left.clear();
      const presence = await sub.presence();
      for (const [client, info] of Object.entries(presence.clients)) {
        if (!current.left.has(client)) current.online.set(client, info.user);
      }
      renderOnline();
    } catch (err) {
      // Left the room meanwhile, or the connection dropped: the next "subscribed" retries.
      if (room === current) console.warn("could not load the room", err);
    }
  });
  sub.on("publication", (ctx) => {
    showMessage(current, ctx);
    stopTyping(current, ctx.data.name);
  });
  sub.on("join", (ctx) => {
    current.online.set(ctx.info.client, ctx.info.user);
    if (room === current) renderOnline();
  });
  sub.on("leave", (ctx) => {
    current.online.delete(ctx.info.client);
    current.left.add(ctx.info.client);
    if (room === current) renderOnline();
  });
  sub.subscribe();

  const typingSub = centrifuge.newSubscription("typing:" + name);
  current.typingSub = typingSub;
  typingSub.on("publication", (ctx) => {
    const user = ctx.info && ctx.info.user;
    if (!user || user === me) return;
    if (ctx.data.typing) startTyping(current, user);
    else stopTyping(current, user);
  });
  typingSub.subscribe();
}

function renderRooms() {
  $("rooms").replaceChildren(...rooms.map((name) => {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = "# " + name;
    button.dataset.room = name;
    button.setAttribute("aria-current", String(room && room.name === name));
    button.addEventListener("click", () => { if (room.name !== name) enterRoom(name); });
    const item = document.createElement("li");
    item.append(button);
    return item;
  }));
}

$("new-room").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = $("new-room-name");
  const name = input.value.trim().toLowerCase();
  if (!ROOM_NAME.test(name)) {
    input.setCustomValidity("a-z, 0-9 and -, up to 24 characters");
    input.reportValidity();
    return;
  }
  input.value = "";
  enterRoom(name);
});
$("new-room-name").addEventListener("input", (event) => event.target.setCustomValidity(""));

// Messages.

function showMessage(current, pub) {
  if (room !== current || current.offsets.has(pub.offset)) return;
  current.offsets.add(pub.offset);
  const list = $("messages");
  list.querySelector(".empty")?.remove();
  const { name, text, time } = pub.data;
  const item = document.createElement("li");
  item.className = "message" + (name === me ? " mine" : "");
  item.dataset.offset = pub.offset;
  const who = document.createElement("span");
  who.className = "who";
  who.textContent = name;
  who.style.color = "hsl(" + hue(name) + " 80% 70%)";
  const body = document.createElement("span");
  body.className = "text";
  body.textContent = text;
  const stamp = document.createElement("time");
  stamp.textContent = new Date(time * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  item.append(who, body, stamp);
  // In offset order: history may arrive after newer live messages.
  const later = [...list.children].find((other) => Number(other.dataset.offset) > pub.offset);
  list.insertBefore(item, later || null);
  if (!later) list.scrollTop = list.scrollHeight;
}

function emptyNote() {
  const note = document.createElement("li");
  note.className = "empty";
  note.textContent = "No messages yet: say hello.";
  return note;
}

$("composer").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = $("message");
  const text = input.value.trim();
  if (!text || $("send").disabled) return;
  try {
    await room.sub.publish({ text });
    input.value = "";
    lastTypingSent = 0;
    room.typingSub.publish({ typing: false }).catch(() => {});
  } catch (err) {
    notice("Could not send: " + (err && err.message ? err.message : String(err)));
  }
  input.focus();
});

// Who is online: one entry per user, however many tabs they have open.

function renderOnline() {
  const users = [...new Set(room ? room.online.values() : [])].sort();
  $("online-count").textContent = users.length ? "· " + users.length : "";
  $("online").replaceChildren(...users.map((user) => {
    const item = document.createElement("li");
    item.dataset.user = user;
    item.append(user);
    if (user === me) {
      const you = document.createElement("span");
      you.className = "you";
      you.textContent = "(you)";
      item.append(you);
    }
    return item;
  }));
}

// Typing notices.

$("message").addEventListener("input", () => {
  const now = Date.now();
  if (!room || !$("message").value.trim() || now - lastTypingSent < TYPING_EVERY_MS) return;
  lastTypingSent = now;
  room.typingSub.publish({ typing: true }).catch(() => {}); // best effort
});

function startTyping(current, user) {
  clearTimeout(current.typers.get(user));
  current.typers.set(user, setTimeout(() => stopTyping(current, user), TYPING_SHOWN_MS));
  if (room === current) renderTypers();
}

function stopTyping(current, user) {
  if (!current.typers.has(user)) return;
  clearTimeout(current.typers.get(user));
  current.typers.delete(user);
  if (room === current) renderTypers();
}

function renderTypers() {
  const users = room ? [...room.typers.keys()].sort() : [];
  let text = "";
  if (users.length === 1) text = users[0] + " is typing…";
  else if (users.length === 2) text = users[0] + " and " + users[1] + " are typing…";
  else if (users.length > 2) text = users.length + " people are typing…";
  $("typing").textContent = text;
}

// Bits.

function setStatus(state, text) {
  $("status").dataset.state = state;
  $("status").textContent = text;
}

function notice(text) {
  const box = document.createElement("p");
  box.className = "notice";
  box.textContent = text;
  $("messages").before(box);
  setTimeout(() => box.remove(), 6000);
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

renderRooms();
const saved = sessionStorage.getItem("chat-name");
if (saved) {
  login(saved).then(({ token, user }) => start(user, token), () => sessionStorage.removeItem("chat-name"));
} else {
  $("login-name").focus();
}
