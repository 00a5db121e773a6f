// The game page: it only says which way the keys point (send) and when to dash (rpc); the
// server moves everybody and publishes the state into "game:arena", which the server
// subscribed this connection to. The page draws the latest state, smoothed.
import { Centrifuge } from "centrifuge";

const $ = (id) => document.getElementById(id);
const canvas = $("arena");
const ctx2d = canvas.getContext("2d");
const KEYS = {
  ArrowUp: [0, -1], KeyW: [0, -1], ArrowDown: [0, 1], KeyS: [0, 1],
  ArrowLeft: [-1, 0], KeyA: [-1, 0], ArrowRight: [1, 0], KeyD: [1, 0],
};
const PLAYER_RADIUS = 16;
const ORB_RADIUS = 7;

// The game as the server last published it; exposed for the console and the tests.
const state = {
  me: null, // this connection's client id: the id of its player
  arena: { width: 960, height: 600, tick_rate: 20 },
  tick: 0,
  players: {}, // id -> {id, name, color, x, y, score, dashing}
  orbs: [],
  dashes: {}, // id -> dashes seen start
};
window.game = state;

const shown = new Map(); // player id -> position drawn, eased towards the server's
const held = new Set(); // key codes held down
let centrifuge = null;
let steering = [0, 0];
let dashReadyAt = 0;
let dashCooldown = 1;

$("join-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const name = $("join-name").value.trim();
  if (!name) return;
  $("join").hidden = true;
  start(name);
});

function start(name) {
  const endpoint = new URL("rt/connection/websocket", location.href);
  endpoint.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  // The name goes in the connect data: the server's on_connecting handler reads it.
  centrifuge = new Centrifuge(endpoint.href, { data: { name } });
  centrifuge.on("connecting", () => setStatus("connecting", "connecting…"));
  centrifuge.on("connected", (ctx) => {
    state.me = ctx.client;
    state.arena = ctx.data;
    setStatus("connected", "playing as " + name);
    sendSteering(true); // a reconnect joins as a new player: tell it where we head
    canvas.focus();
  });
  centrifuge.on("disconnected", (ctx) => {
    setStatus("disconnected", "offline: " + ctx.reason);
    if (ctx.code === 4501) { // the server refused the name
      $("join-error").textContent = ctx.reason;
      $("join").hidden = false;
    }
  });
  centrifuge.on("publication", (ctx) => { if (ctx.channel === "game:arena") apply(ctx.data); });
  centrifuge.connect();
}

function apply(snapshot) {
  const players = {};
  for (const player of snapshot.players) {
    const before = state.players[player.id];
    if (player.dashing && !(before && before.dashing)) {
      state.dashes[player.id] = (state.dashes[player.id] || 0) + 1;
    }
    players[player.id] = player;
  }
  state.players = players;
  state.orbs = snapshot.orbs;
  state.tick = snapshot.tick;
  $("tick").textContent = "tick " + snapshot.tick + " · " + state.arena.tick_rate + "/s";
  renderScores();
}

// Input: the direction the held keys point to, sent when it changes.

addEventListener("keydown", (event) => {
  if (!centrifuge || !$("join").hidden) return;
  if (event.code === "Space") {
    event.preventDefault();
    if (!event.repeat) dash();
  } else if (event.code in KEYS) {
    event.preventDefault();
    held.add(event.code);
    sendSteering();
  }
});
addEventListener("keyup", (event) => {
  if (held.delete(event.code)) sendSteering();
});
addEventListener("blur", () => { // keys released outside the page never send keyup
  held.clear();
  sendSteering();
});

function sendSteering(always = false) {
  let x = 0, y = 0;
  for (const code of held) { x += KEYS[code][0]; y += KEYS[code][1]; }
  x = Math.sign(x);
  y = Math.sign(y);
  if (!always && x === steering[0] && y === steering[1]) return;
  steering = [x, y];
  if (centrifuge && centrifuge.state === "connected") {
    centrifuge.send({ x, y }).catch(() => {}); // lost with the connection: resent on connect
  }
}

async function dash() {
  if (centrifuge.state !== "connected") return;
  try {
    const result = await centrifuge.rpc("dash", {});
    dashCooldown = result.data.cooldown * 1000;
    dashReadyAt = performance.now() + dashCooldown;
  } catch (err) {
    console.warn("dash failed", err);
  }
}

// Drawing: every animation frame, each player eases towards where the server put it.

function frame(now) {
  const { width, height } = state.arena;
  ctx2d.clearRect(0, 0, width, height);
  drawGrid(width, height);
  for (const [x, y] of state.orbs) drawOrb(x, y, now);
  for (const id of shown.keys()) if (!(id in state.players)) shown.delete(id);
  for (const player of Object.values(state.players)) {
    const at = shown.get(player.id) || { x: player.x, y: player.y };
    at.x += (player.x - at.x) * 0.35;
    at.y += (player.y - at.y) * 0.35;
    shown.set(player.id, at);
    drawPlayer(player, at);
  }
  drawDashMeter(now);
  requestAnimationFrame(frame);
}

function drawGrid(width, height) {
  ctx2d.strokeStyle = "#16213a";
  ctx2d.lineWidth = 1;
  ctx2d.beginPath();
  for (let x = 40; x < width; x += 40) { ctx2d.moveTo(x + 0.5, 0); ctx2d.lineTo(x + 0.5, height); }
  for (let y = 40; y < height; y += 40) { ctx2d.moveTo(0, y + 0.5); ctx2d.lineTo(width, y + 0.5); }
  ctx2d.stroke();
}

function drawOrb(x, y, now) {
  const pulse = 1 + 0.15 * Math.sin(now / 250 + x);
  ctx2d.save();
  ctx2d.shadowColor = "#fde047";
  ctx2d.shadowBlur = 14;
  ctx2d.fillStyle = "#fde047";
  ctx2d.beginPath();
  ctx2d.arc(x, y, ORB_RADIUS * pulse, 0, Math.PI * 2);
  ctx2d.fill();
  ctx2d.restore();
}

function drawPlayer(player, at) {
  const mine = player.id === state.me;
  ctx2d.save();
  ctx2d.shadowColor = player.color;
  ctx2d.shadowBlur = player.dashing ? 30 : 12;
  ctx2d.fillStyle = player.color;
  ctx2d.beginPath();
  ctx2d.arc(at.x, at.y, PLAYER_RADIUS, 0, Math.PI * 2);
  ctx2d.fill();
  ctx2d.restore();
  if (mine) {
    ctx2d.strokeStyle = "#f8fafc";
    ctx2d.lineWidth = 3;
    ctx2d.beginPath();
    ctx2d.arc(at.x, at.y, PLAYER_RADIUS + 4, 0, Math.PI * 2);
    ctx2d.stroke();
  }
  ctx2d.fillStyle = "#e2e8f0";
  ctx2d.font = (mine ? "600 " : "") + "13px system-ui, sans-serif";
  ctx2d.textAlign = "center";
  ctx2d.fillText(player.name, at.x, at.y - PLAYER_RADIUS - 10);
}

function drawDashMeter(now) {
  const left = Math.max(0, dashReadyAt - now);
  const bar = $("dash").firstElementChild;
  bar.style.width = left ? (100 * (1 - left / dashCooldown)).toFixed(0) + "%" : "100%";
  $("dash-label").textContent = left ? "dash ready in " + (left / 1000).toFixed(1) + " s" : "dash ready";
}

function renderScores() {
  const players = Object.values(state.players).sort((a, b) => b.score - a.score || a.name.localeCompare(b.name));
  const key = players.map((p) => p.id + p.score).join();
  if (key === renderScores.key) return;
  renderScores.key = key;
  $("scores").replaceChildren(...players.map((player) => {
    const item = document.createElement("li");
    item.dataset.id = player.id;
    if (player.id === state.me) item.className = "me";
    const dot = document.createElement("span");
    dot.className = "dot";
    dot.style.background = player.color;
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = player.name + (player.id === state.me ? " (you)" : "");
    const score = document.createElement("span");
    score.className = "score";
    score.textContent = player.score;
    item.append(dot, name, score);
    return item;
  }));
}

function setStatus(stateName, text) {
  $("status").dataset.state = stateName;
  $("status").textContent = text;
}

requestAnimationFrame(frame);
$("join-name").focus();
