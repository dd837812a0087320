// vqscope dashboard: fetches /api/dashboard and draws it as inline SVG.
// No libraries and no external requests, so the page works offline and under a strict CSP.
// Where the server needs a token to read (--read-token, --private-reads), a 401 shows a small
// form; the token is kept in sessionStorage (this tab only) and sent as a Bearer header.
// Every chart element carries data-* attributes with the numbers it shows (for tests and for
// anyone inspecting the page); <title> children give hover tooltips without any script.
// Times are shown in UTC everywhere on the page (the axes say so): the server's buckets are
// aligned to UTC, so a 1 h or 1 day bucket starts on a tick, whatever the browser's time zone.
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
  const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
  const two = (n) => String(n).padStart(2, "0");
  function utcDay(ts) {
    const d = new Date(ts * 1000);
    return MONTHS[d.getUTCMonth()] + " " + d.getUTCDate();
  }
  function utcClock(ts, seconds) {
    const d = new Date(ts * 1000);
    return two(d.getUTCHours()) + ":" + two(d.getUTCMinutes()) + (seconds ? ":" + two(d.getUTCSeconds()) : "");
  }
  // "Jan 5 14:30 UTC" (or without the time for day buckets): tooltips, tables, notifications
  function when(ts, bucket) {
    return utcDay(ts) + (bucket >= 86400 ? "" : " " + utcClock(ts)) + " UTC";
  }
  function whenIso(text) { return text ? when(Date.parse(text) / 1000, 0) : "–"; }

  // Time axis ticks: the smallest round step that puts at most `maxTicks` ticks on the axis,
  // every tick a multiple of the step since the epoch, so on round UTC times: on the hour for
  // steps of hours, at midnight for steps of days, on Mondays for weeks.
  const MIN = 60, HOUR = 3600, DAY = 86400;
  const STEPS = [MIN, 2 * MIN, 5 * MIN, 10 * MIN, 15 * MIN, 30 * MIN, HOUR, 2 * HOUR, 3 * HOUR, 4 * HOUR, 6 * HOUR,
    12 * HOUR, DAY, 2 * DAY, 3 * DAY, 7 * DAY, 14 * DAY];
  const MONDAY = 4 * DAY;  // 1970-01-01 was a Thursday
  function tickStep(span, maxTicks) {
    for (const step of STEPS) if (span / step <= maxTicks) return step;
    return STEPS[STEPS.length - 1];
  }
  function timeTicks(t0, t1, step) {
    const offset = step % (7 * DAY) === 0 ? MONDAY : 0;
    const out = [];
    for (let t = Math.ceil((t0 - offset) / step) * step + offset; t <= t1; t += step) out.push(t);
    return out;
  }
  // a tick's label: the time of day, or the date at midnight and for steps of days
  function tickLabel(ts, step) {
    return step >= DAY || ts % DAY === 0 ? utcDay(ts) : utcClock(ts);
  }
  function size(node) {
    const vb = node.viewBox.baseVal;
    return { w: vb.width, h: vb.height };
  }

  // A 0-100 chart over time: grid, y labels, x ticks on round UTC times. Returns the scales.
  function timeFrame(node, t0, t1) {
    const { w, h } = size(node);
    const m = { l: 34, r: 10, t: 8, b: 24 };
    const span = Math.max(t1 - t0, 1);
    const x = (ts) => m.l + ((ts - t0) / span) * (w - m.l - m.r);
    const y = (v) => m.t + (1 - v / 100) * (h - m.t - m.b);
    for (let v = 0; v <= 100; v += 20) {
      svg("line", { class: "grid", x1: m.l, x2: w - m.r, y1: y(v), y2: y(v) }, node);
      svg("text", { class: "axis", x: m.l - 6, y: y(v) + 4, "text-anchor": "end" }, node, v);
    }
    // at most one tick per 40 px (labels are about 30 px wide), and never more than 12
    const step = tickStep(span, Math.min(12, (w - m.l - m.r) / 40));
    node.dataset.tickStep = String(step);
    const spacing = x(t0 + step) - x(t0);
    for (const ts of timeTicks(t0, t1, step)) {
      const label = tickLabel(ts, step);
      const half = label.length * 3.2;  // about half the label's width at 11 px
      const at = x(ts);
      const anchor = at - half < m.l - 4 ? "start" : at + half > w - 2 ? "end" : "middle";
      svg("line", { class: "tick-line", x1: at, x2: at, y1: m.t, y2: h - m.b + 3 }, node);
      // a label pushed inwards at an edge must not run into its neighbour's: then the tick stays unlabelled
      if (anchor !== "middle" && spacing < 3 * half + 6) continue;
      const day = step < DAY && ts % DAY === 0;  // midnight among hours: the date, in bold
      svg("text", { class: "axis tick" + (day ? " tick-day" : ""), x: at, y: h - 6, "text-anchor": anchor,
        "data-ts": ts }, node, label);
    }
    svg("text", { class: "axis tz", x: m.l - 6, y: h - 6, "text-anchor": "end" }, node, "UTC");
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
    // the server names the set with its size once (dashboard.py, calibration_set)
    text += m.calibrated ? " · calibrated on " + (m.calibration_set || m.benchmark) : " · not calibrated";
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
    const what = scaled ? "Scaled score (percentile on the model's calibration set)"
      : (data.model || {}).calibrated ? "Score (0-100)" : "Score (0-100; the model has no calibration)";
    $("trend-hint").textContent = what + ": median, mean, and the 10th–90th percentile band, per " +
      (data.bucket_s >= 3600 ? data.bucket_s / 3600 + " h" : data.bucket_s / 60 + " min") + "; times in UTC.";
    legend($("trend-legend"), [["median", "#1d4ed8"], ["mean", "#111827", true], ["p10–p90", "#93c5fd"]]
      .concat(scaled ? [["mean raw score", "#9ca3af", true]] : []));
    if (!pts.length) { empty(node, "no data"); return; }
    const t0 = pts[0].ts;
    const t1 = pts[pts.length - 1].ts + data.bucket_s;
    const f = timeFrame(node, t0, t1);
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
    const f = timeFrame(node, t0, t1);
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
      html("td", { class: "when" }, row, whenIso(job.finished_at));
      drawTimeline(html("td", {}, row), job, labels);
    }
    $("worst-empty").hidden = data.worst.length > 0;
  }

  function drawFailed(data) {
    const body = $("failed").tBodies[0];
    clear(body);
    const failed = data.failed || [];
    for (const job of failed) {
      const row = html("tr", { class: "failed-row", "data-job": job.id, "data-error": job.error || "" }, body);
      const name = html("td", { class: "video", title: job.video }, row);
      html("a", { href: "/api/jobs/" + encodeURIComponent(job.id) }, name, job.video);
      html("td", { class: "when" }, row, whenIso(job.finished_at));
      html("td", { class: "kind" }, row, job.error || "–");
      html("td", { class: "message", title: job.message || "" }, row, job.message || "–");
    }
    const total = data.summary.failed;
    $("failed-hint").textContent = !total ? "" : failed.length < total
      ? "The " + failed.length + " most recent of " + total + " failed jobs in this window (all: GET /api/jobs?state=failed)."
      : total + " failed " + (total === 1 ? "job" : "jobs") + " in this window, most recent first.";
    $("failed").hidden = !failed.length;
    $("failed-empty").hidden = failed.length > 0;
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
        whenIso(e.at) + " · " + e.message + (e.delivered ? "" : " (not delivered)"));
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
      drawFailed(data);
      drawAlerts(data);
      $("status").textContent = "updated " + utcClock(Date.now() / 1000, true) + " UTC";
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
