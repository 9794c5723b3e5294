"""Recorded video: decode, follow and classify every face, write an annotated copy, a per-frame CSV,
a timeline plot and a per-track summary.

    from fusion_fer import load_predictor
    from fusion_fer.video import VideoConfig, analyze_video
    result = analyze_video(load_predictor(), "talk.mp4", out="annotated.mp4", csv_path="frames.csv",
                           config=VideoConfig(every=3))
    print(result.tracks[0].share)          # {"happy": 0.62, "neutral": 0.31, ...}

    python -m fusion_fer video talk.mp4 --out annotated.mp4 --csv frames.csv --plot timeline.png --every 3

Decoding and encoding use PyAV (FFmpeg's libraries in-process, wheels with libx264 on PyPI) rather
than a pipe to an ffmpeg binary: frames arrive as arrays with their own timestamps, so a variable
frame rate keeps its timing; rotation comes from the stream's display matrix; audio packets are
copied without re-encoding; a broken file raises at the packet that broke it, so what came before
can be kept.
"""
from __future__ import annotations

import csv
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from .predict import FaceResult, Predictor
from .stream import StreamState

#: Audio codecs the MP4 muxer takes as they are; others are re-encoded to AAC.
MP4_AUDIO = {"aac", "mp3", "alac", "ac3", "eac3", "opus", "flac"}
#: Demuxers of single pictures: FFmpeg opens a JPEG as a one-frame "video", which is not what a user means.
IMAGE_FORMATS = {"image2", "png_pipe", "jpeg_pipe", "bmp_pipe", "webp_pipe", "gif", "tiff_pipe", "image2pipe"}


class VideoError(ValueError):
    """A file that cannot be analysed as a video, or one that broke part-way.

    Attributes:
        partial: for a file that broke part-way, the result up to the break (its annotated video,
            CSV and plot hold those frames); None when nothing could be read.
    """

    def __init__(self, message: str, partial: VideoResult | None = None) -> None:
        super().__init__(message)
        self.partial = partial


@dataclass
class VideoConfig:
    """How a recorded video is analysed."""

    every: int = 1  # classify every Nth frame; boxes and labels are carried over the frames between
    smoothing: float = 0.35  # weight of the newest classified frame per track; 1.0 turns smoothing off
    max_missed: int = 10  # a track ends after this many classified frames without its face
    detect_max_side: int | None = 640  # detect on a copy this long (None: the model's photo setting)...
    min_face_fraction: float | None = 0.12  # ...for faces at least this share of the shorter side (smaller: slower)
    crf: int = 23  # H.264 quality of the annotated copy (lower: better and larger)
    preset: str = "veryfast"  # x264 speed preset
    max_seconds: float | None = None  # refuse longer videos before decoding (the app sets a limit)
    show_landmarks: bool = False
    blendshapes: bool = True  # a CSV column per MediaPipe blendshape (bs_jawOpen, ...)

    def __post_init__(self) -> None:
        if self.every < 1:
            raise ValueError(f"every must be 1 or more (classify every Nth frame), not {self.every}")
        if not 0 < self.smoothing <= 1:
            raise ValueError(f"smoothing must be in (0, 1] (1 turns it off), not {self.smoothing}")


@dataclass
class TrackSummary:
    """One face over the video."""

    track: int
    first_s: float
    last_s: float
    frames: int  # classified frames in which the track was seen
    share: dict[str, float]  # share of those frames per label (sums to 1)
    times: np.ndarray = field(repr=False)  # (frames,) seconds
    probs: np.ndarray = field(repr=False)  # (frames, classes) smoothed probabilities

    @property
    def main_label(self) -> str:
        return max(self.share, key=self.share.get)


@dataclass
class VideoResult:
    frames: int  # frames decoded
    processed: int  # frames classified
    duration_s: float  # time of the last decoded frame
    fps: float  # the source's average frame rate
    size: tuple[int, int]  # (width, height) upright, as written
    rotation: int  # degrees counter-clockwise that the source asked for (applied to the output)
    seconds: float  # wall time of the analysis
    classes: tuple[str, ...]
    tracks: list[TrackSummary]
    audio: str | None  # "copied", "re-encoded" or None (the source had none)
    out: str | None = None
    csv_path: str | None = None

    def summary_rows(self) -> list[dict]:
        """One row per track: id, first and last second, frames, main label, share per class (0..1)."""
        return [{"track": t.track, "from_s": round(t.first_s, 2), "to_s": round(t.last_s, 2), "frames": t.frames,
                 "main": t.main_label, **{c: round(t.share[c], 3) for c in self.classes}} for t in self.tracks]


def probe(path: str | os.PathLike) -> dict:
    """Duration, frame rate, size and frame count of a video, without decoding it.

    Raises:
        VideoError: missing file, not a video, a still image, no video stream.
    """
    with _open(path) as container:
        stream = container.streams.video[0]
        return {"duration_s": _duration(container, stream), "fps": _rate(stream), "frames": int(stream.frames or 0),
                "width": stream.codec_context.width, "height": stream.codec_context.height,
                "audio": bool(container.streams.audio)}


def _open(path: str | os.PathLike):
    import av

    p = Path(path)
    if not p.is_file():
        raise VideoError(f"'{p}': no such file")
    if p.stat().st_size == 0:
        raise VideoError(f"'{p}' is an empty file (0 bytes)")
    try:
        container = av.open(str(p), metadata_errors="ignore")
    except av.error.FFmpegError as err:
        raise VideoError(f"'{p.name}' is not a video file that can be read ({err.strerror or err})") from None
    if container.format.name in IMAGE_FORMATS or container.format.name.endswith("_pipe"):
        container.close()
        raise VideoError(f"'{p.name}' is a still image, not a video: use `predict` for photos")
    if not container.streams.video:
        container.close()
        raise VideoError(f"'{p.name}' has no video stream")
    return container


def _rate(stream) -> float:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return float(rate) if rate else 0.0


def _duration(container, stream) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000  # AV_TIME_BASE
    return 0.0


@dataclass
class Frame:
    index: int
    time_s: float
    pts: int | None
    rgb: np.ndarray  # (H, W, 3) uint8, upright
    rotation: int = 0  # degrees counter-clockwise the stream asked for, already applied to `rgb`


def read_frames(path: str | os.PathLike) -> Iterator[Frame]:
    """Decoded frames of a video's first video stream, upright, with their presentation times.

    Raises:
        VideoError: as `probe`, or when decoding fails part-way (after the frames before it).
    """
    with _open(path) as container:
        stream = container.streams.video[0]
        yield from _decode(container, stream, None, None)


def _decode(container, stream, audio_in, on_audio) -> Iterator[Frame]:
    """Frames of `stream`; packets of `audio_in` go to `on_audio`. Raises VideoError on a broken packet."""
    import av

    index = 0
    streams = [stream] + ([audio_in] if audio_in is not None else [])
    t0 = stream.start_time or 0
    try:
        for packet in container.demux(*streams):
            if packet.stream is audio_in:
                if packet.dts is not None:  # the demuxer's last, empty packet flushes nothing here
                    on_audio(packet)
                continue
            for frame in packet.decode():
                rgb = frame.to_ndarray(format="rgb24")
                k = round((frame.rotation or 0) / 90) % 4
                if k:
                    rgb = np.ascontiguousarray(np.rot90(rgb, k))  # counter-clockwise, as the display matrix says
                t = float((frame.pts - t0) * stream.time_base) if frame.pts is not None else index / (_rate(stream) or 30)
                yield Frame(index, t, frame.pts, rgb, 90 * k)
                index += 1
    except av.error.FFmpegError as err:
        raise VideoError(f"the video is corrupt or truncated: decoding stopped after frame {index} "
                         f"({err.strerror or err})") from None


class _Writer:
    """H.264 MP4 (yuv420p, faststart) with the source's timestamps, size and audio."""

    def __init__(self, path: Path, src_stream, audio_in, size: tuple[int, int], config: VideoConfig) -> None:
        import av

        self.container = av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"})
        rate = src_stream.average_rate or src_stream.guessed_rate or Fraction(30)
        self.stream = self.container.add_stream("libx264", rate=rate, options={"crf": str(config.crf), "preset": config.preset})
        self.stream.width, self.stream.height = size
        self.stream.pix_fmt = "yuv420p"  # what browsers play
        self.tb = src_stream.time_base or Fraction(1, 90000)
        self.stream.codec_context.time_base = self.tb  # the source's clock: a variable rate keeps its timing
        self.last_pts: int | None = None
        self.audio_in, self.audio_out, self.audio_mode = audio_in, None, None
        if audio_in is not None:
            if audio_in.codec_context.name in MP4_AUDIO:
                self.audio_out = self.container.add_stream_from_template(audio_in)
                self.audio_mode = "copied"
            else:
                self.audio_out = self.container.add_stream("aac", rate=audio_in.codec_context.sample_rate or 48000)
                self.audio_mode = "re-encoded"

    def audio(self, packet) -> None:
        if self.audio_mode == "copied":
            packet.stream = self.audio_out
            self.container.mux(packet)
        else:
            for frame in packet.decode():
                frame.pts = None  # the encoder numbers its own samples
                self.container.mux(self.audio_out.encode(frame))

    def write(self, rgb: np.ndarray, pts: int | None) -> None:
        import av

        w, h = self.stream.width, self.stream.height
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb[:h, :w]), format="rgb24")
        if pts is None or (self.last_pts is not None and pts <= self.last_pts):
            pts = 0 if self.last_pts is None else self.last_pts + 1  # decoders without timestamps, or repeats
        frame.pts, frame.time_base = pts, self.tb
        self.last_pts = pts
        self.container.mux(self.stream.encode(frame))

    def close(self) -> None:
        try:
            self.container.mux(self.stream.encode())
            if self.audio_mode == "re-encoded":
                self.container.mux(self.audio_out.encode())
        finally:
            self.container.close()


def csv_header(classes: tuple[str, ...], blendshapes: bool = True) -> list[str]:
    from .landmarks import blendshape_columns

    return ["frame", "time_s", "track", "x1", "y1", "x2", "y2", "label", "confidence", *classes,
            *(blendshape_columns() if blendshapes else ())]


def analyze_video(predictor: Predictor, src: str | os.PathLike, out: str | os.PathLike | None = None,
                  csv_path: str | os.PathLike | None = None, config: VideoConfig | None = None,
                  progress: Callable[[int, int], None] | None = None) -> VideoResult:
    """Finds, follows and classifies every face in a video.

    Args:
        predictor: the model (`load_predictor()`); every classified frame goes through `predictor.predict`.
        src: the video file.
        out: the annotated copy (H.264 MP4), or None for none.
        csv_path: one row per face per classified frame (`csv_header`); a classified frame without a
            face gets one row with an empty track and label. None for none.
        config: sampling, smoothing, detection and encoding settings.
        progress: called as progress(frames_done, frames_expected) after every frame.

    Returns:
        Counts, timing and a summary per track (its probabilities over time for `viz.plot_timeline`).

    Raises:
        VideoError: not a video, no video stream, no frames, longer than `config.max_seconds`, or broken
            part-way; in the last case `err.partial` holds the result so far, and `out` and `csv_path`
            hold the frames before the break.
    """
    from .viz import draw_faces

    config = config or VideoConfig()
    classes = predictor.classes
    t_start = time.perf_counter()
    src = Path(src)
    with _open(src) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # frame threads: decoding overlaps our work on the other core
        duration, fps = _duration(container, stream), _rate(stream)
        if config.max_seconds is not None and duration > config.max_seconds:
            raise VideoError(f"'{src.name}' is {duration:.0f} s long; the limit is {config.max_seconds:.0f} s")
        expected = int(stream.frames or round(duration * fps) or 0)
        audio_in = container.streams.audio[0] if (out is not None and container.streams.audio) else None
        state = StreamState(alpha=config.smoothing, max_missed=config.max_missed, box_smoothing=0.0,
                            detect_max_side=config.detect_max_side, min_face_fraction=config.min_face_fraction)
        kwargs = {"detect_max_side": config.detect_max_side, "min_face_fraction": config.min_face_fraction}
        writer: _Writer | None = None
        csv_file = open(csv_path, "w", newline="") if csv_path is not None else None
        rows = csv.writer(csv_file) if csv_file is not None else None
        if rows is not None:
            rows.writerow(csv_header(classes, config.blendshapes))
        history: dict[int, list[tuple[float, np.ndarray, str]]] = {}
        last: list[tuple[int, FaceResult]] = []
        n = processed = since = 0  # since: frames since the last classified one
        size, rotation, t_last, failure = (0, 0), 0, 0.0, None
        early_audio: list = []  # packets demuxed before the first frame is decoded (and the output's size known)

        def on_audio(packet) -> None:
            writer.audio(packet) if writer is not None else early_audio.append(packet)

        try:
            for frame in _decode(container, stream, audio_in, on_audio):
                if n == 0:
                    h, w = frame.rgb.shape[:2]
                    rotation, size = frame.rotation, (w, h)
                    if out is not None:
                        size = (w - w % 2, h - h % 2)  # yuv420p needs even sides
                        writer = _Writer(Path(out), stream, audio_in, size, config)
                        for packet in early_audio:
                            writer.audio(packet)
                        early_audio.clear()
                if state.new_scene(frame.rgb):  # a hard cut: whoever is there now gets a new track at once
                    since = 0
                if since == 0:
                    last = state.update_tracks(predictor.predict(frame.rgb, **kwargs), classes)
                    processed += 1
                    for tid, face in last:
                        history.setdefault(tid, []).append(
                            (frame.time_s, np.array([face.probs[c] for c in classes], np.float32), face.label))
                    if rows is not None:
                        _write_rows(rows, frame, last, classes, config.blendshapes)
                if writer is not None:
                    shown = _carried(last, state, since / config.every) if since else [f for _, f in last]
                    labels = [f"#{tid} {f.label} {f.confidence:.0%}" for (tid, _), f in zip(last, shown)]
                    writer.write(draw_faces(frame.rgb, shown, config.show_landmarks, labels=labels), frame.pts)
                n, t_last, since = n + 1, frame.time_s, (since + 1) % config.every
                if progress is not None:
                    progress(n, max(expected, n))
        except VideoError as err:
            failure = err
        finally:
            if writer is not None:
                writer.close()
            if csv_file is not None:
                csv_file.close()
        if n == 0 and failure is None:
            raise VideoError(f"'{src.name}' has a video stream but no frames could be decoded")
        if failure is None and stream.frames and n < 0.9 * stream.frames:
            failure = VideoError(f"the video is truncated: the file says {stream.frames} frames, only {n} could be read")
        result = VideoResult(
            frames=n, processed=processed, duration_s=t_last, fps=fps, size=size, rotation=rotation,
            seconds=time.perf_counter() - t_start, classes=classes, tracks=_summaries(history, classes),
            audio=writer.audio_mode if writer is not None else None,
            out=str(out) if out is not None and writer is not None else None,
            csv_path=str(csv_path) if csv_path is not None else None)
        if failure is not None:
            kept = [p for p in (result.out, result.csv_path) if p]
            raise VideoError(f"'{src.name}': {failure}. " + (f"Kept the first {n} frames in {', '.join(kept)}." if kept and n
                                                             else "Nothing was kept."), partial=result if n else None)
        return result


def _write_rows(rows, frame: Frame, faces: list[tuple[int, FaceResult]], classes: tuple[str, ...],
                blendshapes: bool = True) -> None:
    from .landmarks import blendshape_names

    names = blendshape_names() if blendshapes else ()
    t = f"{frame.time_s:.3f}"
    if not faces:
        rows.writerow([frame.index, t, "", "", "", "", "", "", "", *[""] * (len(classes) + len(names))])
    for tid, f in faces:
        shapes = [""] * len(names) if f.blendshapes is None else [f"{f.blendshapes[n]:.4f}" for n in names]
        rows.writerow([frame.index, t, tid, *(f"{v:.1f}" for v in f.box), f.label, f"{f.confidence:.4f}",
                       *(f"{f.probs[c]:.4f}" for c in classes), *shapes])


def _carried(last: list[tuple[int, FaceResult]], state: StreamState, fraction: float) -> list[FaceResult]:
    """The last classified faces, moved along their tracks' velocity for a frame between classified ones."""
    from dataclasses import replace

    by_id = {t.id: t for t in state.tracks}
    out = []
    for tid, face in last:
        t = by_id.get(tid)
        box = face.box if t is None else tuple(float(v) for v in np.asarray(face.box) + t.velocity * fraction)
        out.append(replace(face, box=box, landmarks=None if t is not None and fraction else face.landmarks))
    return out


def _summaries(history: dict[int, list[tuple[float, np.ndarray, str]]], classes: tuple[str, ...]) -> list[TrackSummary]:
    out = []
    for tid, seen in sorted(history.items()):
        labels = [s[2] for s in seen]
        share = {c: labels.count(c) / len(labels) for c in classes}
        out.append(TrackSummary(tid, seen[0][0], seen[-1][0], len(seen), share,
                                np.array([s[0] for s in seen], np.float64), np.stack([s[1] for s in seen])))
    return out


def format_summary(result: VideoResult) -> str:
    """A plain-text table: one line per track with its share of time per expression."""
    width = max(4, *(len(c) for c in result.classes))  # whole class names: "surprise", "contempt"
    head = f"{'track':>5} {'from':>7} {'to':>7} {'frames':>6}  " + " ".join(f"{c:>{width}}" for c in result.classes)
    lines = [head]
    for t in result.tracks:
        lines.append(f"{t.track:>5} {t.first_s:>6.1f}s {t.last_s:>6.1f}s {t.frames:>6}  "
                     + " ".join(f"{t.share[c]:>{width}.0%}" for c in result.classes))
    if not result.tracks:
        lines.append("(no face in any classified frame)")
    return "\n".join(lines)


def speed_note(result: VideoResult) -> str:
    """"N frames (M classified) in S s: F frames/s, X x real time"."""
    length = result.duration_s + (1 / result.fps if result.fps else 0)  # the last frame lasts a frame too
    wall = max(result.seconds, 1e-9)
    return (f"{result.frames} frames ({result.processed} classified) in {result.seconds:.1f} s: "
            f"{result.frames / wall:.1f} frames/s, {length / wall:.2f}x real time")
