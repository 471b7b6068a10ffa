// impasto web UI: plain JS against the service's own API (/v1/styles, /v1/stylize); no CDN.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { file: null, models: [], model: null, weights: {}, controller: null, resultUrl: null, originalUrl: null };
let debounce = null;

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

async function loadStyles() {
  try {
    const response = await fetch("/v1/styles");
    const body = await response.json();
    if (!response.ok) throw new Error(body.detail || response.statusText);
    state.models = body.models;
  } catch (err) {
    showError(`Could not load styles: ${err.message}`);
    return;
  }
  const select = $("model");
  select.replaceChildren(...state.models.map((m) => new Option(`${m.name} (${m.styles.length} style${m.styles.length > 1 ? "s" : ""})`, m.name)));
  $("model-row").hidden = state.models.length < 2;
  selectModel(state.models[0] && state.models[0].name);
}

function currentModel() {
  return state.models.find((m) => m.name === state.model);
}

function selectModel(name) {
  state.model = name;
  const model = currentModel();
  if (!model) return;
  state.weights = Object.fromEntries(model.styles.map((s, i) => [s, i === 0 ? 100 : 0]));
  $("blend-hint").hidden = !(model.blendable && model.styles.length > 1);
  renderStyles();
}

function renderStyles() {
  const model = currentModel();
  const rows = model.styles.map((style) => {
    const row = document.createElement("div");
    row.className = "style-row";
    row.dataset.style = style;
    const pick = document.createElement("button");
    pick.type = "button";
    pick.textContent = style;
    pick.title = `Use ${style} alone`;
    if (style === model.identity_style) {
      const tag = document.createElement("span");
      tag.className = "tag";
      tag.textContent = "identity";
      pick.append(tag);
    }
    pick.addEventListener("click", () => {
      for (const s of model.styles) state.weights[s] = s === style ? 100 : 0;
      updateStyleRows();
      scheduleRun(0);
    });
    const weight = document.createElement("span");
    weight.className = "weight";
    row.append(pick, weight);
    if (model.blendable && model.styles.length > 1) {
      const slider = document.createElement("input");
      slider.type = "range";
      slider.min = "0";
      slider.max = "100";
      slider.setAttribute("aria-label", `Weight of ${style}`);
      slider.addEventListener("input", () => {
        state.weights[style] = Number(slider.value);
        updateStyleRows();
        scheduleRun();
      });
      row.append(slider);
    }
    return row;
  });
  $("styles").replaceChildren(...rows);
  updateStyleRows();
}

function updateStyleRows() {
  const total = Object.values(state.weights).reduce((a, b) => a + b, 0);
  for (const row of $("styles").children) {
    const w = state.weights[row.dataset.style];
    row.classList.toggle("active", w > 0);
    row.querySelector(".weight").textContent = total > 0 && w > 0 ? `${Math.round((100 * w) / total)}%` : "";
    const slider = row.querySelector("input");
    if (slider) slider.value = String(w);
  }
  $("run").disabled = !state.file || total <= 0;
  if (total <= 0) showError("Raise at least one style slider.");
  else if ($("error").textContent === "Raise at least one style slider.") showError("");
}

function styleSpec() {
  const active = Object.entries(state.weights).filter(([, w]) => w > 0);
  if (active.length === 1) return active[0][0];
  return active.map(([s, w]) => `${s}:${w}`).join(",");
}

function setFile(file) {
  if (!file) return;
  state.file = file;
  $("drop").querySelector("strong").textContent = file.name || "Pasted image";
  $("drop").querySelector("span").textContent = "Click or drop to replace";
  if (state.originalUrl) URL.revokeObjectURL(state.originalUrl);
  state.originalUrl = URL.createObjectURL(file);
  const original = $("original");
  original.onload = () => { $("original-info").textContent = `${original.naturalWidth}×${original.naturalHeight}`; };
  original.src = state.originalUrl;
  original.hidden = false;
  $("original-empty").hidden = true;
  updateStyleRows();
  scheduleRun(0);
}

// Slider and option changes re-run only in live mode; picking an image or a style always does.
function scheduleRun(delay = 250) {
  if (!state.file || (!$("live").checked && delay !== 0)) return;
  clearTimeout(debounce);
  debounce = setTimeout(run, delay);
}

async function run() {
  if (!state.file || $("run").disabled) return;
  if (state.controller) state.controller.abort();
  const controller = new AbortController();
  state.controller = controller;
  const params = new URLSearchParams({
    model: state.model,
    style: styleSpec(),
    strength: String(Number($("strength").value) / 100),
    max_size: $("max-size").value,
    preserve_color: String($("preserve").checked),
    format: $("format").value,
    stroke_scale: $("stroke").value,
  });
  const form = new FormData();
  form.append("image", state.file, state.file.name || "image");
  const result = $("result");
  result.dataset.state = "loading";
  $("result-canvas").classList.add("busy");
  $("spinner").hidden = false;
  showError("");
  try {
    const response = await fetch(`/v1/stylize?${params}`, { method: "POST", body: form, signal: controller.signal });
    if (!response.ok) {
      let detail = response.statusText;
      try { const body = await response.json(); detail = body.detail || detail; } catch (_) { /* not JSON */ }
      throw new Error(`${response.status}: ${detail}`);
    }
    const blob = await response.blob();
    if (state.resultUrl) URL.revokeObjectURL(state.resultUrl);
    state.resultUrl = URL.createObjectURL(blob);
    const h = response.headers;
    const size = (h.get("X-Image-Size") || "").replace("x", "×");
    const info = `${size} · ${Math.round(Number(h.get("X-Process-Time-Ms")))} ms · batch of ${h.get("X-Batch-Size")}`;
    const details = `server ${h.get("X-Process-Time-Ms")} ms, inference ${h.get("X-Inference-Time-Ms")} ms, `
      + `model ${h.get("X-Model")}, style ${decodeURIComponent(h.get("X-Style") || "")}`;
    await new Promise((resolve, reject) => {
      result.onload = resolve;
      result.onerror = () => reject(new Error("the browser could not display the result"));
      result.src = state.resultUrl;
    });
    result.hidden = false;
    $("result-empty").hidden = true;
    $("result-info").textContent = info;
    $("result-info").title = details;
    const download = $("download");
    const base = (state.file.name || "image").replace(/\.[^.]*$/, "");
    download.href = state.resultUrl;
    download.download = `${base}-${styleSpec().replace(/[^\w.-]+/g, "_")}.${$("format").value === "jpeg" ? "jpg" : $("format").value}`;
    download.hidden = false;
    result.dataset.state = "done";
  } catch (err) {
    if (err.name === "AbortError") return;
    result.dataset.state = "error";
    showError(err.message);
  } finally {
    if (state.controller === controller) {
      state.controller = null;
      $("result-canvas").classList.remove("busy");
      $("spinner").hidden = true;
    }
  }
}

function init() {
  $("file").addEventListener("change", (e) => setFile(e.target.files[0]));
  const drop = $("drop");
  drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); $("file").click(); } });
  for (const type of ["dragenter", "dragover"]) {
    window.addEventListener(type, (e) => { e.preventDefault(); drop.classList.add("over"); });
  }
  for (const type of ["dragleave", "drop"]) {
    window.addEventListener(type, (e) => { e.preventDefault(); drop.classList.remove("over"); });
  }
  window.addEventListener("drop", (e) => setFile(e.dataTransfer.files[0]));
  $("model").addEventListener("change", (e) => { selectModel(e.target.value); scheduleRun(0); });
  $("strength").addEventListener("input", (e) => {
    $("strength-value").textContent = `${e.target.value}%`;
    scheduleRun();
  });
  for (const id of ["preserve", "max-size", "format", "stroke"]) $(id).addEventListener("change", () => scheduleRun());
  $("run").addEventListener("click", run);
  loadStyles();
}

init();
