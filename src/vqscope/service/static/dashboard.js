// vqscope dashboard: fetches /api/dashboard and draws it as inline SVG.
// No libraries and no external requests, so the page works offline and under a strict CSP.
// Where the server needs a token to read (--read-token, --private-reads), a 401 shows a small
// form; the token is kept in sessionStorage (this tab only) and sent as a Bearer header.
// Every chart element carries data-* attributes with the numbers it shows (for tests and for
// anyone inspecting the page); <title> children give hover tooltips without any script.
"use strict";
(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const GRADE_COLORS = { bad: "#c0392b", poor: "#e67e22", fair: "#d4ac0d", good: "#7cb342", excellent: "#2e7d32" };
  const SPARE_COLORS = ["#6b7280", "#0891b2", "#7c3aed", "#db2777"];
  const DIM_COLORS = ["#111827", "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2"];
  const $ = (id) => document.getElementById(id);

  function svg(name, attrs, parent, text) {
    const node = document.createElementNS(SVG, name);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (text != null) node.textContent = text;
    if (parent) parent.appendChild(node);
    return node;
  }
  function html(name, attrs, parent, text) {
    const node = document.createElement(name);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (text != null) node.textContent = text;
    if (parent) parent.appendChild(node);
    return node;
  }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }
  function fmt(v, digits) { return v == null ? "–" : Number(v).toFixed(digits == null ? 1 : digits); }
  function pct(v) { return v == null ? "–" : (100 * v).toFixed(0) + "%"; }
  function gradeColor(grade, labels) {
    if (GRADE_COLORS[grade]) return GRADE_COLORS[grade];
    const i = Math.max(0, labels.indexOf(grade));
    return SPARE_COLORS[i % SPARE_COLORS.length];
  }
  function when(ts, bucket) {
    const d = new Date(ts * 1000);
    if (bucket >= 86400) return d.toLocaleDateString([], { month: "short", day: "numeric" });
    if (bucket >= 3 * 3600) return d.toLocaleDateString([], { month: "short", day: "numeric" }) + " " +
      d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }
  function size(node) {
    const vb = node.viewBox.baseVal;
    return { w: vb.width, h: vb.height };
  }

  // A 0-100 chart over time: grid, y labels, x labels. Returns the scales.
  function timeFrame(node, t0, t1, bucket) {
    const { w, h } = size(node);
    const m = { l: 34, r: 10, t: 8, b: 24 };
    const span = Math.max(t1 - t0, 1);
    const x = (ts) => m.l + ((ts - t0) / span) * (w - m.l - m.r);
    const y = (v) => m.t + (1 - v / 100) * (h - m.t - m.b);
    for (let v = 0; v <= 100; v += 20) {
      svg("line", { class: "grid", x1: m.l, x2: w - m.r, y1: y(v), y2: y(v) }, node);
      svg("text", { class: "axis", x: m.l - 6, y: y(v) + 4, "text-anchor": "end" }, node, v);
    }
    const ticks = Math.max(2, Math.min(6, Math.floor((w - m.l - m.r) / 110)));  // labels must not overlap
    for (let i = 0; i <= ticks; i++) {
      const ts = t0 + (span * i) / ticks;
      const anchor = i === 0 ? "start" : i === ticks ? "end" : "middle";
      svg("text", { class: "axis", x: x(ts), y: h - 6, "text-anchor": anchor }, node, when(ts, bucket));
    }
    return { x, y, w, h, m };
  }
  function pathFor(points, key, x, y) {
    let d = "";
    let pen = false;
    for (const p of points) {
      if (p[key] == null) { pen = false; continue; }
      d += (pen ? "L" : "M") + x(p.ts).toFixed(1) + "," + y(p[key]).toFixed(1);
      pen = true;
    }
    return d;
  }
  function empty(node, message) {
    const { w, h } = size(node);
    svg("text", { class: "empty", x: w / 2, y: h / 2, "text-anchor": "middle" }, node, message);
  }
  function legend(container, entries) {
    clear(container);
    for (const [label, color, dashed] of entries) {
      const item = html("span", {}, container);
      const sw = html("span", { class: "swatch" }, item);
      sw.style.background = dashed ? "repeating-linear-gradient(90deg," + color + " 0 4px,transparent 4px 7px)" : color;
      item.appendChild(document.createTextNode(label));
    }
  }

  function drawSummary(data) {
    const box = $("summary");
    clear(box);
    const s = data.summary;
    const scaled = data.basis === "scaled_score";
    const tiles = [
      ["videos scored", s.done, "tile-done"],
      [scaled ? "mean scaled score" : "mean score", fmt(s.mean), "tile-mean"],
      ["share " + s.low_grades.join(" or "), pct(s.low_share), "tile-low"],
      ["failed", s.failed, "tile-failed"],
      ["queued / running", (s.queue.queued || 0) + " / " + (s.queue.running || 0), "tile-queue"],
    ];
    for (const [label, value, id] of tiles) {
      const t = html("div", { class: "tile", id }, box);
      html("div", { class: "value" }, t, value);
      html("div", { class: "label" }, t, label);
    }
    const m = data.model || {};
    let text = "model " + (m.id || "?");
    if (m.calibrated) text += " · calibrated on " + m.benchmark + " (" + m.benchmark_size + " videos)";
    $("model").textContent = text;
  }

  function drawTrend(data) {
    const node = $("trend-chart");
    clear(node);
    const pts = data.trend;
    const withData = pts.filter((p) => p.count > 0);
    node.dataset.points = String(withData.length);
    node.dataset.jobs = String(withData.reduce((a, p) => a + p.count, 0));
    const scaled = data.basis === "scaled_score";
    $("trend-hint").textContent = (scaled ? "Scaled score (percentile on the model's calibration set)" :
      "Score (0-100; the model has no calibration)") + ": median, mean, and the 10th–90th percentile band, per " +
      (data.bucket_s >= 3600 ? data.bucket_s / 3600 + " h" : data.bucket_s / 60 + " min") + ".";
    legend($("trend-legend"), [["median", "#1d4ed8"], ["mean", "#111827", true], ["p10–p90", "#93c5fd"]]
      .concat(scaled ? [["mean raw score", "#9ca3af", true]] : []));
    if (!pts.length) { empty(node, "no data"); return; }
    const t0 = pts[0].ts;
    const t1 = pts[pts.length - 1].ts + data.bucket_s;
    const f = timeFrame(node, t0, t1, data.bucket_s);
    const mid = (p) => Object.assign({}, p, { ts: p.ts + data.bucket_s / 2 });
    const centred = pts.map(mid);
    // band: one polygon per run of buckets that have data
    let run = [];
    const flush = () => {
      if (!run.length) return;
      const upper = run.map((p) => f.x(p.ts).toFixed(1) + "," + f.y(p.p90).toFixed(1));
      const lower = run.slice().reverse().map((p) => f.x(p.ts).toFixed(1) + "," + f.y(p.p10).toFixed(1));
      if (run.length === 1) {
        const p = run[0];
        svg("rect", { class: "band", x: f.x(p.ts) - 4, width: 8, y: f.y(p.p90), height: Math.max(1, f.y(p.p10) - f.y(p.p90)) }, node);
      } else {
        svg("polygon", { class: "band", points: upper.concat(lower).join(" ") }, node);
      }
      run = [];
    };
    for (const p of centred) { if (p.p10 == null) flush(); else run.push(p); }
    flush();
    if (scaled) svg("path", { class: "line-score", d: pathFor(centred, "mean_score", f.x, f.y) }, node);
    svg("path", { class: "line-p50", d: pathFor(centred, "p50", f.x, f.y) }, node);
    svg("path", { class: "line-mean", d: pathFor(centred, "mean", f.x, f.y) }, node);
    for (const p of centred) {
      if (p.mean == null) continue;
      const c = svg("circle", { class: "pt", cx: f.x(p.ts), cy: f.y(p.mean), r: 3, "data-ts": p.ts,
        "data-mean": p.mean, "data-p10": p.p10, "data-p50": p.p50, "data-p90": p.p90, "data-count": p.count }, node);
      svg("title", {}, c, when(p.ts - data.bucket_s / 2, data.bucket_s) + ": " + p.count + " videos, mean " +
        fmt(p.mean) + ", median " + fmt(p.p50) + ", p10 " + fmt(p.p10) + ", p90 " + fmt(p.p90) +
        (p.failed ? ", " + p.failed + " failed" : ""));
    }
    if (!withData.length) empty(node, "no finished videos in this window");
  }

  function drawGrades(data) {
    const node = $("grade-chart");
    clear(node);
    const { w, h } = size(node);
    const labels = data.grades.map((g) => g.grade);
    const total = data.grades.reduce((a, g) => a + g.count, 0);
    node.dataset.total = String(total);
    const max = Math.max(1, ...data.grades.map((g) => g.count));
    const m = { l: 10, r: 10, t: 18, b: 24 };
    const slot = (w - m.l - m.r) / Math.max(1, data.grades.length);
    data.grades.forEach((g, i) => {
      const bh = ((h - m.t - m.b) * g.count) / max;
      const x = m.l + i * slot + slot * 0.15;
      const rect = svg("rect", { class: "bar", x, width: slot * 0.7, y: h - m.b - bh, height: Math.max(bh, 0.5),
        fill: gradeColor(g.grade, labels), "data-grade": g.grade, "data-count": g.count }, node);
      svg("title", {}, rect, g.grade + ": " + g.count + (total ? " (" + pct(g.count / total) + ")" : ""));
      svg("text", { class: "bar-label", x: x + slot * 0.35, y: h - m.b - bh - 4 }, node, g.count);
      svg("text", { class: "axis", x: x + slot * 0.35, y: h - 6, "text-anchor": "middle" }, node, g.grade);
    });
    if (!total) empty(node, "no graded videos");
  }

  function drawDimensions(data) {
    const node = $("dimension-chart");
    clear(node);
    const names = Object.keys(data.dimensions);
    node.dataset.dimensions = names.join(",");
    const pts = data.trend;
    if (!pts.length) return;
    const t0 = pts[0].ts;
    const t1 = pts[pts.length - 1].ts + data.bucket_s;
    const f = timeFrame(node, t0, t1, data.bucket_s);
    const entries = [];
    names.forEach((name, i) => {
      const color = DIM_COLORS[i % DIM_COLORS.length];
      const series = data.dimensions[name].map((p) => Object.assign({}, p, { ts: p.ts + data.bucket_s / 2 }));
      // buckets without this dimension break the line
      const all = pts.map((p) => series.find((s) => s.ts === p.ts + data.bucket_s / 2) ||
        { ts: p.ts + data.bucket_s / 2, mean: null });
      svg("path", { class: "dim-line", d: pathFor(all, "mean", f.x, f.y), stroke: color, "data-dimension": name,
        "data-points": series.length }, node);
      for (const p of series) {
        const c = svg("circle", { class: "dim-pt", cx: f.x(p.ts), cy: f.y(p.mean), r: 2.5, fill: color,
          "data-dimension": name, "data-mean": p.mean }, node);
        svg("title", {}, c, name + ": " + fmt(p.mean) + " (" + p.count + " videos)");
      }
      entries.push([name, color]);
    });
    legend($("dimension-legend"), entries);
    if (!names.length) empty(node, "no dimension scores in this window");
  }

  function drawTimeline(cell, job, labels) {
    const node = svg("svg", { class: "timeline", viewBox: "0 0 260 26", preserveAspectRatio: "none",
      "data-clips": job.clips.length }, cell);
    const end = job.duration_s || (job.clips.length ? job.clips[job.clips.length - 1].end_s : 1) || 1;
    for (const c of job.clips) {
      const x = (260 * c.start_s) / end;
      const width = Math.max(1, (260 * (c.end_s - c.start_s)) / end - 1);
      const bh = 6 + (20 * Math.min(100, Math.max(0, c.score || 0))) / 100;  // low clips stay visible
      const r = svg("rect", { class: "clip", x, width, y: 26 - bh, height: bh, fill: gradeColor(c.grade, labels),
        "data-score": c.score, "data-start": c.start_s }, node);
      svg("title", {}, r, fmt(c.start_s) + "–" + fmt(c.end_s) + " s: " + fmt(c.score) + (c.grade ? " (" + c.grade + ")" : ""));
    }
  }

  function drawWorst(data) {
    const body = $("worst").tBodies[0];
    clear(body);
    const labels = data.grades.map((g) => g.grade);
    for (const job of data.worst) {
      const row = html("tr", { class: "worst-row", "data-job": job.id }, body);
      const name = html("td", { class: "video", title: job.description || job.video }, row);
      html("a", { href: "/api/jobs/" + encodeURIComponent(job.id) }, name, job.video);
      html("td", { class: "num" }, row, fmt(job.score));
      html("td", { class: "num" }, row, fmt(job.scaled_score, 0));
      const g = html("td", {}, row);
      const badge = html("span", { class: "badge" }, g, job.grade || "–");
      badge.style.background = gradeColor(job.grade, labels);
      html("td", {}, row, job.finished_at ? new Date(job.finished_at).toLocaleString() : "–");
      drawTimeline(html("td", {}, row), job, labels);
    }
    $("worst-empty").hidden = data.worst.length > 0;
  }

  function drawAlerts(data) {
    const rules = $("alert-rules");
    clear(rules);
    if (!data.alerts.rules.length) html("li", { class: "hint" }, rules, "No alert rules (PUT /api/alert-rules/NAME).");
    for (const r of data.alerts.rules) {
      const li = html("li", { class: "rule", "data-rule": r.name, "data-state": r.state }, rules);
      html("span", { class: "state state-" + r.state }, li, r.state);
      li.appendChild(document.createTextNode(r.name + ": " + r.metric + " " + r.op + " " + r.threshold +
        " over " + (r.window_s >= 3600 ? r.window_s / 3600 + " h" : r.window_s / 60 + " min") +
        " · now " + (r.value == null ? "no data" : fmt(r.value, 3)) + (r.count != null ? " (" + r.count + " videos)" : "")));
    }
    const events = $("alert-events");
    clear(events);
    if (!data.alerts.events.length) html("li", { class: "hint" }, events, "None yet.");
    for (const e of data.alerts.events) {
      html("li", { class: "event", "data-status": e.status }, events,
        new Date(e.at).toLocaleString() + " · " + e.message + (e.delivered ? "" : " (not delivered)"));
    }
  }

  const TOKEN_KEY = "vqscope.token";
  function storedToken() {
    try { return sessionStorage.getItem(TOKEN_KEY); } catch (e) { return null; }
  }
  function keepToken(token) {
    try {
      if (token) sessionStorage.setItem(TOKEN_KEY, token); else sessionStorage.removeItem(TOKEN_KEY);
    } catch (e) { /* storage disabled: the token lasts until the page is reloaded */ }
    memoryToken = token || null;
  }
  let memoryToken = storedToken();
  function authHeaders() {
    return memoryToken ? { Authorization: "Bearer " + memoryToken } : {};
  }
  function askForToken(message) {
    $("board").hidden = true;
    $("login").hidden = false;
    $("login-why").textContent = message;
    $("forget").hidden = true;
    $("status").textContent = message;
    document.body.dataset.error = "unauthorized";
    $("token").focus();
  }
  async function failure(response) {
    let message = "HTTP " + response.status;
    try {
      const body = await response.json();
      if (body && body.message) message += ": " + body.message;
    } catch (e) { /* not JSON: the status says enough */ }
    return new Error(message);
  }

  let timer = null;
  async function refresh() {
    if (!$("login").hidden && !memoryToken) return;  // waiting for the token: no request, no repeated 401
    const params = new URLSearchParams({ window: $("window").value });
    const tag = $("tag").value.trim();
    if (tag) params.set("tag", tag);
    history.replaceState(null, "", "?" + params.toString());
    try {
      const response = await fetch("/api/dashboard?" + params.toString(),
        { cache: "no-store", headers: authHeaders() });
      if (response.status === 401) {
        const had = Boolean(memoryToken);
        keepToken(null);
        askForToken(had ? "The token was not accepted: enter a valid read token."
          : "This server needs a token to show its data: ask its operator for a read token.");
        return;
      }
      if (!response.ok) throw await failure(response);
      const data = await response.json();
      $("login").hidden = true;
      $("board").hidden = false;
      $("forget").hidden = !memoryToken;
      drawSummary(data);
      drawTrend(data);
      drawGrades(data);
      drawDimensions(data);
      drawWorst(data);
      drawAlerts(data);
      $("status").textContent = "updated " + new Date().toLocaleTimeString();
      delete document.body.dataset.error;
      document.body.dataset.ready = String(Number(document.body.dataset.ready || 0) + 1);
    } catch (err) {
      $("status").textContent = "cannot load data: " + err.message;
      document.body.dataset.error = String(err.message);
    }
  }
  function schedule() {
    if (timer) clearInterval(timer);
    timer = $("auto").checked ? setInterval(refresh, 15000) : null;
  }

  const initial = new URLSearchParams(location.search);
  if (initial.get("window")) $("window").value = initial.get("window");
  if (initial.get("tag")) $("tag").value = initial.get("tag");
  $("window").addEventListener("change", refresh);
  $("tag").addEventListener("change", refresh);
  $("auto").addEventListener("change", schedule);
  $("login").addEventListener("submit", (event) => {
    event.preventDefault();  // no navigation: the token goes in a header, never in a URL
    const token = $("token").value.trim();
    if (!token) return;
    keepToken(token);
    $("token").value = "";
    $("status").textContent = "loading…";
    refresh();
  });
  $("forget").addEventListener("click", () => {
    keepToken(null);
    askForToken("Token forgotten: enter a token to show the data again.");
  });
  schedule();
  refresh();
})();
