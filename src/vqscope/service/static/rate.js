// vqscope rating page: one rater's study, task by task, against /api/rate/TOKEN.
// No libraries and no external requests, so it works offline and under the strict CSP the
// page is served with. The server keeps the task list and every answer: this page holds only
// the task on screen and, after a failed save, the answer waiting to be sent again, so a
// reload (or opening the link days later) simply asks the server where the rater is.
//
// What tests (and curious people) can read: body[data-state] = loading | task | done | error,
// body[data-position] = the task on screen, body[data-phase], body[data-form],
// body[data-step] = answer | saving | feedback | retry, body[data-locked] = "1" until the
// video(s) played through, body[data-saved] = answers saved in this page session; score
// buttons carry data-score, FineVD rows data-dimension, pairwise buttons data-choice.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const body = document.body;
  const TOKEN = decodeURIComponent(location.pathname.replace(/\/+$/, "").split("/").pop() || "");
  const API = "/api/rate/" + encodeURIComponent(TOKEN);
  const KEYS = ["1", "2", "3", "4", "5"];
  // What each FineVD row asks; 1-5 is always quality (5 = excellent, i.e. no visible problem).
  const DIMENSION_TEXT = {
    color: ["Colour", "natural colours and exposure?"],
    noise: ["Noise", "how free of grain and speckle?"],
    artifact: ["Artifacts", "how free of blocking, ringing and pixelation?"],
    blur: ["Sharpness", "how sharp (not blurred)?"],
    temporal: ["Motion", "how smooth and steady over time?"],
    overall: ["Overall", "the quality of the picture as a whole"],
  };

  let study = null; // the study part of GET /api/rate/TOKEN
  let progress = null;
  let task = null; // the task on screen
  let step = "idle"; // answer | saving | feedback | retry
  let players = []; // {video, figure, ended, maxTime, failed}
  let shownAt = 0; // performance.now() when the task appeared (watched_s counts from here)
  let pending = null; // the answer being saved: kept until the server has it
  let upcoming = null; // {progress, task} the server sent with a save; null: ask it
  let saved = 0;
  let built = false;
  let blocked = false; // autoplay refused: the rater presses Play
  let savingTimer = 0;

  // -- small helpers ----------------------------------------------------------------------
  function el(name, attrs, parent, text) {
    const node = document.createElement(name);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (text != null) node.textContent = text;
    if (parent) parent.appendChild(node);
    return node;
  }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }
  function show(node, on) { node.hidden = !on; }
  function label(k) { return (study && study.labels[k - 1]) || String(k); }
  // Elements whose own Enter/Space must not be taken over (a radio or checkbox is not one:
  // Enter there submits the FineVD form).
  function isControl(target) {
    return target instanceof Element && !!target.closest("button, summary, select, textarea, a[href], input[type=text]");
  }

  function setState(state) {
    body.dataset.state = state;
    for (const node of document.querySelectorAll("[data-show]")) show(node, node.dataset.show === state);
    if (state !== "task") stopVideos();
  }

  function fail(message, retryable) {
    $("failure-text").textContent = message;
    show($("reload"), !!retryable);
    setState("error");
    if (retryable) $("reload").focus();
  }

  // -- loading the rater's state --------------------------------------------------------------
  async function load() {
    setState("loading");
    let res;
    let data = null;
    try {
      res = await fetch(API, { cache: "no-store", credentials: "same-origin" });
      data = await res.json().catch(() => null);
    } catch (err) {
      fail("Could not reach the study server. Check your connection and try again.", true);
      return;
    }
    if (!res.ok || !data || !data.study) {
      const known = data && data.message;
      fail(known || "The study server answered with an error (HTTP " + res.status + ").", !known || res.status >= 500);
      return;
    }
    study = data.study;
    if (!built) build();
    $("study-name").textContent = study.name;
    document.title = study.name + " · vqscope";
    $("rater-name").textContent = data.rater && data.rater.name ? "Rating as " + data.rater.name : "";
    apply(data.progress, data.task);
  }

  function apply(newProgress, next) {
    progress = newProgress;
    renderProgress(next);
    if (next) showTask(next);
    else finish();
  }

  function renderProgress(current) {
    const p = progress;
    const mainTotal = p.total - p.training_total;
    const mainDone = p.done - p.training_done;
    let text;
    if (current && current.phase === "training") text = "Practice " + (p.training_done + 1) + " of " + p.training_total;
    else if (current) text = (mainDone + 1) + " of " + mainTotal;
    else text = mainDone + " of " + mainTotal + " rated";
    $("progress-text").textContent = text;
    $("progress-bar").max = Math.max(p.total, 1);
    $("progress-bar").value = p.done;
    $("progress").dataset.done = String(p.done);
    $("progress").dataset.total = String(p.total);
  }

  function finish() {
    task = null;
    step = "idle";
    body.dataset.step = step;
    body.removeAttribute("data-position");
    const mainDone = progress.done - progress.training_done;
    const closed = study.state !== "open" && progress.done < progress.total;
    body.dataset.closed = closed ? "1" : "0";
    $("done-heading").textContent = closed ? "This study is closed" : "Thank you!";
    $("done-text").textContent = closed
      ? "No more ratings are taken. The " + mainDone + " you gave are kept. Thank you for your help."
      : "You rated " + mainDone + (mainDone === 1 ? " video" : " videos") + ". Every answer is saved: you can close this page.";
    setState("done");
    $("done-heading").setAttribute("tabindex", "-1");
    $("done-heading").focus();
  }

  // -- the answer forms, built once per page from the study -----------------------------------
  function build() {
    built = true;
    const acr = $("acr-buttons");
    for (let k = 1; k <= 5; k++) {
      const b = el("button", { type: "button", class: "score s" + k, "data-score": k, "aria-keyshortcuts": String(k),
        "aria-label": k + ", " + label(k) }, acr);
      el("span", { class: "num" }, b, String(k));
      el("span", { class: "word" }, b, label(k));
      b.addEventListener("click", () => answerScore(k));
    }
    const rows = $("finevd-rows");
    for (const dim of study.dimensions.concat(["overall"])) {
      const [name, question] = DIMENSION_TEXT[dim] || [dim, ""];
      const row = el("fieldset", { class: "row" + (dim === "overall" ? " overall" : ""), "data-dimension": dim }, rows);
      const legend = el("legend", {}, row);
      el("strong", {}, legend, name);
      if (question) el("span", { class: "question" }, legend, " — " + question);
      const scale = el("div", { class: "scale" }, row);
      for (let k = 1; k <= 5; k++) {
        const opt = el("label", { class: "opt s" + k }, scale);
        const input = el("input", { type: "radio", name: "dim-" + dim, value: k, "data-score": k, "data-dimension": dim,
          "aria-label": name + ": " + k + ", " + label(k) }, opt);
        const face = el("span", { class: "face" }, opt);
        el("span", { class: "num" }, face, String(k));
        el("span", { class: "word" }, face, label(k));
        input.addEventListener("change", renderControls);
      }
    }
    const tags = $("finevd-tag-list");
    for (const d of study.distortions) {
      const opt = el("label", { class: "tag" }, tags);
      el("input", { type: "checkbox", value: d.type, "data-tag": d.type }, opt);
      el("span", {}, opt, d.text);
    }
    $("finevd-submit").addEventListener("click", submitFinevd);
    for (const b of document.querySelectorAll("#pairwise-form [data-choice]")) {
      b.addEventListener("click", () => answerPair(b.dataset.choice));
    }
  }

  function finevdValues() {
    const values = {};
    for (const row of document.querySelectorAll("#finevd-rows [data-dimension]")) {
      const checked = row.querySelector("input:checked");
      if (checked) values[row.dataset.dimension] = Number(checked.value);
    }
    return values;
  }
  function finevdMissing() {
    const values = finevdValues();
    return study.dimensions.concat(["overall"]).filter((d) => values[d] == null);
  }

  // -- a task on screen -----------------------------------------------------------------------
  function showTask(next) {
    task = next;
    step = "answer";
    pending = null;
    upcoming = null;
    blocked = false;
    body.dataset.position = String(task.position);
    body.dataset.phase = task.phase;
    body.dataset.form = task.form;
    setState("task");

    const p = progress;
    const mainTotal = p.total - p.training_total;
    const mainNumber = p.done - p.training_done + 1;
    let heading;
    let hint;
    if (task.phase === "training") {
      heading = "Practice example " + (p.training_done + 1) + " of " + p.training_total;
      hint = "This is a practice round: it does not count. Rate the example; you will then see the quality it was labelled with.";
    } else {
      heading = (task.form === "pairwise" ? "Pair " : "Video ") + mainNumber + " of " + mainTotal;
      hint = task.form === "pairwise" ? "Watch both videos, then choose the one whose picture looks better."
        : task.form === "finevd" ? "Rate each aspect of the picture, tick the problems you see, then submit."
          : "Rate the picture quality of this video.";
      if (p.training_total > 0 && p.done === p.training_total) hint = "Practice done: from here on your answers count. " + hint;
    }
    $("task-heading").textContent = heading;
    $("task-hint").textContent = hint;

    const instructions = $("instructions");
    show($("instructions-text"), !!study.instructions);
    $("instructions-text").textContent = study.instructions || "";
    instructions.open = p.done === 0;
    $("howto-keys").textContent = task.form === "pairwise"
      ? "Keyboard: 1 or ← for the first (left) video, 2 or → for the second (right)."
      : task.form === "finevd"
        ? "Keyboard: 1–5 set the focused row (or the next empty one), Tab moves, Space ticks a problem, Enter submits."
        : "Keyboard: keys 1–5 rate (1 " + label(1) + " … 5 " + label(5) + ").";

    // the form this task asks for, reset
    show($("acr-form"), task.form === "acr");
    show($("finevd-form"), task.form === "finevd");
    show($("pairwise-form"), task.form === "pairwise");
    $("acr-question").textContent = task.phase === "training" ? "How good is the picture quality of this example?"
      : "How good is the picture quality?";
    for (const b of document.querySelectorAll("[data-chosen]")) b.removeAttribute("data-chosen");
    for (const input of document.querySelectorAll("#finevd-form input")) input.checked = false;
    show($("feedback"), false);
    show($("problem"), false);
    show($("saving"), false);

    buildVideos(task.items);
    shownAt = performance.now();
    renderControls();
    $("play").focus({ preventScroll: true });
  }

  function buildVideos(items) {
    stopVideos();
    const box = $("videos");
    clear(box);
    box.classList.toggle("two", items.length === 2);
    players = items.map((item, k) => {
      const figure = el("figure", { class: "clip", "data-item": item.id }, box);
      // caption above the picture, never over it
      if (items.length === 2) el("figcaption", {}, figure, k === 0 ? "1 · first (left)" : "2 · second (right)");
      const video = el("video", {
        muted: "", playsinline: "", preload: "auto", disablepictureinpicture: "", "data-item": item.id,
        controlslist: "nodownload nofullscreen noplaybackrate noremoteplayback",
        "aria-label": items.length === 2 ? (k === 0 ? "first (left) video" : "second (right) video") : "video to rate",
      }, figure);
      video.muted = true; // a muted video may start on its own; the study is about the picture
      video.defaultMuted = true;
      video.playsInline = true;
      const player = { video, figure, ended: false, maxTime: 0, failed: false };
      video.addEventListener("timeupdate", () => {
        if (!video.seeking) player.maxTime = Math.max(player.maxTime, video.currentTime);
      });
      // No seeking ahead before the video played through once (there are no controls, but a
      // browser's context menu or an extension could still offer them).
      video.addEventListener("seeking", () => {
        if (study.full_view && !player.ended && video.currentTime > player.maxTime + 0.25) video.currentTime = player.maxTime;
      });
      video.addEventListener("ended", () => {
        player.ended = true;
        figure.dataset.ended = "1";
        renderControls();
      });
      video.addEventListener("play", renderControls);
      video.addEventListener("pause", renderControls);
      video.addEventListener("error", () => {
        player.failed = true;
        renderControls();
      });
      video.addEventListener("contextmenu", (e) => e.preventDefault());
      video.addEventListener("click", togglePlay);
      video.src = item.media;
      return player;
    });
    for (const p of players) start(p);
  }

  function start(player) {
    const promise = player.video.play();
    if (promise && promise.catch) {
      promise.catch((err) => {
        if (err && err.name === "NotAllowedError") { // autoplay refused: the Play button it is
          blocked = true;
          renderControls();
        }
      });
    }
  }

  function stopVideos() {
    for (const p of players) {
      p.video.pause();
      p.video.removeAttribute("src");
      p.video.load(); // drops the download in flight
    }
    players = [];
  }

  function togglePlay() {
    if (!players.length) return;
    blocked = false;
    if (players.some((p) => p.failed)) {
      for (const p of players) {
        p.failed = false;
        p.video.load();
        start(p);
      }
      renderControls();
      return;
    }
    if (players.some((p) => !p.video.paused && !p.video.ended)) {
      for (const p of players) p.video.pause();
      return;
    }
    const all = players.every((p) => p.video.ended);
    for (const p of players) {
      if (all) p.video.currentTime = 0;
      if (all || !p.video.ended) start(p);
    }
  }

  function watched() { return !study.full_view || (players.length > 0 && players.every((p) => p.ended)); }

  // Every control's enabled state and text, from (step, watched): one place decides.
  function renderControls() {
    if (!task) return;
    const open = step === "answer" && watched();
    body.dataset.step = step;
    body.dataset.locked = watched() ? "0" : "1";
    for (const b of document.querySelectorAll("#acr-buttons button, #pairwise-form button")) b.disabled = !open;
    for (const row of document.querySelectorAll("#finevd-rows fieldset, #finevd-tags")) row.disabled = !open;
    const missing = finevdMissing();
    $("finevd-submit").disabled = !open || missing.length > 0;
    $("finevd-missing").textContent = open && missing.length
      ? "Still to rate: " + missing.map((d) => (DIMENSION_TEXT[d] || [d])[0].toLowerCase()).join(", ") + "." : "";

    const playing = players.some((p) => !p.video.paused && !p.video.ended);
    const play = $("play");
    if (players.some((p) => p.failed)) play.textContent = "Load again";
    else if (playing) play.textContent = "Pause";
    else if (players.length && players.every((p) => p.video.ended)) play.textContent = "Replay";
    else play.textContent = "Play";

    let hint = "";
    if (players.some((p) => p.failed)) hint = "The video could not be loaded. Press “Load again”.";
    else if (!watched()) {
      hint = (players.length === 2 ? "The buttons unlock when both videos have played to the end."
        : "The buttons unlock when the video has played to the end.");
      if (blocked) hint = "Press Play to start. " + hint;
    } else if (step === "answer" && study.full_view) hint = "You can answer now.";
    if ($("lock-hint").textContent !== hint) $("lock-hint").textContent = hint;
  }

  function nudge() {
    const hint = $("lock-hint");
    hint.classList.remove("nudge");
    void hint.offsetWidth; // restart the animation
    hint.classList.add("nudge");
  }

  // -- answering ------------------------------------------------------------------------------
  function answerScore(k) {
    if (step !== "answer" || !watched() || !task || task.form !== "acr") return;
    const chosen = document.querySelector('#acr-buttons [data-score="' + k + '"]');
    if (chosen) chosen.dataset.chosen = "1";
    submit({ score: k }, k + " (" + label(k) + ")");
  }

  function answerPair(choice) {
    if (step !== "answer" || !watched() || !task || task.form !== "pairwise") return;
    document.querySelector('#pairwise-form [data-choice="' + choice + '"]').dataset.chosen = "1";
    submit({ preferred: choice }, choice);
  }

  function submitFinevd() {
    if (step !== "answer" || !watched() || !task || task.form !== "finevd" || finevdMissing().length) return;
    const values = finevdValues();
    const dimensions = {};
    for (const d of study.dimensions) dimensions[d] = values[d];
    const tags = Array.from(document.querySelectorAll("#finevd-tag-list input:checked"), (i) => i.value);
    submit({ score: values.overall, dimensions, tags }, String(values.overall));
  }

  function submit(answer, chosen) {
    const seconds = Math.min((performance.now() - shownAt) / 1000, 86400);
    pending = {
      position: task.position, phase: task.phase, chosen, score: answer.score,
      label: task.items[0] && task.items[0].label,
      body: Object.assign({}, answer, { watched_s: Math.round(seconds * 100) / 100 }),
    };
    send();
  }

  async function send() {
    step = "saving";
    show($("problem"), false);
    clearTimeout(savingTimer); // "Saving…" only where a save takes long enough to notice
    savingTimer = setTimeout(() => show($("saving"), step === "saving"), 400);
    renderControls();
    let res;
    let data = null;
    try {
      res = await fetch(API + "/tasks/" + pending.position, {
        method: "POST", cache: "no-store", credentials: "same-origin",
        headers: { "Content-Type": "application/json" }, body: JSON.stringify(pending.body),
      });
      data = await res.json().catch(() => null);
    } catch (err) {
      problem("Your answer could not be sent: the study server did not answer. It is kept here: try again.");
      return;
    }
    clearTimeout(savingTimer);
    show($("saving"), false);
    const kind = data && data.error;
    if (res.status === 201 && data) {
      saved += 1;
      body.dataset.saved = String(saved);
      saved_(data.progress, data.task);
    } else if (res.status === 409 && kind === "duplicate_rating") {
      // An earlier try reached the server but its reply was lost: the answer is stored.
      saved += 1;
      body.dataset.saved = String(saved);
      saved_(null, null);
    } else if (kind === "study_closed" || kind === "out_of_order") {
      load(); // the server says where the rater stands
    } else if (res.status === 422) {
      step = "answer"; // bad_rating: let the rater answer again (the page should never send one)
      problem(data.message || "The answer was not accepted.", false);
    } else if (res.status >= 500 || !data) {
      problem("The study server could not save your answer (HTTP " + res.status + "). It is kept here: try again.");
    } else {
      fail(data.message || "The answer was refused (HTTP " + res.status + ").", false);
    }
  }

  // A save went through: training answers get their label as feedback, then the next task.
  function saved_(newProgress, next) {
    upcoming = newProgress ? { progress: newProgress, task: next } : null;
    if (pending && pending.phase === "training" && pending.label) {
      step = "feedback";
      renderControls();
      const text = "This example was labelled: " + pending.label + ". You chose " + pending.chosen + ".";
      const match = study.labels.indexOf(pending.label) + 1 === pending.score;
      $("feedback-text").textContent = text + (match ? " Spot on." : "");
      $("feedback").dataset.label = pending.label;
      show($("feedback"), true);
      $("continue").focus();
      return;
    }
    advance();
  }

  function advance() {
    const next = upcoming;
    upcoming = null;
    pending = null;
    if (next) apply(next.progress, next.task);
    else load();
  }

  function problem(message, retry) {
    clearTimeout(savingTimer);
    show($("saving"), false);
    if (retry !== false) step = "retry";
    $("problem-text").textContent = message;
    show($("retry"), retry !== false);
    show($("problem"), true);
    renderControls();
    if (retry !== false) $("retry").focus();
  }

  // -- keyboard ---------------------------------------------------------------------------------
  function rowOf(target) {
    const row = target instanceof Element ? target.closest("#finevd-rows [data-dimension]") : null;
    return row ? row.dataset.dimension : null;
  }

  function setRow(k, target) {
    const order = study.dimensions.concat(["overall"]);
    const values = finevdValues();
    const dim = rowOf(target) || order.find((d) => values[d] == null) || "overall";
    const input = document.querySelector('#finevd-rows input[data-dimension="' + dim + '"][data-score="' + k + '"]');
    input.checked = true;
    renderControls();
    // on to the next row still empty after this one (or the problem list when all are set)
    const after = order.slice(order.indexOf(dim) + 1).concat(order.slice(0, order.indexOf(dim)));
    const now = finevdValues();
    const next = after.find((d) => now[d] == null);
    const focus = next
      ? document.querySelector('#finevd-rows input[data-dimension="' + next + '"]')
      : document.querySelector("#finevd-tag-list input");
    if (focus) focus.focus();
  }

  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey || body.dataset.state !== "task" || !task) return;
    const key = e.key;
    if (step === "feedback") {
      if ((key === "Enter" || key === " ") && !isControl(e.target)) {
        e.preventDefault();
        advance();
      }
      return;
    }
    if (step !== "answer" || e.repeat) return;
    if (task.form === "pairwise") {
      const choice = key === "1" || key === "ArrowLeft" ? "first" : key === "2" || key === "ArrowRight" ? "second" : null;
      if (!choice) return;
      e.preventDefault();
      if (!watched()) nudge();
      else answerPair(choice);
      return;
    }
    const k = KEYS.indexOf(key) + 1;
    if (task.form === "finevd") {
      if (k) {
        e.preventDefault();
        if (!watched()) nudge();
        else setRow(k, e.target);
      } else if (key === "Enter" && !isControl(e.target) && watched() && !finevdMissing().length) {
        e.preventDefault();
        submitFinevd();
      }
      return;
    }
    if (k) {
      e.preventDefault();
      if (!watched()) nudge();
      else answerScore(k);
    }
  });

  $("play").addEventListener("click", togglePlay);
  $("continue").addEventListener("click", () => { if (step === "feedback") advance(); });
  $("retry").addEventListener("click", () => { if (pending && step === "retry") send(); });
  $("reload").addEventListener("click", load);
  load();
})();
