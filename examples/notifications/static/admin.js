// The admin page: "something happens". The form posts to the backend (app.py), which
// publishes into each recipient's channel through wirehub's server API (cent).
const $ = (id) => document.getElementById(id);
const names = new Map(); // user id -> name

async function call(path, body) {
  const response = await fetch(path, {
    method: body === undefined ? "GET" : "POST",
    headers: { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const value = await response.json().catch(() => ({}));
  if (!response.ok) {
    const detail = typeof value.detail === "string" ? value.detail : "refused";
    throw new Error(`${detail} (${response.status})`);
  }
  return value;
}

async function init() {
  for (const { id, name } of await call("users")) {
    names.set(id, name);
    const option = new Option(`${name} (user ${id})`, id);
    $("to").add(option, $("to").options.length - 1); // before "Everyone"
  }
  $("to").value = names.keys().next().value;
  showActivity((await call("activity")).running);
}

$("compose").addEventListener("submit", async (event) => {
  event.preventDefault();
  const notification = {
    to: $("to").value,
    kind: document.querySelector("input[name=kind]:checked").value,
    title: $("title").value.trim(),
    body: $("body").value.trim(),
  };
  $("send").disabled = true;
  try {
    const { sent } = await call("notify", notification);
    const to = sent.map(({ user }) => names.get(user)).join(", ");
    result(`Sent to ${to}.`);
    log(notification, to, sent);
    $("title").value = "";
    $("body").value = "";
    $("title").focus();
  } catch (err) {
    result("Not sent: " + err.message, true);
  } finally {
    $("send").disabled = false;
  }
});

$("activity").addEventListener("click", async () => {
  const running = $("activity").dataset.running !== "true";
  try {
    showActivity((await call("activity", { running })).running);
  } catch (err) {
    result("Could not switch the activity: " + err.message, true);
  }
});

function showActivity(running) {
  $("activity").dataset.running = String(running);
  $("activity").textContent = running ? "Stop" : "Start";
}

function result(text, bad = false) {
  $("result").textContent = text;
  $("result").className = bad ? "bad" : "";
}

function log(notification, to, sent) {
  const item = document.createElement("li");
  item.className = "item";
  item.dataset.kind = notification.kind;
  const icon = document.createElement("span");
  icon.className = "icon";
  icon.textContent = { info: "ℹ", success: "✓", warning: "!", mention: "@" }[notification.kind];
  const title = document.createElement("span");
  title.className = "title";
  const whom = document.createElement("span");
  whom.className = "to";
  whom.textContent = "→ " + to;
  title.append(notification.title, whom);
  const body = document.createElement("span");
  body.className = "body";
  const offsets = sent.map(({ offset }) => "#" + offset).join(", ");
  body.textContent = `${notification.body || "(no text)"} · offset ${offsets}`;
  item.append(icon, title, body);
  $("sent").prepend(item);
}

init().catch((err) => result("The backend does not answer: " + err.message, true));
