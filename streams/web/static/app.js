// StreamVision dashboard: plain browser JavaScript, no build step.
// Live results and alerts arrive over server-sent events (/api/stream); the rest is polled from the
// JSON API. Every value from the server is inserted as text (never as HTML).
"use strict";

const MAX_RESULTS = 24;
const MAX_POINTS = 240;
const COLORS = ["#4fb3ff", "#f0b43c", "#3ccf7a", "#f2545b", "#b28cff", "#ff8fd0", "#7de0e6", "#c9d36a"];
const DRIFT_METRICS = new Set([
  "class_psi", "confidence_ks", "entropy_shift", "brightness_psi", "contrast_psi",
  "sharpness_psi", "resolution_psi", "embedding_mmd",
]);

const $ = (id) => document.getElementById(id);
const state = {
  results: new Map(),   // event_id -> card element (live list)
  uploads: new Map(),   // event_id -> {card, done}
  drift: new Map(),     // series id -> {latest, metrics: Map(metric -> [[t, v], ...])}
  alerts: new Map(),    // alert id -> alert
  frames: new Map(),    // source id -> {figure, eventId}: the latest stored (redacted) frame per camera
  received: 0,
};

// --- small helpers -------------------------------------------------------------------------------
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function fmt(value, digits = 1) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  return typeof value === "number" ? value.toFixed(digits) : String(value);
}

function ago(ms) {
  if (!ms) return "–";
  const s = Math.max(0, (Date.now() - ms) / 1000);
  return s < 60 ? `${s.toFixed(0)}s ago` : s < 3600 ? `${(s / 60).toFixed(0)}m ago` : `${(s / 3600).toFixed(1)}h ago`;
}

function authHeaders() {
  const token = $("api-token").value || sessionStorage.getItem("sv-token") || "";
  return token ? { Authorization: `Bearer ${token}` } : {};
}

// --- sign-in (auth on): the key goes into an HttpOnly session cookie, which EventSource and <img> send.
// A key may come in the URL fragment (#key=...), which never reaches a server or a log.
async function signIn(key) {
  if (!key) return false;
  const response = await fetch("/api/session", { method: "POST", headers: { Authorization: `Bearer ${key}` } });
  const body = await response.json().catch(() => ({}));
  $("upload-status").textContent = response.ok
    ? `Signed in as ${body.principal?.name ?? "?"} (${(body.principal?.scopes || []).join(", ")})`
    : `Sign-in failed (${response.status}): ${body.error || response.statusText}`;
  return response.ok;
}

async function startSession() {
  const fromFragment = new URLSearchParams(location.hash.slice(1)).get("key");
  if (fromFragment) {
    sessionStorage.setItem("sv-token", fromFragment);
    history.replaceState(null, "", location.pathname + location.search);
  }
  $("api-token").value = sessionStorage.getItem("sv-token") || "";
  const { body } = await getJSON("/api/session").catch(() => ({ body: null }));
  if (!body?.auth) return;
  if (!body.principal && !(await signIn($("api-token").value))) {
    $("upload-status").textContent = "This server needs an API key: enter it in the API token field.";
  }
  $("api-token").addEventListener("change", () => {
    sessionStorage.setItem("sv-token", $("api-token").value);
    signIn($("api-token").value);
  });
}

async function getJSON(url) {
  const response = await fetch(url, { headers: { Accept: "application/json" } });
  let body = null;
  try { body = await response.json(); } catch (_) { /* not JSON */ }
  return { status: response.status, body };
}

// --- results -------------------------------------------------------------------------------------
// The redacted frame kept in the object store (never the original), else the uploaded image.
function frameUrl(result) {
  if (result.stored_images && result.stored_images.stored) {
    return `/api/frames/${encodeURIComponent(result.source_id)}/${encodeURIComponent(result.event_id)}`;
  }
  return result.source_type === "UPLOAD" ? `/api/results/${encodeURIComponent(result.event_id)}/image` : null;
}

function drawThumbnail(canvas, result, url) {
  const image = new Image();
  image.onload = () => {
    const scale = Math.min(1, 480 / image.naturalWidth);
    canvas.width = Math.round(image.naturalWidth * scale);
    canvas.height = Math.round(image.naturalHeight * scale);
    const ctx = canvas.getContext("2d");
    ctx.drawImage(image, 0, 0, canvas.width, canvas.height);
    const stats = result.image_stats || {};
    const sx = canvas.width / (stats.width || image.naturalWidth);
    const sy = canvas.height / (stats.height || image.naturalHeight);
    ctx.lineWidth = 2;
    ctx.font = "12px sans-serif";
    (result.predictions || []).forEach((p, i) => {
      if (!p.box) return;
      const color = COLORS[i % COLORS.length];
      const x = p.box.x1 * sx, y = p.box.y1 * sy;
      ctx.strokeStyle = color;
      ctx.strokeRect(x, y, (p.box.x2 - p.box.x1) * sx, (p.box.y2 - p.box.y1) * sy);
      const text = `${p.label} ${(p.score * 100).toFixed(0)}%`;
      ctx.fillStyle = color;
      ctx.fillRect(x, Math.max(0, y - 14), ctx.measureText(text).width + 6, 14);
      ctx.fillStyle = "#000";
      ctx.fillText(text, x + 3, Math.max(11, y - 3));
    });
    canvas.hidden = false;
  };
  image.onerror = () => canvas.remove();
  image.src = url;
}

function resultCard(result) {
  const model = result.model || {};
  const card = el("div", { class: "card result", dataset: { eventId: result.event_id, source: result.source_id } });
  card.append(el("div", { class: "head" },
    el("strong", {}, result.source_id),
    el("span", {},
      result.cached ? el("span", { class: "badge cached" }, "cached") : null, " ",
      el("span", { class: `badge ${model.variant || ""}` }, model.variant || "?"))));
  card.append(el("div", { class: "meta" },
    `${model.name || "?"} v${model.version || "?"} · ${fmt(result.timings && result.timings.total_ms, 0)} ms`
    + ` · batch ${result.batch_size || 1}`));
  const url = frameUrl(result);
  if (url) {
    const canvas = el("canvas", { class: "thumb" });
    canvas.hidden = true;
    card.append(canvas);
    drawThumbnail(canvas, result, url);
  }
  const kept = result.stored_images;
  if (kept) {
    card.append(el("div", { class: kept.stored ? "meta redacted" : "meta not-stored" }, kept.stored
      ? `redacted ${kept.regions} × ${(kept.redacted_labels || []).join(", ")}`
      : `frame not stored: ${kept.error || "?"}`));
  }
  const preds = (result.predictions || []).slice(0, 3);
  if (!preds.length) card.append(el("div", { class: "meta" }, "no predictions"));
  for (const p of preds) {
    const bar = el("div", { class: "bar" }, el("span"));
    bar.firstChild.style.width = `${Math.max(0, Math.min(1, p.score)) * 100}%`;
    card.append(el("div", { class: "pred" }, el("span", { class: "label" }, p.label),
      el("span", { class: "score" }, `${(p.score * 100).toFixed(1)}%`), bar));
  }
  const stats = result.image_stats || {};
  card.append(el("div", { class: "meta" }, `${stats.width ?? "?"}×${stats.height ?? "?"} px · brightness `
    + `${fmt(stats.brightness, 2)} · event ${result.event_id.slice(0, 10)}…`));
  return card;
}

function showResult(result) {
  state.received += 1;
  $("results-count").textContent = `(${state.received} received)`;
  const list = $("results");
  list.querySelector(".empty")?.remove();
  if (!state.results.has(result.event_id)) {
    const card = resultCard(result);
    state.results.set(result.event_id, card);
    list.prepend(card);
    while (list.children.length > MAX_RESULTS) {
      const last = list.lastElementChild;
      state.results.delete(last.dataset.eventId);
      last.remove();
    }
  }
  showFrame(result);
  settleUpload(result.event_id, 200, result);
}

// --- camera frames: the latest redacted frame per source, with the detector's boxes ----------------
function showFrame(result) {
  if (!result || !result.stored_images || !result.stored_images.stored) return;
  let entry = state.frames.get(result.source_id);
  if (entry && entry.eventId === result.event_id) return;
  const panel = $("frames");
  panel.querySelector(".empty")?.remove();
  if (!entry) {
    const canvas = el("canvas", { class: "frame" });
    canvas.hidden = true;
    const figure = el("figure", { class: "frame", dataset: { source: result.source_id } }, canvas,
      el("figcaption", {}));
    entry = { figure, eventId: null };
    state.frames.set(result.source_id, entry);
    const after = [...panel.children].find((f) => f.dataset.source > result.source_id);
    panel.insertBefore(figure, after || null);
  }
  entry.eventId = result.event_id;
  entry.figure.dataset.eventId = result.event_id;
  const kept = result.stored_images;
  entry.figure.querySelector("figcaption").textContent = `${result.source_id} · ${kept.regions} redacted `
    + `(${(kept.redacted_labels || []).join(", ")}) · ${ago(result.processed_at)}`;
  drawThumbnail(entry.figure.querySelector("canvas"), result, frameUrl(result));
}

// --- uploads -------------------------------------------------------------------------------------
function settleUpload(eventId, status, body) {
  const upload = state.uploads.get(eventId);
  if (!upload || upload.done) return;
  upload.done = true;
  let card;
  if (status === 200) {
    card = resultCard(body);
    $("upload-status").textContent = `Result for ${eventId}: ${body.predictions?.[0]?.label ?? "no prediction"}`;
  } else {
    const message = body && (body.message || body.error) || `HTTP ${status}`;
    card = el("div", { class: "card error", dataset: { eventId } }, el("strong", {}, "rejected"),
      el("div", { class: "meta" }, message));
    $("upload-status").textContent = `Upload ${eventId} failed: ${message}`;
  }
  card.classList.add("upload-result");
  upload.card.replaceWith(card);
  upload.card = card;
}

async function pollUpload(eventId) {
  // SSE may deliver the result first; polling also covers results served by another worker.
  const deadline = Date.now() + 180000;
  while (Date.now() < deadline) {
    const upload = state.uploads.get(eventId);
    if (!upload || upload.done) return;
    try {
      const { status, body } = await getJSON(`/api/results/${encodeURIComponent(eventId)}`);
      if (status === 200 || status === 422 || status === 404) { settleUpload(eventId, status, body); return; }
    } catch (_) { /* retry */ }
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

async function upload(event) {
  event.preventDefault();
  const file = $("upload-file").files[0];
  if (!file) return;
  const form = new FormData();
  form.append("image", file, file.name);
  for (const [name, id] of [["source_id", "upload-source"], ["model", "upload-model"], ["label", "upload-label"]]) {
    if ($(id).value) form.append(name, $(id).value);
  }
  if ($("api-token").value) sessionStorage.setItem("sv-token", $("api-token").value);
  $("upload-button").disabled = true;
  $("upload-status").textContent = `Uploading ${file.name}…`;
  try {
    const response = await fetch("/api/images", { method: "POST", body: form, headers: authHeaders() });
    const body = await response.json().catch(() => ({}));
    if (response.status !== 202) {
      $("upload-status").textContent = `Upload failed (${response.status}): ${body.error || response.statusText}`;
      return;
    }
    const card = el("div", { class: "card pending", dataset: { eventId: body.event_id } },
      el("strong", {}, file.name), el("div", { class: "meta" }, `pending · ${body.event_id}`));
    $("upload-results").prepend(card);
    state.uploads.set(body.event_id, { card, done: false });
    $("upload-status").textContent = `Accepted as ${body.event_id}; waiting for the result…`;
    pollUpload(body.event_id);
  } catch (error) {
    $("upload-status").textContent = `Upload failed: ${error}`;
  } finally {
    $("upload-button").disabled = false;
  }
}

// --- live stream ---------------------------------------------------------------------------------
function setConnection(value, text) {
  const badge = $("connection");
  badge.dataset.state = value;
  badge.textContent = text || value;
}

function connect() {
  setConnection("connecting");
  const source = new EventSource("/api/stream");
  source.onopen = () => setConnection("live");
  source.addEventListener("result", (e) => showResult(JSON.parse(e.data)));
  source.addEventListener("alert", (e) => { addAlert(JSON.parse(e.data)); renderAlerts(); });
  source.onerror = () => {
    if (source.readyState === EventSource.CLOSED) {
      // The browser gave up (e.g. an HTTP error): try again ourselves.
      setConnection("closed", "disconnected, retrying");
      setTimeout(connect, 3000);
    } else {
      setConnection("reconnecting");  // EventSource reconnects by itself
    }
  };
}

// --- sources -------------------------------------------------------------------------------------
async function refreshSources() {
  const { status, body } = await getJSON("/api/sources");
  if (status !== 200 || !body) return;
  const tbody = $("sources").querySelector("tbody");
  const rows = Object.entries(body.sources || {}).sort(([a], [b]) => a.localeCompare(b)).map(([id, s]) => {
    const top = Object.entries(s.top_labels || {})[0];
    return el("tr", { dataset: { source: id } }, el("td", {}, id), el("td", {}, s.served || 0),
      el("td", {}, s.failed || 0), el("td", {}, fmt(s.latency_ms?.p50, 0)), el("td", {}, fmt(s.latency_ms?.p95, 0)),
      el("td", {}, top ? `${top[0]} (${top[1]})` : "–"), el("td", {}, s.last_model || "–"),
      el("td", {}, ago(s.last_seen)));
  });
  tbody.replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: 8, class: "muted" }, "no sources yet"))]));
  for (const [id, s] of Object.entries(body.sources || {})) {
    if (s.latest) showFrame({ ...s.latest, source_id: id });
  }
  $("counters").textContent = `worker ${body.worker || "?"}`;
}

// --- models and A/B ------------------------------------------------------------------------------
function verdictText(verdict) {
  if (!verdict) return "no challenger: no A/B test running";
  if (!verdict.enough_data) return verdict.message || `not enough data (champion ${verdict.n_champion ?? 0}, challenger ${verdict.n_challenger ?? 0})`;
  const diff = verdict.difference === null ? "–" : `${(verdict.difference * 100).toFixed(2)} pts`;
  const winner = verdict.winner ? `winner: ${verdict.winner}` : verdict.significant ? "significant" : "no significant difference";
  return `${verdict.basis}: champion ${fmt(verdict.champion_rate, 3)} vs challenger ${fmt(verdict.challenger_rate, 3)}`
    + ` (Δ ${diff}, p=${fmt(verdict.p_value, 4)}) · ${winner}`;
}

async function refreshModels() {
  const { status, body } = await getJSON("/api/models");
  if (status !== 200 || !body) return;
  const select = $("upload-model");
  const names = Object.keys(body.models || {});
  const current = [...select.options].map((o) => o.value).filter(Boolean);
  if (names.join() !== current.join()) {
    const chosen = select.value;
    select.replaceChildren(el("option", { value: "" }, "default"), ...names.map((n) => el("option", { value: n }, n)));
    select.value = names.includes(chosen) ? chosen : "";
  }
  const blocks = Object.entries(body.models || {}).map(([name, m]) => {
    const aliases = Object.entries(m.aliases || {}).map(([a, v]) => `${a}→v${v}`).join(", ") || "none";
    const routing = Object.entries(m.routing || {}).map(([k, v]) => `${k}=${v}`).join(", ") || "–";
    const rows = Object.entries(m.variants || {}).map(([key, v]) => el("tr", {},
      el("td", {}, key), el("td", {}, v.current ? "yes" : ""), el("td", {}, v.count),
      el("td", {}, fmt(v.mean_confidence, 3)), el("td", {}, fmt(v.accuracy, 3)),
      el("td", {}, fmt(v.latency_ms?.p50, 0)), el("td", {}, fmt(v.agreement_rate, 3))));
    const table = el("table", {}, el("thead", {}, el("tr", {}, ...["variant@version", "serving", "events",
      "mean conf", "accuracy", "p50 ms", "agreement"].map((h) => el("th", {}, h)))), el("tbody", {}, ...rows));
    return el("div", { class: "model", dataset: { model: name } }, el("strong", {}, name),
      el("div", { class: "kv" }, `aliases: ${aliases} · routing: ${routing}`),
      (m.errors || []).length ? el("div", { class: "kv drifted" }, `load errors: ${m.errors.length}`) : null,
      el("div", { class: `verdict ${m.verdict?.winner ? "win" : ""}` }, verdictText(m.verdict)), table);
  });
  $("models").replaceChildren(...(blocks.length ? blocks : [el("p", { class: "muted" }, "no models served")]));
}

// --- drift ---------------------------------------------------------------------------------------
function isMetric(key, value) {
  return typeof value === "number" && (DRIFT_METRICS.has(key) || /_(psi|ks|mmd|shift)$/.test(key));
}

function collectDrift(node, path, out, depth = 0) {
  // Finds drift records anywhere in the response, whatever its layout.
  if (!node || typeof node !== "object" || depth > 6) return;
  if (Array.isArray(node)) { node.forEach((n) => collectDrift(n, path, out, depth + 1)); return; }
  const metrics = Object.entries(node).filter(([k, v]) => isMetric(k, v));
  if (metrics.length) {
    const model = node.model_name || node.model || path[0] || "?";
    const version = node.model_version || node.version;
    const source = node.source_id || node.source || "*";
    out.push({ id: `${model}${version ? ` v${version}` : ""} · ${source}`, t: node.window_end || node.window_start || Date.now(),
      metrics, drifted: node.drifted, reasons: node.reasons });
    return;
  }
  for (const [key, value] of Object.entries(node)) {
    if (value && typeof value === "object") collectDrift(value, [...path, key], out, depth + 1);
  }
}

function drawChart(canvas, series) {
  const width = canvas.clientWidth || 600, height = canvas.clientHeight || 160;
  canvas.width = width; canvas.height = height;
  const ctx = canvas.getContext("2d");
  const all = [...series.values()].flat();
  if (!all.length) return;
  const t0 = Math.min(...all.map((p) => p[0])), t1 = Math.max(...all.map((p) => p[0]));
  const vmax = Math.max(1e-9, ...all.map((p) => p[1]));
  const x = (t) => 30 + (t1 === t0 ? 0.5 : (t - t0) / (t1 - t0)) * (width - 40);
  const y = (v) => height - 15 - (v / vmax) * (height - 25);
  ctx.strokeStyle = "#2a3642"; ctx.fillStyle = "#8a9aa8"; ctx.font = "10px sans-serif";
  ctx.beginPath(); ctx.moveTo(30, y(0)); ctx.lineTo(width - 10, y(0)); ctx.stroke();
  ctx.fillText(vmax.toFixed(2), 0, y(vmax) + 4); ctx.fillText("0", 18, y(0) + 3);
  const time = (t) => new Date(t).toLocaleTimeString();
  ctx.fillText(time(t0), 30, height - 2);
  if (t1 > t0) ctx.fillText(time(t1), width - 10 - ctx.measureText(time(t1)).width, height - 2);
  [...series.entries()].forEach(([, points], i) => {
    ctx.strokeStyle = COLORS[i % COLORS.length]; ctx.fillStyle = ctx.strokeStyle; ctx.lineWidth = 1.5;
    ctx.beginPath();
    points.forEach(([t, v], j) => (j ? ctx.lineTo(x(t), y(v)) : ctx.moveTo(x(t), y(v))));
    ctx.stroke();
    if (points.length === 1) ctx.fillRect(x(points[0][0]) - 2, y(points[0][1]) - 2, 4, 4);
  });
}

async function refreshDrift() {
  const { status, body } = await getJSON("/api/drift").catch(() => ({ status: 0, body: null }));
  const box = $("drift");
  if (status !== 200) {
    box.replaceChildren(el("p", { class: "muted" }, status === 404
      ? "Drift monitoring is not available on this worker (GET /api/drift: 404)."
      : `Drift unavailable (HTTP ${status || "error"}).`));
    return;
  }
  const records = [];
  collectDrift(body, [], records);
  for (const r of records) {
    const entry = state.drift.get(r.id) || { metrics: new Map(), latest: null };
    for (const [metric, value] of r.metrics) {
      const points = entry.metrics.get(metric) || [];
      if (!points.length || points[points.length - 1][0] < r.t) points.push([r.t, value]);
      else if (points[points.length - 1][0] === r.t) points[points.length - 1][1] = value;
      entry.metrics.set(metric, points.slice(-MAX_POINTS));
    }
    if (!entry.latest || entry.latest.t <= r.t) entry.latest = r;
    state.drift.set(r.id, entry);
  }
  const baselines = Object.entries((body && body.baselines) || {}).map(([key, b]) =>
    el("div", { class: "kv" }, `${key}: collecting a baseline profile, ${b.collected ?? "?"} of ${b.needed ?? "?"} events`));
  if (!state.drift.size) {
    box.replaceChildren(el("p", { class: "muted" }, "No drift windows yet."), ...baselines);
    return;
  }
  box.replaceChildren(...baselines, ...[...state.drift.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([id, entry]) => {
    const canvas = el("canvas");
    const legend = el("div", { class: "legend" }, ...[...entry.metrics.entries()].map(([metric, points], i) => {
      const swatch = el("i"); swatch.style.background = COLORS[i % COLORS.length];
      return el("span", {}, swatch, `${metric} ${fmt(points[points.length - 1][1], 3)}`);
    }));
    const latest = entry.latest || {};
    const chart = el("div", { class: "drift-chart", dataset: { series: id } },
      el("strong", {}, id), " ",
      latest.drifted ? el("span", { class: "drifted" }, `drifted: ${(latest.reasons || []).join(", ")}`) : null,
      canvas, legend);
    requestAnimationFrame(() => drawChart(canvas, entry.metrics));
    return chart;
  }));
}

// --- alerts --------------------------------------------------------------------------------------
function addAlert(alert) {
  const id = alert.alert_id || `${alert.model_name}/${alert.model_version}/${alert.source_id}/${alert.metric}`;
  state.alerts.set(id, alert);
}

function renderAlerts(note) {
  const items = [...state.alerts.values()].sort((a, b) => (b.window_end || 0) - (a.window_end || 0)).slice(0, 50)
    .map((a) => el("li", { class: `${a.severity || ""} ${a.state || ""}` },
      el("strong", {}, `${a.severity || "ALERT"} ${a.state || ""}`), " ",
      `${a.model_name || "?"} v${a.model_version || "?"} · ${a.source_id || "*"} · ${a.metric || ""} = `
      + `${fmt(a.value, 3)} (threshold ${fmt(a.threshold, 3)})`, el("div", { class: "muted" }, a.message || "")));
  $("alerts").replaceChildren(...(items.length ? items : [el("li", { class: "muted" }, note || "No alerts.")]));
}

async function refreshAlerts() {
  const { status, body } = await getJSON("/api/alerts").catch(() => ({ status: 0, body: null }));
  if (status !== 200) {
    renderAlerts(status === 404 ? "Alerts are not available on this worker (GET /api/alerts: 404)." : "Alerts unavailable.");
    return;
  }
  const found = [];
  (function walk(node, depth) {
    if (!node || typeof node !== "object" || depth > 5) return;
    if (Array.isArray(node)) { node.forEach((n) => walk(n, depth + 1)); return; }
    if ("severity" in node && ("metric" in node || "alert_id" in node)) { found.push(node); return; }
    Object.values(node).forEach((n) => walk(n, depth + 1));
  })(body, 0);
  found.forEach(addAlert);
  renderAlerts();
}

// --- readiness: why this worker is not ready (e.g. the embedded broker over its memory limit) ------
async function refreshHealth() {
  const { status, body } = await getJSON("/ready").catch(() => ({ status: 0, body: null }));
  const reasons = status === 200 ? [] : (body && body.reasons) || ["worker not answering /ready"];
  $("health").textContent = reasons.join(" · ");
  $("health").hidden = reasons.length === 0;
}

// --- start ---------------------------------------------------------------------------------------
function every(ms, task) {
  const run = () => task().catch((error) => console.warn(task.name, error)).finally(() => setTimeout(run, ms));
  run();
}

document.addEventListener("DOMContentLoaded", async () => {
  await startSession();
  $("upload-form").addEventListener("submit", upload);
  connect();
  every(3000, refreshSources);
  every(5000, refreshModels);
  every(5000, refreshDrift);
  every(5000, refreshAlerts);
  every(5000, refreshHealth);
});
