// The editor page, bundled by esbuild into static/build/editor.js (npm run build).
//
// The document is a Yjs Y.Text shown by CodeMirror. Loading: the server's snapshot (the
// whole document as one update, and the stream position it covers), then a subscription
// to "doc:<name>" from that position: it recovers only what came after, then goes live.
// Every local change is a Yjs update, published into the channel; while offline, changes
// pile up (merged) and go out on the next subscribe. Cursors and names are Yjs awareness
// updates, sent through "cursors:<name>"; its presence lists who is editing.
import { Centrifuge } from "centrifuge";
import { basicSetup } from "codemirror";
import { EditorView, placeholder } from "@codemirror/view";
import { fromBase64, toBase64 } from "lib0/buffer";
import { yCollab } from "y-codemirror.next";
import { Awareness, applyAwarenessUpdate, encodeAwarenessUpdate, removeAwarenessStates } from "y-protocols/awareness";
import * as Y from "yjs";

const $ = (id) => document.getElementById(id);
const REMOTE = "remote"; // the origin of changes that came from the server
const DOC_NAME = /^[a-z0-9][a-z0-9-]{0,31}$/;
const COLORS = ["#38bdf8", "#f472b6", "#34d399", "#fbbf24", "#a78bfa", "#fb923c", "#f87171", "#2dd4bf"];

const wanted = decodeURIComponent(location.hash.slice(1));
const docName = DOC_NAME.test(wanted) ? wanted : "welcome";
const ydoc = new Y.Doc();
const ytext = ydoc.getText("content");
const awareness = new Awareness(ydoc);

// What the page knows of the document's stream; exposed for the console and the tests.
const state = {
  doc: docName,
  client: null, // this connection's id
  snapshotOffset: null, // the position of the last snapshot loaded
  received: [], // offsets of the updates received since that snapshot
  recoveries: [], // {recovered}: one per resubscribe
  pending: null, // local changes not published yet, merged into one update
};
const writers = new Map(); // client id -> user name: presence of "cursors:<name>"
const yids = new Map(); // client id -> the Yjs client id of its awareness state
let centrifuge = null;
let docSub = null;
let cursorsSub = null;
let view = null;
let flushing = false;

$("doc-name").textContent = "#" + docName;
$("join-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const name = $("join-name").value.trim();
  if (!name) return;
  $("join").hidden = true;
  start(name).catch((err) => notice("Could not open the document: " + err.message));
});

async function start(name) {
  const color = COLORS[hash(name) % COLORS.length];
  awareness.setLocalStateField("user", { name, color, colorLight: color + "33" });
  view = new EditorView({
    doc: "",
    extensions: [basicSetup, EditorView.lineWrapping, placeholder("Start typing…"), theme,
                 yCollab(ytext, awareness)],
    parent: $("editor"),
  });
  window.editor.view = view;

  const endpoint = new URL("rt/connection/websocket", location.href);
  endpoint.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  // The name goes in the connect data: the server's on_connecting handler reads it.
  centrifuge = new Centrifuge(endpoint.href, { data: { name } });
  centrifuge.on("connecting", () => setStatus("connecting", "connecting…"));
  centrifuge.on("connected", (ctx) => {
    state.client = ctx.client;
    setStatus("connected", "live");
  });
  centrifuge.on("disconnected", (ctx) => {
    setStatus("disconnected", "offline" + (ctx.code ? ": " + ctx.reason : ""));
    if (ctx.code === 4501) notice(ctx.reason);
  });

  // The document: snapshot first, then what came after it, then live.
  const snapshot = await loadSnapshot();
  docSub = centrifuge.newSubscription("doc:" + docName, {
    since: { offset: snapshot.offset, epoch: snapshot.epoch },
  });
  docSub.on("publication", (ctx) => {
    state.received.push(ctx.offset);
    Y.applyUpdate(ydoc, fromBase64(ctx.data.update), REMOTE);
    showSync();
  });
  docSub.on("subscribed", async (ctx) => {
    state.recoveries.push({ recovered: ctx.recovered });
    if (ctx.wasRecovering && !ctx.recovered) {
      // Away longer than the history keeps, or the server restarted: the snapshot has
      // everything up to now; then send what this page has and the server lacks.
      try {
        const fresh = await loadSnapshot();
        queue(Y.encodeStateAsUpdate(ydoc, fromBase64(fresh.state_vector)));
      } catch (err) {
        notice("Could not reload the document: " + err.message);
      }
    }
    flush();
  });
  ydoc.on("update", (update, origin) => { if (origin !== REMOTE) queue(update); });

  // Cursors and names.
  cursorsSub = centrifuge.newSubscription("cursors:" + docName);
  awareness.on("update", ({ added, updated, removed }, origin) => {
    if (origin !== REMOTE) sendAwareness(added.concat(updated, removed));
  });
  cursorsSub.on("publication", (ctx) => {
    if (!ctx.info || ctx.info.client === state.client) return;
    yids.set(ctx.info.client, ctx.data.yid);
    applyAwarenessUpdate(awareness, fromBase64(ctx.data.awareness), REMOTE);
  });
  cursorsSub.on("subscribed", async () => {
    sendAwareness([ydoc.clientID]);
    try {
      const presence = await cursorsSub.presence();
      for (const [client, info] of Object.entries(presence.clients)) writers.set(client, info.user);
      renderWriters();
    } catch (err) {
      console.warn("no presence", err); // the next subscribe loads it again
    }
  });
  cursorsSub.on("join", (ctx) => {
    writers.set(ctx.info.client, ctx.info.user);
    renderWriters();
    if (ctx.info.client !== state.client) sendAwareness([ydoc.clientID]); // show the newcomer my cursor
  });
  cursorsSub.on("leave", (ctx) => {
    writers.delete(ctx.info.client);
    renderWriters();
    const yid = yids.get(ctx.info.client);
    if (yid !== undefined) removeAwarenessStates(awareness, [yid], REMOTE);
  });

  docSub.subscribe();
  cursorsSub.subscribe();
  centrifuge.connect();
  view.focus();
}

async function loadSnapshot() {
  const response = await fetch("docs/" + encodeURIComponent(docName));
  if (!response.ok) throw new Error("the server answered " + response.status);
  const snapshot = await response.json();
  Y.applyUpdate(ydoc, fromBase64(snapshot.update), REMOTE);
  state.snapshotOffset = snapshot.offset;
  state.received = [];
  showSync();
  return snapshot;
}

// Local changes: one publication in flight at a time; what is typed meanwhile is merged.

function queue(update) {
  state.pending = state.pending ? Y.mergeUpdates([state.pending, update]) : update;
  flush();
}

async function flush() {
  if (flushing || !state.pending || !docSub || docSub.state !== "subscribed") return;
  const update = state.pending;
  state.pending = null;
  flushing = true;
  try {
    await docSub.publish({ update: toBase64(update) });
  } catch (err) {
    if (err.code === 4000) {
      notice("The server refused a change: " + err.message);
    } else { // the connection went: send it again on the next subscribe
      state.pending = state.pending ? Y.mergeUpdates([update, state.pending]) : update;
    }
  } finally {
    flushing = false;
  }
  showSync();
  flush();
}

function sendAwareness(clients) {
  if (!cursorsSub || cursorsSub.state !== "subscribed") return;
  const awarenessUpdate = toBase64(encodeAwarenessUpdate(awareness, clients));
  cursorsSub.publish({ awareness: awarenessUpdate, yid: ydoc.clientID }).catch(() => {});
}

// "Go offline": edit alone for a while, then merge.

$("offline").addEventListener("click", () => {
  if (!centrifuge) return;
  const goingOffline = centrifuge.state !== "disconnected";
  if (goingOffline) centrifuge.disconnect();
  else centrifuge.connect();
  $("offline").textContent = goingOffline ? "Go online" : "Go offline";
  $("offline").setAttribute("aria-pressed", String(goingOffline));
  view.focus(); // back to writing
});

// Bits.

function renderWriters() {
  const users = [...new Set(writers.values())].sort();
  $("writers").replaceChildren(...users.map((user) => {
    const item = document.createElement("li");
    item.dataset.user = user;
    item.textContent = user;
    item.style.setProperty("--color", COLORS[hash(user) % COLORS.length]);
    return item;
  }));
}

function showSync() {
  const waiting = state.pending ? " · unsent changes" : "";
  $("sync").textContent = "loaded the snapshot at offset " + state.snapshotOffset + ", then "
    + state.received.length + " update" + (state.received.length === 1 ? "" : "s") + waiting;
}

function setStatus(stateName, text) {
  $("status").dataset.state = stateName;
  $("status").textContent = text;
}

function notice(text) {
  const box = document.createElement("p");
  box.className = "notice";
  box.textContent = text;
  $("editor").before(box);
  setTimeout(() => box.remove(), 8000);
}

function hash(text) {
  let h = 0;
  for (const ch of text) h = (h * 31 + ch.codePointAt(0)) >>> 0;
  return h;
}

const theme = EditorView.theme({
  "&": { color: "#e2e8f0", backgroundColor: "transparent", height: "100%", fontSize: "15px" },
  ".cm-content": { caretColor: "#38bdf8", fontFamily: "ui-monospace, SFMono-Regular, Menlo, monospace",
                   padding: "18px 0" },
  ".cm-scroller": { lineHeight: "1.6" },
  "&.cm-focused .cm-cursor": { borderLeftColor: "#38bdf8", borderLeftWidth: "2px" },
  "&.cm-focused .cm-selectionBackground, .cm-selectionBackground, ::selection": {
    backgroundColor: "#1e3a5f" },
  ".cm-gutters": { backgroundColor: "transparent", color: "#4b5b78", border: "none" },
  ".cm-activeLine": { backgroundColor: "#ffffff08" },
  ".cm-activeLineGutter": { backgroundColor: "transparent", color: "#8b9bb4" },
  ".cm-placeholder": { color: "#4b5b78" },
  // Names over the others' cursors, always (y-codemirror shows them on hover only).
  ".cm-ySelectionInfo": { opacity: 1, fontFamily: "system-ui, sans-serif", fontWeight: "600",
                          padding: "1px 4px", borderRadius: "4px 4px 4px 0", top: "-1.35em" },
}, { dark: true });

window.editor = { ydoc, ytext, awareness, state, view };
$("join-name").focus();
