// faces.FaceDetector in the browser: facenet-pytorch's MTCNN (its three networks, exported to ONNX by
// web/build.py from the weights in the facenet-pytorch wheel) with the Python detector's two passes. A photo's
// faces, and so its crops, are then the ones the Python app finds and the network learnt from: a square
// placed around the Face Landmarker's mesh scatters around MTCNN's by a few per cent, enough to change one
// label in ten (docs/model-selection-log.md). Every setting comes from config.json's `face`.
//
// Images here are {data, w, h}: `data` is RGB, interleaved, 0..255 (a Uint8Array, or Float32Array).

export class Mtcnn {
  /** ort: onnxruntime-web; base: the folder holding assets/mtcnn/. The files are fetched now, while the page is
   * online; their sessions are made at the first photo, so the live view's start does not wait for them. */
  static async create(ort, base) {
    const files = {};
    for (const name of ["pnet", "rnet", "onet"]) {
      files[name] = new Uint8Array(await (await fetch(`${base}assets/mtcnn/${name}.onnx`)).arrayBuffer());
    }
    return new Mtcnn(ort, files);
  }

  constructor(ort, files) {
    Object.assign(this, { ort, files, nets: null });
  }

  async sessions() {
    if (!this.nets) {
      const nets = {};
      for (const [name, bytes] of Object.entries(this.files)) {
        nets[name] = await this.ort.InferenceSession.create(bytes, { executionProviders: ["wasm"] });
      }
      this.nets = nets;
    }
    return this.nets;
  }

  /** FaceDetector.detect: every face of an RGB image as {box, prob, size}, largest first, in its pixels. A face
   * cut by the frame keeps its whole box, which then reaches outside the image. */
  async detect(img, fc) {
    await this.sessions();
    const { w, h } = img;
    const scale = Math.min(1, fc.detect_max_side / Math.max(h, w));
    const small = scale === 1 ? img : areaResize(img, pyRound(w * scale), pyRound(h * scale));
    const minFace = Math.max(fc.min_face_px, pyRound(fc.min_face_fraction * Math.min(small.w, small.h)));
    if (Math.min(small.w, small.h) < minFace) return [];
    // MTCNN needs a whole face in view: a face cut by the frame is completed with plain colour
    let faces = (await this.pass(small, scale, fc.edge_pad, "constant", minFace, fc))
      .filter((f) => insideEnough(f.box, w, h, fc));
    if (fc.edge_pass) faces = faces.concat(await this.edgePass(img, faces, fc));
    return faces.sort((a, b) => b.size - a.size);
  }

  /** FaceDetector._edge_pass: large faces cut by the frame, found on a small copy padded by reflection. */
  async edgePass(img, found, fc) {
    const { w, h } = img;
    const scale = Math.min(1, fc.edge_side / ((1 + 2 * fc.edge_pass_pad) * Math.max(h, w)));
    const small = scale === 1 ? img : areaResize(img, pyRound(w * scale), pyRound(h * scale));
    const minFace = Math.max(fc.min_face_px, pyRound(fc.edge_min_face * Math.min(small.w, small.h)));
    if (Math.min(small.w, small.h) < minFace) return [];
    const added = [];
    for (const f of await this.pass(small, scale, fc.edge_pass_pad, "reflect", minFace, fc)) {
      const [x1, y1, x2, y2] = f.box;
      const crosses = x1 < 0 || y1 < 0 || x2 > w || y2 > h;
      const cx = (x1 + x2) / 2, cy = (y1 + y2) / 2;
      const centred = cx >= 0 && cx < w && cy >= 0 && cy < h;
      if (crosses && centred && insideEnough(f.box, w, h, fc) && found.concat(added).every((g) => overlap(f.box, g.box) < 0.3)) {
        added.push(f);
      }
    }
    return added;
  }

  /** FaceDetector._mtcnn_pass: MTCNN on `img` (the photo scaled by `scale`) padded by `padShare` of its long side;
   * faces of at least `min_prob`, in the photo's pixels. */
  async pass(img, scale, padShare, border, minFace, fc) {
    const pad = pyRound(padShare * Math.max(img.w, img.h));
    const padded = pad ? padImage(img, pad, border) : img;
    const boxes = await this.detectFace(padded, minFace, fc.thresholds, fc.factor);
    return boxes.filter((b) => b[4] >= fc.min_prob).map((b) => {
      const box = b.slice(0, 4).map((v) => (v - pad) / scale);
      return { box, prob: b[4], size: Math.sqrt(Math.max(box[2] - box[0], 1e-6) * Math.max(box[3] - box[1], 1e-6)) };
    });
  }

  /** facenet_pytorch's detect_face for one image: [x1, y1, x2, y2, prob] per face. Its arithmetic is float32, as
   * torch's; `f32` rounds where a value's float32 rounding decides an integer. */
  async detectFace(img, minSize, thresholds, factor) {
    const { w, h } = img;
    const planes = toPlanes(img);
    const m = 12.0 / minSize;
    let minl = Math.min(h, w) * m;
    const scales = [];
    for (let s = m; minl >= 12; s *= factor, minl *= factor) scales.push(s);

    // first stage: the proposal network over the image pyramid
    let boxes = [];
    for (const scale of scales) {
      const hs = Math.trunc(h * scale + 1), ws = Math.trunc(w * scale + 1);
      const input = areaPool(planes, w, h, [0, 0, w, h], hs, ws);
      const out = await this.nets.pnet.run({ image: new this.ort.Tensor("float32", input, [1, 3, hs, ws]) });
      const found = generateBoxes(out.reg, out.prob, scale, thresholds[0]);
      boxes = boxes.concat(nms(found, 0.5).map((i) => found[i]));
    }
    boxes = nms(boxes, 0.7).map((i) => boxes[i]);
    boxes = boxes.map((b) => {
      const rw = f32(b[2] - b[0]), rh = f32(b[3] - b[1]);
      return rerec([f32(b[0] + f32(b[5] * rw)), f32(b[1] + f32(b[6] * rh)), f32(b[2] + f32(b[7] * rw)),
        f32(b[3] + f32(b[8] * rh)), b[4]]);
    });

    // second stage: the refinement network on each proposal's 24 px square
    if (boxes.length) {
      const kept = await this.score(this.nets.rnet, planes, w, h, boxes, 24, thresholds[1]);
      boxes = nms(kept.map((o) => o.box), 0.7).map((i) => rerec(bbreg(kept[i].box, kept[i].reg)));
    }

    // third stage: the output network on 48 px squares; overlapping faces keep the surest ("Min" overlap)
    if (boxes.length) {
      const kept = (await this.score(this.nets.onet, planes, w, h, boxes, 48, thresholds[2])).map((o) => bbreg(o.box, o.reg));
      boxes = nmsMin(kept, 0.7).map((i) => kept[i]);
    }
    return boxes;
  }

  /** A later stage's network on each box's `size` px square: the boxes it scores above `thresh`, each with its
   * new score and its correction. */
  async score(net, planes, w, h, boxes, size, thresh) {
    boxes = boxes.filter((b) => hasPixels(b, w, h));
    if (!boxes.length) return [];
    const out = await net.run({ image: this.crops(planes, w, h, boxes, size) });
    const reg = out.reg.data, prob = out.prob.data;
    const kept = [];
    boxes.forEach((b, k) => {
      if (prob[k * 2 + 1] > thresh) kept.push({ box: [b[0], b[1], b[2], b[3], prob[k * 2 + 1]], reg: reg.subarray(k * 4, k * 4 + 4) });
    });
    return kept;
  }

  /** Each box's pixels (detect_face's pad: corners truncated, clipped to the image) resampled to `size`, as the
   * networks read them. */
  crops(planes, w, h, boxes, size) {
    const n = boxes.length, per = 3 * size * size;
    const data = new Float32Array(n * per);
    boxes.forEach((b, k) => {
      const [y, ey, x, ex] = padBox(b, w, h);
      data.set(areaPool(planes, w, h, [x - 1, y - 1, ex, ey], size, size), k * per);
    });
    return new this.ort.Tensor("float32", data, [n, 3, size, size]);
  }
}

const f32 = Math.fround;

/** Python's round(): halves to even (the detector's sizes use it). */
function pyRound(x) {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** The RGB image as three planes, as torch holds it (1, 3, H, W). */
function toPlanes({ data, w, h }) {
  const out = new Float32Array(3 * w * h);
  for (let i = 0, n = w * h; i < n; i++) {
    out[i] = data[i * 3]; out[n + i] = data[i * 3 + 1]; out[2 * n + i] = data[i * 3 + 2];
  }
  return out;
}

/** torch's interpolate(mode="area") (adaptive average pooling) of the region [x0, y0, x1, y1) of three planes
 * to oh x ow, then scaled as detect_face feeds its networks: (v - 127.5) / 128. */
function areaPool(planes, w, h, [x0, y0, x1, y1], oh, ow) {
  const rw = x1 - x0, rh = y1 - y0, n = w * h;
  const out = new Float32Array(3 * oh * ow);
  const xs = Array.from({ length: ow }, (_, j) => [x0 + Math.floor((j * rw) / ow), x0 + Math.ceil(((j + 1) * rw) / ow)]);
  for (let i = 0; i < oh; i++) {
    const ys = y0 + Math.floor((i * rh) / oh), ye = y0 + Math.ceil(((i + 1) * rh) / oh);
    for (let j = 0; j < ow; j++) {
      const [xa, xb] = xs[j];
      const count = (ye - ys) * (xb - xa);
      for (let c = 0; c < 3; c++) {
        let sum = 0;
        for (let y = ys; y < ye; y++) {
          const row = c * n + y * w;
          for (let x = xa; x < xb; x++) sum += planes[row + x];
        }
        out[c * oh * ow + i * ow + j] = (f32(sum / count) - 127.5) * 0.0078125;
      }
    }
  }
  return out;
}

/** generateBoundingBox: every 12 px cell of the pyramid level whose face probability reaches `thresh`, as
 * [x1, y1, x2, y2, score, dx1, dy1, dx2, dy2] in the image's pixels. */
function generateBoxes(reg, prob, scale, thresh) {
  const [, , oh, ow] = prob.dims;
  const p = prob.data, r = reg.data, n = oh * ow, s = f32(scale);
  const out = [];
  for (let y = 0; y < oh; y++) {
    for (let x = 0; x < ow; x++) {
      const k = y * ow + x, score = p[n + k];
      if (score >= thresh) {
        out.push([Math.floor(f32((2 * x + 1) / s)), Math.floor(f32((2 * y + 1) / s)), Math.floor(f32((2 * x + 12) / s)),
          Math.floor(f32((2 * y + 12) / s)), score, r[k], r[n + k], r[2 * n + k], r[3 * n + k]]);
      }
    }
  }
  return out;
}

/** torchvision's nms: indices kept, surest first; a box overlapping a kept one by IoU > `thresh` is dropped. */
function nms(boxes, thresh) {
  const order = boxes.map((_, i) => i).sort((a, b) => boxes[b][4] - boxes[a][4]);
  const keep = [];
  const area = (b) => (b[2] - b[0]) * (b[3] - b[1]);
  const dropped = new Uint8Array(boxes.length);
  for (let oi = 0; oi < order.length; oi++) {
    const i = order[oi];
    if (dropped[i]) continue;
    keep.push(i);
    const a = boxes[i];
    for (let oj = oi + 1; oj < order.length; oj++) {
      const j = order[oj];
      if (dropped[j]) continue;
      const b = boxes[j];
      const iw = Math.max(0, Math.min(a[2], b[2]) - Math.max(a[0], b[0]));
      const ih = Math.max(0, Math.min(a[3], b[3]) - Math.max(a[1], b[1]));
      const inter = iw * ih;
      if (inter / (area(a) + area(b) - inter) > thresh) dropped[j] = 1;
    }
  }
  return keep;
}

/** detect_face's last NMS (nms_numpy, "Min"): overlap over the smaller box, areas counted in whole pixels (+1). */
function nmsMin(boxes, thresh) {
  const area = (b) => (b[2] - b[0] + 1) * (b[3] - b[1] + 1);
  let rest = boxes.map((_, i) => i).sort((a, b) => boxes[a][4] - boxes[b][4]);
  const keep = [];
  while (rest.length) {
    const i = rest[rest.length - 1];
    keep.push(i);
    const a = boxes[i];
    rest = rest.slice(0, -1).filter((j) => {
      const b = boxes[j];
      const iw = Math.max(0, Math.min(a[2], b[2]) - Math.max(a[0], b[0]) + 1);
      const ih = Math.max(0, Math.min(a[3], b[3]) - Math.max(a[1], b[1]) + 1);
      return (iw * ih) / Math.min(area(a), area(b)) <= thresh;
    });
  }
  return keep;
}

/** rerec: the box made square about its centre, on its longer side. */
function rerec(b) {
  const bw = f32(b[2] - b[0]), bh = f32(b[3] - b[1]), l = Math.max(bw, bh);
  const x1 = f32(f32(b[0] + f32(bw * 0.5)) - f32(l * 0.5)), y1 = f32(f32(b[1] + f32(bh * 0.5)) - f32(l * 0.5));
  return [x1, y1, f32(x1 + l), f32(y1 + l), b[4]];
}

/** bbreg: the network's correction, in units of the box's side counted in whole pixels (+1). */
function bbreg(b, r) {
  const bw = f32(b[2] - b[0] + 1), bh = f32(b[3] - b[1] + 1);
  return [f32(b[0] + f32(r[0] * bw)), f32(b[1] + f32(r[1] * bh)), f32(b[2] + f32(r[2] * bw)), f32(b[3] + f32(r[3] * bh)), b[4]];
}

/** detect_face's pad: [y, ey, x, ex], the box's corners truncated and clipped to the image (1-based start). */
function padBox(b, w, h) {
  const t = b.slice(0, 4).map(Math.trunc);
  return [Math.max(1, t[1]), Math.min(h, t[3]), Math.max(1, t[0]), Math.min(w, t[2])];
}

/** A box with at least one pixel inside the image (detect_face skips the others). */
function hasPixels(b, w, h) {
  const [y, ey, x, ex] = padBox(b, w, h);
  return ey > y - 1 && ex > x - 1;
}

/** FaceDetector._inside_enough: at least `min_inside` of the box's area lies in the image. */
function insideEnough([x1, y1, x2, y2], w, h, fc) {
  const inside = Math.max(0, Math.min(x2, w) - Math.max(x1, 0)) * Math.max(0, Math.min(y2, h) - Math.max(y1, 0));
  return inside >= fc.min_inside * Math.max(1e-6, (x2 - x1) * (y2 - y1));
}

/** faces._overlap: intersection over the smaller box's area. */
function overlap(a, b) {
  const iw = Math.max(0, Math.min(a[2], b[2]) - Math.max(a[0], b[0]));
  const ih = Math.max(0, Math.min(a[3], b[3]) - Math.max(a[1], b[1]));
  return (iw * ih) / Math.max(Math.min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1])), 1e-6);
}

/** cv2.copyMakeBorder by `pad` on every side: the mean colour (each channel's mean, truncated), or the image
 * reflected about its edge pixels (BORDER_REFLECT_101). */
function padImage({ data, w, h }, pad, border) {
  const W = w + 2 * pad, H = h + 2 * pad;
  const out = new Uint8Array(W * H * 3);
  const fill = [0, 0, 0];
  if (border === "constant") {
    const sums = [0, 0, 0];
    for (let i = 0; i < w * h; i++) for (let c = 0; c < 3; c++) sums[c] += data[i * 3 + c];
    for (let c = 0; c < 3; c++) fill[c] = Math.trunc(sums[c] / (w * h));
  }
  const reflect = (i, n) => {
    if (n === 1) return 0;
    for (;;) {
      if (i < 0) i = -i;
      else if (i >= n) i = 2 * n - 2 - i;
      else return i;
    }
  };
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const sx = x - pad, sy = y - pad, o = (y * W + x) * 3;
      const inside = sx >= 0 && sx < w && sy >= 0 && sy < h;
      if (!inside && border === "constant") {
        out[o] = fill[0]; out[o + 1] = fill[1]; out[o + 2] = fill[2];
      } else {
        const s = (reflect(sy, h) * w + reflect(sx, w)) * 3;
        out[o] = data[s]; out[o + 1] = data[s + 1]; out[o + 2] = data[s + 2];
      }
    }
  }
  return { data: out, w: W, h: H };
}

/** cv2.resize(INTER_AREA) to a smaller nw x nh: each pixel the mean of the source area it covers, partly
 * covered pixels weighted by their share. */
function areaResize({ data, w, h }, nw, nh) {
  const weights = (src, dst) => {
    const scale = src / dst;
    return Array.from({ length: dst }, (_, d) => {
      const f1 = d * scale, f2 = f1 + scale, s1 = Math.ceil(f1), s2 = Math.floor(f2);
      const cell = Math.min(scale, src - f1);
      const taps = [];
      if (s1 - f1 > 1e-3) taps.push([s1 - 1, (s1 - f1) / cell]);
      for (let s = s1; s < s2; s++) taps.push([s, 1 / cell]);
      if (f2 - s2 > 1e-3 && s2 < src) taps.push([s2, Math.min(Math.min(f2 - s2, 1), cell) / cell]);
      return taps;
    });
  };
  const wx = weights(w, nw), wy = weights(h, nh);
  const out = new Uint8Array(nw * nh * 3);
  for (let y = 0; y < nh; y++) {
    for (let x = 0; x < nw; x++) {
      for (let c = 0; c < 3; c++) {
        let acc = 0;
        for (const [sy, ky] of wy[y]) {
          let row = 0;
          for (const [sx, kx] of wx[x]) row += kx * data[(sy * w + sx) * 3 + c];
          acc += ky * row;
        }
        out[(y * nw + x) * 3 + c] = Math.min(255, Math.max(0, Math.round(acc)));
      }
    }
  }
  return { data: out, w: nw, h: nh };
}
