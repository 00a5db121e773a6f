// The dashboard page: two channels with history, drawn with uPlot. Each publication has a
// `seq`; a Stream accepts them in order and records any gap, so the page (and its test)
// can see that a reconnect recovered exactly what was missed.
import { Centrifuge } from "centrifuge";
import uPlot from "uplot";

const $ = (id) => document.getElementById(id);
const WINDOW = 300; // points on each chart: a minute at 5 publications a second
const DROP_MS = 3000; // how long "Simulate a network drop" stays offline

// One channel's publications, in seq order.
class Stream {
  constructor(channel) {
    this.channel = channel;
    this.first = null;
    this.last = null;
    this.count = 0;
    this.gaps = []; // {after, next}: publications that never arrived
    this.resets = 0; // times the page started over from history
  }

  accept(data) {
    if (this.last !== null && data.seq <= this.last) return false; // seen already
    if (this.last !== null && data.seq !== this.last + 1) {
      this.gaps.push({ after: this.last, next: data.seq });
    }
    if (this.first === null) this.first = data.seq;
    this.last = data.seq;
    this.count += 1;
    return true;
  }

  reset() {
    this.first = this.last = null;
    this.resets += 1;
  }
}

const streams = { system: new Stream("metrics:system"), orderbook: new Stream("metrics:orderbook") };
const recoveries = []; // {channel, recovered, caughtUp}: one per resubscribe after a drop

// Charts.

const palette = { cpu: "#38bdf8", memory: "#a78bfa", rx: "#34d399", tx: "#fbbf24",
                  mid: "#e2e8f0", bid: "#34d399", ask: "#f87171" };
const axis = { stroke: "#8b9bb4", grid: { stroke: "#1f2d4a", width: 1 },
               ticks: { stroke: "#1f2d4a", width: 1 }, font: "11px system-ui" };

function chart(id, series, { height = 150, x = {}, y = {}, legend = false, paths } = {}) {
  const target = $(id);
  const plot = new uPlot({
    width: target.clientWidth || 300,
    height,
    legend: { show: legend },
    cursor: { show: legend, points: { show: false } },
    scales: { x: { time: x.time !== false }, y: { range: y.range } },
    axes: [{ ...axis, ...x.axis }, { ...axis, size: 54, ...y.axis }],
    series: [{}, ...series.map((s) => ({ width: 2, points: { show: false }, paths, ...s }))],
  }, [[], ...series.map(() => [])], target);
  new ResizeObserver(() => plot.setSize({ width: target.clientWidth, height })).observe(target);
  return plot;
}

const fill = (color) => color + "22";
const charts = {
  cpu: chart("cpu-chart", [{ label: "CPU %", stroke: palette.cpu, fill: fill(palette.cpu) }],
             { y: { range: [0, 100] } }),
  memory: chart("memory-chart", [{ label: "used %", stroke: palette.memory, fill: fill(palette.memory) }],
                { y: { range: [0, 100] } }),
  net: chart("net-chart", [{ label: "in KB/s", stroke: palette.rx }, { label: "out KB/s", stroke: palette.tx }],
             { legend: true }),
  price: chart("price-chart", [
    { label: "bid", stroke: palette.bid, width: 1, dash: [4, 4] },
    { label: "mid", stroke: palette.mid },
    { label: "ask", stroke: palette.ask, width: 1, dash: [4, 4] },
  ], { height: 250, legend: true, y: { axis: { values: (u, ticks) => ticks.map((t) => t.toFixed(2)) } } }),
  depth: chart("depth-chart", [
    { label: "bids", stroke: palette.bid, fill: fill(palette.bid) },
    { label: "asks", stroke: palette.ask, fill: fill(palette.ask) },
  ], { height: 120, x: { time: false, axis: { values: (u, ticks) => ticks.map((t) => t.toFixed(2)) } },
       paths: uPlot.paths.stepped({ align: 1 }) }),
};

// Chart data: columns of the last WINDOW points, drawn once per animation frame.
const series = {
  cpu: [[], []], memory: [[], []], net: [[], [], []], price: [[], [], [], []],
};
const dirty = new Map(); // chart name -> data to draw
let frame = 0;

function push(name, values) {
  const columns = series[name];
  values.forEach((value, i) => columns[i].push(value));
  if (columns[0].length > WINDOW) columns.forEach((column) => column.splice(0, column.length - WINDOW));
  redraw(name, columns);
}

function redraw(name, data) {
  dirty.set(name, data);
  frame ||= requestAnimationFrame(() => {
    frame = 0;
    for (const [chartName, chartData] of dirty) charts[chartName].setData(chartData);
    dirty.clear();
  });
}

function clearSeries(names) {
  for (const name of names) series[name].forEach((column) => { column.length = 0; });
}

// What each channel's publications do to the page.

function drawSystem({ time, cpu, memory, net }) {
  push("cpu", [time, cpu]);
  $("cpu-value").textContent = cpu === null ? "–" : cpu.toFixed(1) + " %";
  const usedPercent = memory ? (100 * memory.used) / memory.total : null;
  push("memory", [time, usedPercent]);
  $("memory-value").replaceChildren(memory ? gigabytes(memory.used) + " " : "n/a",
                                    small(memory ? "of " + gigabytes(memory.total) : ""));
  push("net", [time, net ? net.rx / 1024 : null, net ? net.tx / 1024 : null]);
  $("net-value").replaceChildren(net ? "↓ " + rate(net.rx) + "  ↑ " + rate(net.tx) : "n/a");
  $("system-seq").textContent = streams.system.last;
}

function drawOrderBook({ time, mid, bids, asks }) {
  push("price", [time, bids[0][0], mid, asks[0][0]]);
  $("price-value").replaceChildren(mid.toFixed(2) + " ",
                                   small("spread " + (asks[0][0] - bids[0][0]).toFixed(2)));
  // Depth: cumulative size on each side of the book, prices ascending.
  const x = [], bidDepth = [], askDepth = [];
  let total = 0;
  const cumBids = bids.map(([price, size]) => [price, (total += size)]).reverse();
  total = 0;
  const cumAsks = asks.map(([price, size]) => [price, (total += size)]);
  for (const [price, depth] of cumBids) { x.push(price); bidDepth.push(depth); askDepth.push(null); }
  for (const [price, depth] of cumAsks) { x.push(price); bidDepth.push(null); askDepth.push(depth); }
  redraw("depth", [x, bidDepth, askDepth]);
  ladder($("bids"), bids.slice(0, 8), "bid");
  ladder($("asks"), asks.slice(0, 8), "ask");
  $("orderbook-seq").textContent = streams.orderbook.last;
}

function ladder(body, levels, side) {
  const biggest = Math.max(...levels.map(([, size]) => size));
  body.replaceChildren(...levels.map(([price, size]) => {
    const row = document.createElement("tr");
    const priceCell = document.createElement("td");
    priceCell.className = side;
    priceCell.textContent = price.toFixed(2);
    const sizeCell = document.createElement("td");
    const bar = document.createElement("span");
    bar.className = "bar";
    bar.style.width = ((100 * size) / biggest).toFixed(0) + "%";
    sizeCell.append(bar, size.toFixed(1));
    row.append(...(side === "bid" ? [sizeCell, priceCell] : [priceCell, sizeCell]));
    return row;
  }));
}

// The connection.

const endpoint = new URL("rt/connection/websocket", location.href);
endpoint.protocol = location.protocol === "https:" ? "wss:" : "ws:";
const centrifuge = new Centrifuge(endpoint.href);
centrifuge.on("connecting", (ctx) => setStatus("connecting", ctx.reason === "connect called"
  ? "connecting…" : "reconnecting… (" + ctx.reason + ")"));
centrifuge.on("connected", () => setStatus("connected", "live"));
centrifuge.on("disconnected", (ctx) => setStatus("disconnected", "offline: " + ctx.reason));

follow(streams.system, drawSystem, ["cpu", "memory", "net"]);
follow(streams.orderbook, drawOrderBook, ["price"]);
centrifuge.connect();

function follow(stream, draw, chartNames) {
  const sub = centrifuge.newSubscription(stream.channel);
  let held = null; // live publications that arrive while the history loads
  const take = (data) => { if (stream.accept(data)) draw(data); };
  sub.on("publication", (ctx) => (held ? held.push(ctx.data) : take(ctx.data)));
  sub.on("subscribed", async (ctx) => {
    if (ctx.wasRecovering) {
      const recovery = { channel: stream.channel, recovered: ctx.recovered, caughtUp: 0 };
      recoveries.push(recovery);
      if (ctx.recovered) {
        // The missed publications are delivered right after this event, in order.
        const before = stream.last;
        setTimeout(() => { recovery.caughtUp = stream.last - before; showCatchUp(); }, 0);
        return;
      }
    }
    // A first subscribe, or offline for longer than the history keeps: start over from
    // the last minute of history, then carry on with the live publications.
    held = [];
    try {
      const page = await sub.history({ limit: WINDOW, reverse: true });
      if (stream.last !== null) {
        stream.reset();
        clearSeries(chartNames);
      }
      page.publications.reverse().forEach((pub) => take(pub.data));
    } catch (err) {
      console.warn("could not load the history of " + stream.channel, err);
    } finally {
      const live = held;
      held = null;
      live.forEach(take);
    }
    $("gaps").textContent = streams.system.gaps.length + streams.orderbook.gaps.length;
  });
  sub.subscribe();
}

$("drop").addEventListener("click", () => {
  $("drop").disabled = true;
  centrifuge.disconnect();
  setStatus("disconnected", "offline for " + DROP_MS / 1000 + " s (simulated)");
  setTimeout(() => {
    centrifuge.connect();
    $("drop").disabled = false;
  }, DROP_MS);
});

function showCatchUp() {
  const last = recoveries.slice(-2);
  const missed = last.reduce((sum, recovery) => sum + recovery.caughtUp, 0);
  $("catch-up").textContent = "caught up after the last drop: " + missed + " missed publications recovered";
  $("gaps").textContent = streams.system.gaps.length + streams.orderbook.gaps.length;
}

// Bits.

function setStatus(state, text) {
  $("status").dataset.state = state;
  $("status").textContent = text;
}

function small(text) {
  const element = document.createElement("small");
  element.textContent = text;
  return element;
}

function gigabytes(bytes) {
  return (bytes / 2 ** 30).toFixed(1) + " GB";
}

function rate(bytesPerSecond) {
  const kb = bytesPerSecond / 1024;
  return kb >= 1024 ? (kb / 1024).toFixed(1) + " MB/s" : kb.toFixed(0) + " KB/s";
}

// For the console and the tests: the page's state.
window.dashboard = { streams, recoveries, charts, series, centrifuge };
