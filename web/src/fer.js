// fusion_fer in the browser: the Python pipeline's steps, read from a model folder's config.json.
//
// face box (a photo: MTCNN, as in Python (mtcnn.js); a live frame: the Face Landmarker's mesh, calibrated to
// FER2013's framing) -> 48 px grey crop -> the Face Landmarker on that crop (as Python runs it) -> framings,
// softening, mirror -> model.onnx (ONNX Runtime Web) -> averaged probabilities, class offsets, temperature.
// Every number that describes the preprocessing comes from config.json or mesh.json; none is repeated here.

import { Mtcnn } from "./mtcnn.js";

const N_POINTS = 468;
const CROP = 48; // the grey face crop's side, as Python's (the mesh runs on it, the network reads it)
const DETECT_EVERY = 6; // live: look for faces on every 6th frame...
const DETECT_AFTER_MS = 400; // ...or when this long has passed (a new face is labelled within ~0.4 s, as in Python)
const MESH_EVERY = 2; // live: a followed face's mesh is read on every 2nd frame; in between its last one is kept

export class Pipeline {
  /** ort: onnxruntime-web; vision: @mediapipe/tasks-vision; base: the folder holding models/ and assets/. */
  static async create(ort, vision, base) {
    // MediaPipe loads its wasm again for every task made: fetched once here, each task reads the same blob
    const fileset = await vision.FilesetResolver.forVisionTasks(`${base}vendor/mediapipe/wasm`);
    for (const key of ["wasmLoaderPath", "wasmBinaryPath"]) {
      fileset[key] = URL.createObjectURL(await (await fetch(fileset[key])).blob());
    }
    const mesh = await (await fetch(`${base}assets/mesh.json`)).json();
    const task = new Uint8Array(await (await fetch(`${base}assets/face_landmarker.task`)).arrayBuffer());
    const models = await (await fetch(`${base}models/models.json`)).json();
    const p = new Pipeline(ort, vision, fileset, task, mesh, models, base);
    p.detector = await Mtcnn.create(ort, base);
    // every landmarker is made now, while the page is online: each loads MediaPipe's wasm loader
    p.videoFinder = await vision.FaceLandmarker.createFromOptions(fileset, {
      baseOptions: { modelAssetBuffer: task, delegate: "CPU" }, runningMode: "VIDEO", numFaces: 4,
    });
    return p;
  }

  constructor(ort, vision, fileset, task, mesh, models, base) {
    Object.assign(this, { ort, vision, fileset, task, mesh, models, base });
    this.loaded = {};
    this.cropMeshes = {};
  }

  /** A shipped model by name: its config.json, an ONNX Runtime session and what the preprocessing needs. */
  async model(name) {
    if (this.loaded[name]) return this.loaded[name];
    const dir = `${this.base}models/${name}/`;
    const config = await (await fetch(`${dir}config.json`)).json();
    const session = await this.ort.InferenceSession.create(`${dir}${config.onnx.file}`, { executionProviders: ["wasm"] });
    const guide = config.model.guide_points;
    const where = new Map(guide.map((v, j) => [v, j]));
    const m = {
      name, config, session, guide,
      guideMirror: Int32Array.from(guide, (v) => where.get(this.mesh.mirror_index[v])),
      mean: Float32Array.from(config.landmarks.mean), std: Float32Array.from(config.landmarks.std),
    };
    await this.cropMesh(config.mesh);
    this.loaded[name] = m;
    return m;
  }

  /** The Face Landmarker that runs on 48 px crops, with the model's mesh settings (one per setting). Live frames
   * show no blendshapes, so theirs leaves the blendshape model out. */
  async cropMesh(cfg, blendshapes = true) {
    const key = JSON.stringify([cfg, blendshapes]);
    if (!this.cropMeshes[key]) {
      this.cropMeshes[key] = await this.vision.FaceLandmarker.createFromOptions(this.fileset, {
        baseOptions: { modelAssetBuffer: this.task, delegate: "CPU" }, runningMode: "IMAGE", numFaces: 1,
        minFaceDetectionConfidence: cfg.min_detection_confidence, minFacePresenceConfidence: cfg.min_detection_confidence,
        outputFaceBlendshapes: blendshapes,
      });
    }
    return this.cropMeshes[key];
  }

  /** Every face in a photo (canvas, ImageBitmap or img): [{box, label, confidence, probs, top3, cut}], largest first,
   * boxes in the photo's pixels. The faces are MTCNN's, with the Python app's crop around each (config.json's
   * `crop_scale`, `crop_shift_y`). A photo of at least twice `detect_max_side` is first box-reduced by a whole
   * factor, as Python decodes it (imageio.load_image_scaled): a phone's 12 Mpx photo is read at about 1000 px. */
  async predict(source, name) {
    const m = await this.model(name);
    const fc = m.config.face;
    const { width: w, height: h } = sourceSize(source);
    const k = Math.max(w, h) >= 2 * fc.detect_max_side ? Math.floor(Math.max(w, h) / fc.detect_max_side) : 1;
    const t = [performance.now()];
    const { rgb, gray } = pixelsOf(source, w, h, k);
    t.push(performance.now());
    const faces = (await this.detector.detect(rgb, fc)).map(({ box, size }) => ({
      box, size, square: { cx: (box[0] + box[2]) / 2, cy: (box[1] + box[3]) / 2 + fc.crop_shift_y * size, side: size * fc.crop_scale },
    }));
    t.push(performance.now());
    const out = [];
    this.stages = { crop: 0, mesh: 0, network: 0 };
    for (const face of faces) {
      const r = await this.classify(m, gray, face, false);
      out.push({ ...r, box: r.box.map((v) => v * k) });
    }
    // where a photo's time goes, for benchmarks/bench_web.py
    this.timings = { read: t[1] - t[0], find: t[2] - t[1], ...this.stages, total: performance.now() - t[0] };
    return out;
  }

  /** A live frame (a video, or the canvas it was drawn on): faces are looked for every `DETECT_EVERY` frames (or `DETECT_AFTER_MS`), and followed in
   * between by the mesh on their crop, as the Python stream does; a face whose mesh is lost is looked for at once. */
  async predictLive(frame, name, now) {
    const m = await this.model(name);
    const { width: w, height: h } = sourceSize(frame);
    const t = [performance.now()];
    const tr = this.track;
    const due = !tr || !tr.faces.length || tr.since >= DETECT_EVERY - 1 || now - tr.at > DETECT_AFTER_MS;
    let faces;
    if (due) {
      faces = this.videoFinder.detectForVideo(frame, now).faceLandmarks.map((pts) => meshBox(pts, w, h));
      faces.sort((a, b) => b.size - a.size);
      this.track = { faces, since: 0, at: now };
    } else {
      faces = tr.faces;
      tr.since += 1;
    }
    t.push(performance.now());
    if (!faces.length) return [];
    // only the pixels the crops read are converted: the faces' squares, not the whole frame
    const rects = faces.map((f) => cropRect(f, w, h, CROP, m.config.face));
    const gray = grayOf(frame, w, h, [Math.min(...rects.map((r) => r[0])), Math.min(...rects.map((r) => r[1])),
      Math.max(...rects.map((r) => r[2])), Math.max(...rects.map((r) => r[3]))]);
    t.push(performance.now());
    this.stages = { crop: 0, mesh: 0, network: 0 };
    // One network view a frame: the face and its mirror on alternate frames. The per-face smoothing over
    // time (app.js) averages the two, as Python's live recipe averages them within a frame, for half the cost.
    this.liveView = this.liveView === "plain" ? "mirror" : "plain";
    const out = [], next = [];
    for (const face of faces) {
      // Between two readings of its mesh a followed face keeps its box and its points (in that box's crop): at
      // webcam rates a face moves little in one frame, and the mesh is the costliest step here.
      const keep = !due && face.mesh && face.meshAge < MESH_EVERY - 1 ? face.mesh : null;
      const r = await this.classify(m, gray, face, this.liveView, keep);
      if (r.follow) {
        r.follow.mesh = r.mesh;
        r.follow.meshAge = keep ? face.meshAge + 1 : 0;
        out.push(r); next.push(r.follow);
      } else if (due) out.push(r);
    }
    if (next.length < faces.length) this.track.since = DETECT_EVERY; // a face was lost: look again next frame
    this.track.faces = next;
    this.timings = { find: t[1] - t[0], gray: t[2] - t[1], ...this.stages, total: performance.now() - t[0], detected: due };
    return out;
  }

  /** One face: crop, mesh, network. `live`: false for a photo (every framing with its mirror), or the
   * view a live frame reads ("plain" or "mirror", one framing). */
  async classify(m, gray, face, live, keepMesh = null) {
    const cfg = m.config;
    const fc = cfg.face;
    const { w, h } = gray;
    const size = CROP;
    const t0 = performance.now();
    const crop = cropFace(gray, face, size, fc);
    const t1 = performance.now();
    const found = keepMesh || meshOnCrop(await this.cropMesh(cfg.mesh, !live), crop, size, cfg.mesh);
    const t2 = performance.now();
    const zooms = live ? (cfg.live_zooms || [nearestOne(cfg.zooms || [1.0])]) : (cfg.zooms || [1.0]);
    const probs = await this.logProbs(m, crop, found ? found.points : null, zooms, live || "both");
    if (this.stages) {
      this.stages.crop += t1 - t0; this.stages.mesh += t2 - t1; this.stages.network += performance.now() - t2;
    }
    const classes = cfg.classes;
    const bias = cfg.class_bias || classes.map(() => 0);
    const t = cfg.temperature || 1.0;
    const final = softmax(probs.map((lp, k) => (lp + bias[k]) / t));
    const [x1, y1, x2, y2] = face.box;
    return {
      box: face.box, ...labelled(classes, final), landmarksFound: !!found,
      cut: x1 < -0.02 * face.size || y1 < -0.02 * face.size || x2 > w + 0.02 * face.size || y2 > h + 0.02 * face.size,
      blendshapes: found ? found.blendshapes : null,
      follow: !found ? null : keepMesh ? { box: face.box, size: face.size } : followBox(found.points, face, fc),
      mesh: found,
    };
  }

  /** predict.log_probs: framings (each softened), each with its mirror, averaged; (classes) log-probabilities.
   * `views`: "both" (the face and its mirror), or only "plain" or "mirror" (the live recipe's alternate frames). */
  async logProbs(m, crop, points, zooms, views = "both") {
    const cfg = m.config;
    const s = cfg.image_size;
    const n = zooms.length;
    const k = m.guide.length;
    const images = new Float32Array(2 * n * s * s);
    const feats = new Float32Array(2 * n * 1404);
    const found = new Float32Array(2 * n);
    const guide = new Float32Array(2 * n * k * 2);
    zooms.forEach((z, v) => {
      const [vc, vp] = zoomView(crop, points, s, z);
      const soft = soften(vc, s, cfg.soften || 0);
      for (let i = 0; i < s; i++) {
        for (let j = 0; j < s; j++) {
          const x = (soft[i * s + j] / 255 - cfg.image_mean) / cfg.image_std;
          images[v * s * s + i * s + j] = x;
          images[(n + v) * s * s + i * s + (s - 1 - j)] = x; // the mirror image
        }
      }
      if (vp) {
        found[v] = found[n + v] = 1;
        const norm = normalize(vp, this.mesh);
        standardise(norm, m, feats, v * 1404);
        standardise(mirrorPoints(norm, this.mesh.mirror_index, 0), m, feats, (n + v) * 1404);
        for (let j = 0; j < k; j++) {
          const q = m.guide[j];
          guide[(v * k + j) * 2] = vp[q * 3] * 2 - 1;
          guide[(v * k + j) * 2 + 1] = vp[q * 3 + 1] * 2 - 1;
        }
        for (let j = 0; j < k; j++) { // the mirror's guide points: positions swapped, x negated
          const src = (v * k + m.guideMirror[j]) * 2;
          guide[((n + v) * k + j) * 2] = -guide[src];
          guide[((n + v) * k + j) * 2 + 1] = guide[src + 1];
        }
      }
    });
    const T = this.ort.Tensor;
    const [first, b] = views === "both" ? [0, 2 * n] : [views === "mirror" ? n : 0, n]; // the batch's views
    const part = (arr, per) => arr.subarray(first * per, (first + b) * per);
    const out = await m.session.run({
      images: new T("float32", part(images, s * s), [b, 1, s, s]), landmarks: new T("float32", part(feats, 1404), [b, 1404]),
      found: new T("float32", part(found, 1), [b]), points: new T("float32", part(guide, k * 2), [b, k, 2]),
    });
    const lp = out.log_probs.data;
    const c = cfg.classes.length;
    const mean = new Float64Array(c);
    for (let v = 0; v < b; v++) {
      for (let j = 0; j < c; j++) mean[j] += Math.exp(lp[v * c + j]) / b;
    }
    return Array.from(mean, Math.log);
  }
}

/** What a face's result says of its probabilities (one per class, in the model's order). */
function labelled(classes, final) {
  const order = classes.map((c, k) => k).sort((a, b) => final[b] - final[a]);
  return {
    label: classes[order[0]], confidence: final[order[0]], probs: Object.fromEntries(classes.map((c, k) => [c, final[k]])),
    top3: order.slice(0, 3).map((k) => [classes[k], final[k]]),
  };
}

export function nearestOne(zooms) {
  return zooms.reduce((a, b) => (Math.abs(b - 1) < Math.abs(a - 1) ? b : a));
}

function sourceSize(src) {
  if (src.videoWidth) return { width: src.videoWidth, height: src.videoHeight };
  if (src.naturalWidth) return { width: src.naturalWidth, height: src.naturalHeight };
  return { width: src.width, height: src.height };
}

/** A photo's pixels, read once: RGB for the detector and grey (as grayOf) for the crops; with `k` > 1, each k x k
 * block averaged first (PIL's reduce: the last row and column of blocks may be partial). */
function pixelsOf(source, w, h, k = 1) {
  const ctx = new OffscreenCanvas(w, h).getContext("2d", { willReadFrequently: true });
  ctx.drawImage(source, 0, 0, w, h);
  const rgba = ctx.getImageData(0, 0, w, h).data;
  const rw = Math.ceil(w / k), rh = Math.ceil(h / k);
  const rgb = new Uint8Array(rw * rh * 3), data = new Uint8Array(rw * rh);
  if (k === 1) {
    for (let i = 0, p = 0; i < data.length; i++, p += 4) {
      rgb[i * 3] = rgba[p]; rgb[i * 3 + 1] = rgba[p + 1]; rgb[i * 3 + 2] = rgba[p + 2];
      data[i] = grayLevel(rgba, p);
    }
  } else {
    for (let y = 0; y < rh; y++) {
      for (let x = 0; x < rw; x++) {
        let r = 0, g = 0, b = 0, n = 0;
        for (let yy = y * k; yy < Math.min(h, (y + 1) * k); yy++) {
          for (let xx = x * k, p = (yy * w + xx) * 4; xx < Math.min(w, (x + 1) * k); xx++, p += 4) {
            r += rgba[p]; g += rgba[p + 1]; b += rgba[p + 2]; n++;
          }
        }
        const o = y * rw + x;
        rgb[o * 3] = Math.round(r / n); rgb[o * 3 + 1] = Math.round(g / n); rgb[o * 3 + 2] = Math.round(b / n);
        data[o] = grayLevel(rgb, o * 3);
      }
    }
  }
  return { rgb: { data: rgb, w: rw, h: rh }, gray: { data, w: rw, h: rh, x0: 0, y0: 0, rw } };
}

/** OpenCV's RGB2GRAY of the pixel at `p` of RGB or RGBA data (fixed-point BT.601 weights). */
function grayLevel(rgba, p) {
  return (rgba[p] * 4899 + rgba[p + 1] * 9617 + rgba[p + 2] * 1868 + 8192) >> 14;
}

/** The image's grey levels as OpenCV's RGB2GRAY computes them (fixed-point BT.601 weights): of the whole
 * image, or only of `rect` [x0, y0, x1, y1) in its pixels. {data, w, h, x0, y0, rw}: w and h are the image's. */
export function grayOf(source, w, h, rect = null) {
  const [x0, y0, x1, y1] = rect || [0, 0, w, h];
  const rw = x1 - x0, rh = y1 - y0;
  let rgba;
  if (source.getContext) { // a canvas (the live view draws each frame on one): its pixels are read where they are
    rgba = source.getContext("2d", { willReadFrequently: true }).getImageData(x0, y0, rw, rh).data;
  } else {
    const ctx = new OffscreenCanvas(rw, rh).getContext("2d", { willReadFrequently: true });
    ctx.drawImage(source, x0, y0, rw, rh, 0, 0, rw, rh);
    rgba = ctx.getImageData(0, 0, rw, rh).data;
  }
  const data = new Uint8Array(rw * rh);
  for (let i = 0, p = 0; i < data.length; i++, p += 4) {
    data[i] = grayLevel(rgba, p);
  }
  return { data, w, h, x0, y0, rw };
}

/** A face from its mesh on the whole image: the 468 points' bounding box in pixels. */
export function meshBox(points, w, h) {
  let x1 = Infinity, y1 = Infinity, x2 = -Infinity, y2 = -Infinity;
  for (let i = 0; i < N_POINTS; i++) {
    const x = points[i].x * w, y = points[i].y * h;
    x1 = Math.min(x1, x); y1 = Math.min(y1, y); x2 = Math.max(x2, x); y2 = Math.max(y2, y);
  }
  return { box: [x1, y1, x2, y2], size: Math.sqrt((x2 - x1) * (y2 - y1)) };
}

/** The crop's square for a face, centre and side in pixels: MTCNN's (set by `predict`), or for a mesh box, where
 * config.json's calibration places it. */
function cropSquare(face, fc) {
  if (face.square) return face.square;
  const [x1, y1, x2, y2] = face.box;
  return {
    cx: (x1 + x2) / 2 + fc.mesh_crop_shift_x * face.size, cy: (y1 + y2) / 2 + fc.mesh_crop_shift_y * face.size,
    side: face.size * fc.mesh_crop_scale,
  };
}

/** The mesh box of a face in the image, from its mesh on the crop: crop units map back through the crop's square. */
function followBox(points, face, fc) {
  const { cx, cy, side } = cropSquare(face, fc);
  const pts = [];
  for (let i = 0; i < N_POINTS; i++) {
    pts.push({ x: cx + (points[i * 3] - 0.5) * side, y: cy + (points[i * 3 + 1] - 0.5) * side });
  }
  return meshBox(pts, 1, 1);
}

/** The pixels [x0, y0, x1, y1) that cropFace reads for a face, within the image. */
export function cropRect(face, w, h, size, fc) {
  const { cx, cy, side } = cropSquare(face, fc);
  const k = Math.max(1, Math.floor(side / (2 * size)));
  const margin = 3 * k + 2; // the box filter's grid and its 2k border, and bilinear's neighbour
  const x0 = Math.min(w - 1, Math.max(0, Math.floor(cx - side / 2) - margin));
  const y0 = Math.min(h - 1, Math.max(0, Math.floor(cy - side / 2) - margin));
  return [x0, y0, Math.max(x0 + 1, Math.min(w, Math.ceil(cx + side / 2) + margin)),
    Math.max(y0 + 1, Math.min(h, Math.ceil(cy + side / 2) + margin))];
}

/** faces.crop_face for a mesh box: the calibrated square, box-filtered first when it is much larger
 * than the crop, then bilinear with the border repeated (OpenCV's 1/32-pixel positions). `gray`: grayOf's,
 * covering at least cropRect's pixels. */
export function cropFace(gray, face, size, fc) {
  const { w, h } = gray;
  const { cx, cy, side } = cropSquare(face, fc);
  const px = (x, y) => gray.data[(y - gray.y0) * gray.rw + x - gray.x0];
  let src, sw = w, sh = h, ox = 0, oy = 0, k = Math.floor(side / (2 * size));
  if (k >= 2) { // PIL's reduce(k) over the crop's neighbourhood, on the whole image's k-grid
    const x0 = Math.min(Math.max(0, Math.floor((Math.floor(cx - side / 2) - 2 * k) / k) * k), Math.floor((w - 1) / k) * k);
    const y0 = Math.min(Math.max(0, Math.floor((Math.floor(cy - side / 2) - 2 * k) / k) * k), Math.floor((h - 1) / k) * k);
    let xe = Math.max(Math.min(w, Math.ceil(cx + side / 2) + 2 * k), x0 + 1);
    let ye = Math.max(Math.min(h, Math.ceil(cy + side / 2) + 2 * k), y0 + 1);
    xe = Math.min(w, x0 + Math.ceil((xe - x0) / k) * k);
    ye = Math.min(h, y0 + Math.ceil((ye - y0) / k) * k);
    sw = Math.ceil((xe - x0) / k); sh = Math.ceil((ye - y0) / k);
    const reduced = new Uint8Array(sw * sh);
    for (let i = 0; i < sh; i++) {
      for (let j = 0; j < sw; j++) {
        let sum = 0, cnt = 0;
        for (let a = y0 + i * k; a < Math.min(ye, y0 + (i + 1) * k); a++) {
          for (let b = x0 + j * k; b < Math.min(xe, x0 + (j + 1) * k); b++) { sum += px(b, a); cnt++; }
        }
        reduced[i * sw + j] = Math.round(sum / cnt);
      }
    }
    src = (x, y) => reduced[y * sw + x];
    ox = x0; oy = y0;
  } else {
    k = 1;
    src = px;
  }
  const out = new Uint8Array(size * size);
  const step = side / size;
  for (let v = 0; v < size; v++) {
    for (let u = 0; u < size; u++) {
      const x = Math.round((((u - size / 2) * step + cx - ox) / k) * 32) / 32;
      const y = Math.round((((v - size / 2) * step + cy - oy) / k) * 32) / 32;
      out[v * size + u] = Math.round(bilinearAt(src, sw, sh, x, y));
    }
  }
  return out;
}

/** Bilinear at (x, y) of a w x h image read through `at(x, y)`, the border repeated. */
function bilinearAt(at, w, h, x, y) {
  const x0 = Math.floor(x), y0 = Math.floor(y), fx = x - x0, fy = y - y0;
  const p = (xx, yy) => at(Math.min(w - 1, Math.max(0, xx)), Math.min(h - 1, Math.max(0, yy)));
  return (p(x0, y0) * (1 - fx) + p(x0 + 1, y0) * fx) * (1 - fy) + (p(x0, y0 + 1) * (1 - fx) + p(x0 + 1, y0 + 1) * fx) * fy;
}

function bilinear(img, w, h, x, y) {
  return bilinearAt((xx, yy) => img[yy * w + xx], w, h, x, y);
}

/** cv2.resize(INTER_CUBIC) of a grey square, a = -0.75, the border repeated. */
function cubicResize(src, s, d) {
  const out = new Uint8Array(d * d);
  const scale = s / d;
  const weights = (t) => {
    const A = -0.75;
    const w0 = ((A * (t + 1) - 5 * A) * (t + 1) + 8 * A) * (t + 1) - 4 * A;
    const w1 = ((A + 2) * t - (A + 3)) * t * t + 1;
    const w2 = ((A + 2) * (1 - t) - (A + 3)) * (1 - t) * (1 - t) + 1;
    return [w0, w1, w2, 1 - w0 - w1 - w2];
  };
  const at = (i, j) => src[Math.min(s - 1, Math.max(0, i)) * s + Math.min(s - 1, Math.max(0, j))];
  for (let v = 0; v < d; v++) {
    const fy = (v + 0.5) * scale - 0.5, y0 = Math.floor(fy), wy = weights(fy - y0);
    for (let u = 0; u < d; u++) {
      const fx = (u + 0.5) * scale - 0.5, x0 = Math.floor(fx), wx = weights(fx - x0);
      let acc = 0;
      for (let a = 0; a < 4; a++) {
        let row = 0;
        for (let b = 0; b < 4; b++) row += wx[b] * at(y0 - 1 + a, x0 - 1 + b);
        acc += wy[a] * row;
      }
      out[v * d + u] = Math.min(255, Math.max(0, Math.round(acc)));
    }
  }
  return out;
}

/** landmarks.FaceMesh on a 48 px crop: upscaled, padded in black, points back in crop units, and the blendshapes. */
function meshOnCrop(landmarker, crop, size, cfg) {
  const d = cfg.input_size;
  const pad = Math.round(cfg.pad * d);
  const full = d + 2 * pad;
  const up = cubicResize(crop, size, d);
  const rgba = new Uint8ClampedArray(full * full * 4);
  for (let i = 0; i < full * full; i++) rgba[i * 4 + 3] = 255;
  for (let v = 0; v < d; v++) {
    for (let u = 0; u < d; u++) {
      const g = up[v * d + u], p = ((v + pad) * full + u + pad) * 4;
      rgba[p] = rgba[p + 1] = rgba[p + 2] = g;
    }
  }
  const res = landmarker.detect(new ImageData(rgba, full, full));
  if (!res.faceLandmarks.length) return null;
  const pts = new Float32Array(N_POINTS * 3);
  for (let i = 0; i < N_POINTS; i++) {
    const q = res.faceLandmarks[0][i];
    pts[i * 3] = (q.x * full - pad) / d;
    pts[i * 3 + 1] = (q.y * full - pad) / d;
    pts[i * 3 + 2] = (q.z * full) / d;
  }
  const blendshapes = {};
  for (const c of (res.faceBlendshapes?.[0] || { categories: [] }).categories) blendshapes[c.categoryName] = c.score;
  return { points: pts, blendshapes };
}

/** transforms.zoom_view: the crop zoomed about its centre (grid_sample, bilinear, border) and its points moved with it. */
export function zoomView(crop, points, s, z) {
  if (z === 1.0) return [crop, points];
  const out = new Uint8Array(s * s);
  for (let i = 0; i < s; i++) {
    for (let j = 0; j < s; j++) {
      const xn = ((2 * j + 1) / s - 1) / z, yn = ((2 * i + 1) / s - 1) / z;
      const x = Math.min(s - 1, Math.max(0, ((xn + 1) * s - 1) / 2));
      const y = Math.min(s - 1, Math.max(0, ((yn + 1) * s - 1) / 2));
      out[i * s + j] = Math.min(255, Math.max(0, Math.round(bilinear(crop, s, s, x, y))));
    }
  }
  let pts = null;
  if (points) {
    pts = new Float32Array(points.length);
    for (let i = 0; i < N_POINTS; i++) {
      pts[i * 3] = ((points[i * 3] * 2 - 1) * z + 1) / 2;
      pts[i * 3 + 1] = ((points[i * 3 + 1] * 2 - 1) * z + 1) / 2;
      pts[i * 3 + 2] = points[i * 3 + 2] * z;
    }
  }
  return [out, pts];
}

/** transforms.soften: OpenCV's GaussianBlur of a grey square (kernel size from sigma as OpenCV picks it for 8-bit). */
export function soften(img, s, sigma) {
  if (!(sigma > 0)) return img;
  const ks = (Math.round(sigma * 3 * 2 + 1) | 1), r = (ks - 1) / 2;
  const kern = Array.from({ length: ks }, (_, i) => Math.exp(-((i - r) ** 2) / (2 * sigma * sigma)));
  const total = kern.reduce((a, b) => a + b, 0);
  const k = kern.map((v) => v / total);
  const tmp = new Float32Array(s * s), out = new Uint8Array(s * s);
  const c = (v) => Math.min(s - 1, Math.max(0, v));
  for (let i = 0; i < s; i++) for (let j = 0; j < s; j++) {
    let a = 0; for (let t = 0; t < ks; t++) a += k[t] * img[i * s + c(j + t - r)]; tmp[i * s + j] = a;
  }
  for (let i = 0; i < s; i++) for (let j = 0; j < s; j++) {
    let a = 0; for (let t = 0; t < ks; t++) a += k[t] * tmp[c(i + t - r) * s + j]; out[i * s + j] = Math.round(a);
  }
  return out;
}

/** landmarks.normalize: centred on the mean point, eye line level, RMS radius 1. */
export function normalize(points, mesh) {
  const out = new Float64Array(N_POINTS * 3);
  const mean = [0, 0, 0];
  for (let i = 0; i < N_POINTS; i++) for (let a = 0; a < 3; a++) mean[a] += points[i * 3 + a] / N_POINTS;
  for (let i = 0; i < N_POINTS; i++) for (let a = 0; a < 3; a++) out[i * 3 + a] = points[i * 3 + a] - mean[a];
  const centre = (idx) => {
    let x = 0, y = 0;
    for (const i of idx) { x += out[i * 3]; y += out[i * 3 + 1]; }
    return [x / idx.length, y / idx.length];
  };
  const [lx, ly] = centre(mesh.eye_left), [rx, ry] = centre(mesh.eye_right);
  const ang = Math.atan2(ry - ly, rx - lx), c = Math.cos(-ang), s = Math.sin(-ang);
  let ss = 0;
  for (let i = 0; i < N_POINTS; i++) {
    const x = out[i * 3], y = out[i * 3 + 1];
    out[i * 3] = c * x - s * y;
    out[i * 3 + 1] = s * x + c * y;
    ss += out[i * 3] ** 2 + out[i * 3 + 1] ** 2;
  }
  const rms = Math.max(Math.sqrt(ss / N_POINTS), 1e-6);
  for (let i = 0; i < out.length; i++) out[i] /= rms;
  return out;
}

/** landmarks.mirror: the flipped face's points, index i keeping its anatomical meaning. */
export function mirrorPoints(points, index, cx) {
  const out = new Float64Array(points.length);
  for (let i = 0; i < N_POINTS; i++) {
    const j = index[i];
    out[i * 3] = 2 * cx - points[j * 3];
    out[i * 3 + 1] = points[j * 3 + 1];
    out[i * 3 + 2] = points[j * 3 + 2];
  }
  return out;
}

function standardise(norm, m, into, at) {
  for (let i = 0; i < 1404; i++) into[at + i] = (norm[i] - m.mean[i]) / m.std[i];
}

export function softmax(v) {
  const top = Math.max(...v);
  const e = v.map((x) => Math.exp(x - top));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / s);
}
