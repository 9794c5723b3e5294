// The page: a photo's faces, numbered and labelled; a live webcam, smoothed per face; a model menu.
import * as ort from "./vendor/ort/ort.wasm.min.mjs";
import * as vision from "./vendor/mediapipe/vision_bundle.mjs";
import { Pipeline } from "./fer.js";

ort.env.wasm.wasmPaths = new URL("./vendor/ort/", import.meta.url).href;
ort.env.wasm.numThreads = 1; // a static page is not cross-origin isolated: no threads

const COLORS = {
  angry: "rgb(230,57,70)", disgust: "rgb(106,153,78)", fear: "rgb(155,93,229)", happy: "rgb(255,183,3)",
  sad: "rgb(33,118,174)", surprise: "rgb(247,127,0)", neutral: "rgb(160,160,160)", contempt: "rgb(140,86,75)",
};
const SMOOTH_S = 0.25; // the live label's time constant, as the Python stream's
const TEXT_EVERY_MS = 150; // live: the bar chart and the rate are rewritten at most this often
const $ = (id) => document.getElementById(id);
let pipe;
let busy = Promise.resolve();

function setStatus(text) { $("status").textContent = text; }

/** Draws a photo or camera frame on a canvas; the canvas is resized only when the size changes (that reallocates
 * it). `read`: the page reads the frame's pixels back from this canvas (the live view). */
function showFrame(canvas, source, read = false) {
  const w = source.videoWidth || source.width, h = source.videoHeight || source.height;
  if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
  canvas.getContext("2d", { willReadFrequently: read }).drawImage(source, 0, 0, w, h);
}

function drawFaces(canvas, source, faces) {
  showFrame(canvas, source);
  drawLabels(canvas, faces);
}

/** Every face's box, then its number and label where it covers the fewest other boxes and labels. */
function drawLabels(canvas, faces) {
  const w = canvas.width, h = canvas.height;
  const ctx = canvas.getContext("2d");
  const lw = Math.max(2, Math.round(Math.min(w, h) / 250));
  const font = Math.max(12, Math.round(Math.min(w, h) / 32));
  ctx.font = `600 ${font}px system-ui, sans-serif`;
  const placed = [];
  faces.forEach((f, i) => {
    const [x1, y1, x2, y2] = f.box;
    ctx.strokeStyle = COLORS[f.label] || "#fff"; ctx.lineWidth = lw;
    ctx.strokeRect(x1, y1, x2 - x1, y2 - y1);
  });
  faces.forEach((f, i) => { // labels after every box: no box crosses a face's number
    const text = `#${i + 1} ${f.label} ${Math.round(f.confidence * 100)}%`;
    const tw = ctx.measureText(text).width + 6, th = font + 6;
    const [x1, y1, x2, y2] = f.box;
    const spots = [];
    for (const y of [y1 - th, y2, y1, y2 - th]) for (const x of [x1, x2 - tw, (x1 + x2 - tw) / 2]) {
      spots.push([Math.min(Math.max(0, x), w - tw), Math.min(Math.max(0, y), h - th)]);
    }
    const others = faces.filter((_, k) => k !== i).map((o) => o.box).concat(placed);
    const cover = ([x, y]) => others.reduce((a, o) => a + Math.max(0, Math.min(x + tw, o[2]) - Math.max(x, o[0]))
      * Math.max(0, Math.min(y + th, o[3]) - Math.max(y, o[1])), 0);
    const [lx, ly] = spots.reduce((best, s) => (cover(s) < cover(best) ? s : best));
    placed.push([lx, ly, lx + tw, ly + th]);
    ctx.fillStyle = COLORS[f.label] || "#fff"; ctx.fillRect(lx, ly, tw, th);
    ctx.fillStyle = "#000"; ctx.fillText(text, lx + 3, ly + font);
  });
}

function bars(el, probs) {
  el.replaceChildren(...Object.entries(probs).sort((a, b) => b[1] - a[1]).map(([c, p]) => {
    const row = document.createElement("div");
    row.className = "bar";
    row.innerHTML = `<span>${c}</span><span class="fill" style="width:${Math.round(p * 200)}px"></span><span>${Math.round(p * 100)}%</span>`;
    return row;
  }));
}

async function showPhoto(file) {
  $("message").textContent = "";
  let bitmap;
  try {
    bitmap = await createImageBitmap(file, { imageOrientation: "from-image" });
  } catch {
    $("message").textContent = `Could not analyse this: ${file.name} is not an image the browser can read.`;
    return;
  }
  const name = $("model").value;
  setStatus("analysing...");
  const t0 = performance.now();
  const faces = await pipe.predict(bitmap, name);
  setStatus(`${faces.length} face${faces.length === 1 ? "" : "s"} in ${Math.round(performance.now() - t0)} ms (model ${name})`);
  drawFaces($("photo-canvas"), bitmap, faces);
  const rows = faces.map((f, i) => `<tr><td>#${i + 1}</td><td>${f.label}</td><td>${Math.round(f.confidence * 100)}%</td>`
    + `<td>${f.top3.map(([c, p]) => `${c} ${Math.round(p * 100)}%`).join(", ")}</td><td>${f.cut ? "cut by the edge" : "whole"}</td></tr>`);
  $("faces").tBodies[0].innerHTML = rows.join("");
  if (faces.length) bars($("bars"), faces[0].probs); else $("bars").replaceChildren();
  if (!faces.length) $("message").textContent = "No face found in this photo.";
  $("result-json").textContent = JSON.stringify({ file: file.name, model: name, faces });
}

// -- live ---------------------------------------------------------------------------------------
const live = { running: false, tracks: [], nextId: 1, shown: [], textAt: -Infinity };

function iou(a, b) {
  const iw = Math.max(0, Math.min(a[2], b[2]) - Math.max(a[0], b[0])), ih = Math.max(0, Math.min(a[3], b[3]) - Math.max(a[1], b[1]));
  const u = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - iw * ih;
  return u > 0 ? (iw * ih) / u : 0;
}

/** Each face keeps its track (best overlap); its probabilities are smoothed over time, not frames. */
function smooth(faces, now) {
  const used = new Set();
  const out = faces.map((f) => {
    let best = null, score = 0.3;
    for (const t of live.tracks) if (!used.has(t) && iou(t.box, f.box) > score) { best = t; score = iou(t.box, f.box); }
    if (!best || Object.keys(best.probs).join() !== Object.keys(f.probs).join()) {
      best = { id: live.nextId++, probs: { ...f.probs }, at: now };
    } else {
      const a = 1 - Math.exp(-(now - best.at) / 1000 / SMOOTH_S);
      for (const c in f.probs) best.probs[c] = (1 - a) * best.probs[c] + a * f.probs[c];
      best.at = now;
    }
    best.box = f.box; used.add(best);
    const label = Object.keys(best.probs).reduce((x, y) => (best.probs[y] > best.probs[x] ? y : x));
    return { ...f, probs: { ...best.probs }, label, confidence: best.probs[label] };
  });
  live.tracks = [...used];
  return out;
}

async function liveLoop() {
  const video = $("video");
  while (live.running) {
    if (video.readyState >= 2) {
      const now = performance.now();
      // The camera's frame is drawn once and analysed from the canvas it is shown on: one conversion of the
      // frame to pixels instead of two, and the labels are drawn on the very frame they were made from.
      const canvas = $("live-canvas");
      showFrame(canvas, video, true);
      const faces = smooth(await pipe.predictLive(canvas, $("model").value, now), now);
      drawLabels(canvas, faces);
      if (faces.length) live.shown.push(performance.now());
      while (live.shown.length && performance.now() - live.shown[0] > 3000) live.shown.shift();
      // the bars and the rate are rewritten a few times a second, not every frame: their layout costs frames,
      // and the smoothed probabilities change slowly anyway
      if (!(live.textAt > performance.now() - TEXT_EVERY_MS)) {
        live.textAt = performance.now();
        if (faces.length) bars($("live-bars"), faces[0].probs);
        const n = live.shown.length;
        $("live-fps").textContent = n > 1
          ? `${((n - 1) * 1000 / (live.shown[n - 1] - live.shown[0])).toFixed(1)} labelled frames/s` : "no face";
      }
    }
    await new Promise((r) => requestAnimationFrame(r));
  }
}

async function toggleLive() {
  const video = $("video");
  if (live.running) {
    live.running = false;
    video.srcObject?.getTracks().forEach((t) => t.stop());
    $("start").textContent = "Start live analysis";
    $("live-fps").textContent = "not running";
    return;
  }
  try {
    video.srcObject = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 480 }, height: { ideal: 360 } } });
  } catch (err) {
    $("live-fps").textContent = `The camera could not be opened: ${err.message}`;
    return;
  }
  await video.play();
  live.running = true; live.tracks = [];
  $("start").textContent = "Stop";
  liveLoop();
}

// -- wiring -------------------------------------------------------------------------------------
function showTab(which) {
  for (const t of ["photo", "webcam"]) {
    $(`${t}-pane`).hidden = t !== which;
    $(`tab-${t}`).classList.toggle("active", t === which);
  }
}

async function main() {
  pipe = await Pipeline.create(ort, vision, new URL("./", import.meta.url).href);
  window.ferTimings = () => pipe.timings; // the last frame's stages, for benchmarks/bench_web.py
  const names = Object.keys(pipe.models.models);
  $("model").replaceChildren(...names.map((n) => new Option(n, n, n === pipe.models.default, n === pipe.models.default)));
  await pipe.model($("model").value);
  setStatus("ready");
  document.body.dataset.ready = "1";
  $("photo").addEventListener("change", () => { if ($("photo").files[0]) busy = busy.then(() => showPhoto($("photo").files[0])); });
  $("model").addEventListener("change", () => {
    busy = busy.then(async () => {
      setStatus(`loading ${$("model").value}...`);
      await pipe.model($("model").value);
      setStatus("ready");
      if ($("photo").files[0]) await showPhoto($("photo").files[0]);
    });
  });
  $("tab-photo").addEventListener("click", () => showTab("photo"));
  $("tab-webcam").addEventListener("click", () => showTab("webcam"));
  $("start").addEventListener("click", toggleLive);
}

main().catch((err) => { setStatus(`could not start: ${err.message}`); console.error(err); });
