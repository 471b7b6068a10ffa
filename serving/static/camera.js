// impasto camera mode: camera frames to /api/stream over a WebSocket, stylised frames drawn on a canvas.
// One frame in flight: the next is captured when the previous one is answered (a stylised frame or a
// "dropped" notice), so latency never builds up. Uses app.js's state, $, styleSpec and showError.
"use strict";

const camera = {
  active: false, ws: null, stream: null, inFlight: false, sentAt: 0, maxSide: 640, stats: null,
  frames: 0, drops: 0, drawn: [], latency: 0, sentControls: "", saved: null,
  capture: document.createElement("canvas"),
};

function cameraMessage(err) {
  switch (err && err.name) {
    case "NotAllowedError": case "PermissionDeniedError": case "SecurityError":
      return "Camera access was denied. Allow the camera for this page (the camera icon in the address bar) and press Start camera again.";
    case "NotFoundError": case "DevicesNotFoundError": case "OverconstrainedError":
      return "No camera found. Connect a camera and press Start camera again.";
    case "NotReadableError": case "TrackStartError":
      return "The camera is busy (used by another application?) or could not be started.";
    default:
      return `Could not start the camera: ${(err && (err.message || err.name)) || "unknown error"}`;
  }
}

function setCameraButton(mode) {
  const button = $("camera");
  button.textContent = { off: "Start camera", starting: "Starting…", on: "Stop camera" }[mode];
  button.disabled = mode === "starting";
  button.setAttribute("aria-pressed", String(mode === "on"));
}

// While the camera runs, the panes show the live video and the stylised canvas instead of the images
// (style.css, .camera-on); the captions come back as they were.
function showCameraPanes(on) {
  const infos = ["original-info", "result-info"];
  if (on) camera.saved = Object.fromEntries(infos.map((id) => [id, [$(id).textContent, $(id).title]]));
  document.querySelector(".layout").classList.toggle("camera-on", on);
  for (const id of infos) [$(id).textContent, $(id).title] = on ? ["", ""] : camera.saved[id];
  if (on) $("original-info").textContent = "camera";
}

function controlsMessage() {
  const style = styleSpec();
  if (!style) return null;  // every slider at zero: keep the last style
  return JSON.stringify({ model: state.model, style, strength: Number($("strength").value) / 100,
                          preserve_color: $("preserve").checked });
}

function sendControls() {
  if (!camera.active || !camera.ws || camera.ws.readyState !== WebSocket.OPEN) return;
  const message = controlsMessage();
  if (message && message !== camera.sentControls) {
    camera.sentControls = message;
    camera.ws.send(message);
  }
}

function sendFrame() {
  if (!camera.active || camera.inFlight || !camera.ws || camera.ws.readyState !== WebSocket.OPEN) return;
  const video = $("camera-video");
  if (video.readyState < 2 || !video.videoWidth) {
    setTimeout(sendFrame, 30);
    return;
  }
  const side = Math.min(Number($("camera-size").value), camera.maxSide);
  const scale = Math.min(1, side / Math.max(video.videoWidth, video.videoHeight));
  const capture = camera.capture;
  capture.width = Math.max(16, Math.round(video.videoWidth * scale));
  capture.height = Math.max(16, Math.round(video.videoHeight * scale));
  capture.getContext("2d").drawImage(video, 0, 0, capture.width, capture.height);
  camera.inFlight = true;
  capture.toBlob((blob) => {
    if (!blob || !camera.active || camera.ws.readyState !== WebSocket.OPEN) { camera.inFlight = false; return; }
    camera.sentAt = performance.now();
    camera.ws.send(blob);
  }, "image/jpeg", 0.85);
}

async function drawFrame(blob) {
  const now = performance.now();
  const canvas = $("camera-canvas");
  const bitmap = await createImageBitmap(blob);
  if (!camera.active) {  // stopped while it was being decoded
    bitmap.close();
    return;
  }
  if (canvas.width !== bitmap.width || canvas.height !== bitmap.height) {
    canvas.width = bitmap.width;
    canvas.height = bitmap.height;
  }
  canvas.getContext("2d").drawImage(bitmap, 0, 0);
  bitmap.close();
  camera.frames += 1;
  camera.drawn = camera.drawn.filter((t) => now - t < 2000).concat(now);
  const latency = now - camera.sentAt;
  camera.latency = camera.latency ? 0.8 * camera.latency + 0.2 * latency : latency;
  const span = (camera.drawn[camera.drawn.length - 1] - camera.drawn[0]) / 1000;
  const fps = camera.drawn.length > 1 && span > 0 ? (camera.drawn.length - 1) / span : 0;
  const s = camera.stats || {};
  canvas.dataset.frames = String(camera.frames);
  canvas.dataset.style = s.style || "";
  const text = `${fps.toFixed(1)} fps · ${Math.round(camera.latency)} ms · frame ${camera.frames}`;
  $("camera-stats").textContent = `${text}${camera.drops ? ` · ${camera.drops} dropped` : ""}`;
  $("result-info").textContent = `${canvas.width}×${canvas.height} · ${text}`;
  $("result-info").title = `round trip ${Math.round(latency)} ms, server ${s.ms} ms, inference ${s.inference_ms} ms, `
    + `batch of ${s.batch}, model ${s.model}, style ${s.style}`;
}

function onMessage(event) {
  if (typeof event.data !== "string") {  // the stylised frame that the last "frame" message announced
    drawFrame(event.data).catch((err) => showError(`Could not show a frame: ${err.message}`))
      .finally(() => { camera.inFlight = false; sendFrame(); });
    return;
  }
  const message = JSON.parse(event.data);
  if (message.type === "hello") {
    camera.maxSide = message.max_side;
    sendControls();
    sendFrame();
  } else if (message.type === "frame") {
    camera.stats = message;
  } else if (message.type === "dropped") {
    camera.drops += 1;
    camera.inFlight = false;
    sendFrame();
  } else if (message.type === "error") {
    showError(`Camera stream stopped: ${message.detail}`);
  }
}

async function startCamera() {
  showError("");
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    showError("This page cannot use a camera: browsers allow it only on https:// pages and on localhost.");
    return;
  }
  setCameraButton("starting");
  try {
    camera.stream = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 640 }, height: { ideal: 480 } }, audio: false });
    const video = $("camera-video");
    video.srcObject = camera.stream;
    await video.play();
  } catch (err) {
    stopCamera();
    showError(cameraMessage(err));
    return;
  }
  Object.assign(camera, { active: true, inFlight: false, frames: 0, drops: 0, drawn: [], latency: 0, stats: null, sentControls: "" });
  $("camera-canvas").dataset.frames = "0";
  showCameraPanes(true);
  setCameraButton("on");
  $("camera-stats").textContent = "Connecting…";
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/api/stream`);
  ws.binaryType = "blob";
  ws.onmessage = onMessage;
  ws.onclose = (event) => {
    if (camera.ws !== ws) return;
    if (camera.active && event.code !== 1000) {
      showError(`Camera stream closed: ${event.reason || "the connection was lost"} (code ${event.code}).`);
    }
    stopCamera();
  };
  camera.ws = ws;
}

function stopCamera() {
  const wasActive = camera.active;
  camera.active = false;
  if (camera.ws) {
    const ws = camera.ws;
    camera.ws = null;
    if (ws.readyState <= WebSocket.OPEN) ws.close(1000, "camera stopped");
  }
  if (camera.stream) camera.stream.getTracks().forEach((track) => track.stop());
  camera.stream = null;
  $("camera-video").srcObject = null;
  if (wasActive) {
    showCameraPanes(false);
    $("camera-stats").textContent = `Stopped after ${camera.frames} frame${camera.frames === 1 ? "" : "s"}.`;
  }
  setCameraButton("off");
}

function initCamera() {
  $("camera").addEventListener("click", () => (camera.active ? stopCamera() : startCamera()));
  // Every control of the panel: app.js's own handlers run first (on the target), then this sends
  // the resulting controls, only when they changed.
  for (const type of ["input", "change", "click"]) {
    document.querySelector(".panel").addEventListener(type, sendControls);
  }
}

initCamera();
