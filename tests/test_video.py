"""video.py: recorded clips made here from the sample photos, through the shipped model.

Clips: a moving face, two faces crossing, a face that leaves and comes back; rotation metadata,
an audio track and a variable frame rate; a cut-off file; files that are no video.
"""
from __future__ import annotations

import csv
import json

import av
import numpy as np
import pytest

from fusion_fer import load_predictor
from fusion_fer.__main__ import main
from fusion_fer.samples import face_clip, grace_hopper
from fusion_fer.video import VideoConfig, VideoError, analyze_video, csv_header, probe, read_frames


@pytest.fixture(scope="module")
def predictor():
    return load_predictor()


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("clips")
    return {
        "moving": face_clip(d / "moving.mp4", "moving", seconds=1.0),
        "crossing": face_clip(d / "crossing.mp4", "crossing", seconds=2.0),
        "gaps": face_clip(d / "gaps.mp4", "gaps", seconds=2.0),
        "phone": face_clip(d / "phone.mp4", "moving", seconds=1.0, audio=True, rotation=90, variable_rate=True),
    }


def _rows(path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_labels_equal_predict_on_the_same_frames_when_smoothing_is_off(predictor, clips, tmp_path):
    config = VideoConfig(smoothing=1.0)
    analyze_video(predictor, clips["moving"], csv_path=tmp_path / "f.csv", config=config)
    rows = _rows(tmp_path / "f.csv")
    kwargs = {"detect_max_side": config.detect_max_side, "min_face_fraction": config.min_face_fraction}
    frames = list(read_frames(clips["moving"]))
    assert len(frames) == 30 and len(rows) == 30  # one face in every frame
    for frame, row in zip(frames, rows):
        faces = predictor.predict(frame.rgb, **kwargs)
        assert len(faces) == 1 and int(row["frame"]) == frame.index
        assert row["label"] == faces[0].label
        assert abs(float(row["confidence"]) - faces[0].confidence) < 1e-3
        assert np.allclose([float(row[k]) for k in ("x1", "y1", "x2", "y2")], faces[0].box, atol=0.06)
        assert abs(sum(float(row[c]) for c in predictor.classes) - 1) < 2e-3


def test_two_crossing_faces_keep_their_track_ids(predictor, clips, tmp_path):
    result = analyze_video(predictor, clips["crossing"], csv_path=tmp_path / "c.csv")
    rows = _rows(tmp_path / "c.csv")
    assert [t.track for t in result.tracks] == [1, 2]
    assert all(t.frames >= 58 for t in result.tracks)  # both seen in (almost) all 60 frames
    for track in ("1", "2"):
        xs = [(float(r["x1"]) + float(r["x2"])) / 2 for r in rows if r["track"] == track]
        steps = np.diff(xs)
        # one face moves right and the other left all the way: a swap of ids would reverse a track's direction
        assert (steps > -4).all() or (steps < 4).all(), (track, xs)
        assert abs(xs[-1] - xs[0]) > 200
    directions = {r["track"]: r["label"] for r in rows}
    assert len(directions) == 2


def test_frames_without_a_face_get_rows_and_every_nth_frame_is_classified(predictor, clips, tmp_path):
    out, table = tmp_path / "g.mp4", tmp_path / "g.csv"
    result = analyze_video(predictor, clips["gaps"], out=out, csv_path=table, config=VideoConfig(every=3))
    rows = _rows(table)
    assert list(rows[0]) == csv_header(predictor.classes)
    faced = [r for r in rows if r["track"] != ""]
    assert all(0 <= float(r["bs_jawOpen"]) <= 1 for r in faced) and max(float(r["bs_eyeSquintLeft"]) for r in faced) > 0
    assert all(r["bs_jawOpen"] == "" for r in rows if r["track"] == "")
    frames = sorted({int(r["frame"]) for r in rows})
    assert frames == list(range(0, 60, 3))  # every classified frame has a row, no other frame does
    empty = [int(r["frame"]) for r in rows if r["track"] == ""]
    assert empty and all(20 <= f < 40 for f in empty) and all(r["label"] == "" for r in rows if r["track"] == "")
    assert result.processed == 20 and result.frames == 60
    # the annotated copy has every frame, at the source's times, and a box drawn between classified frames too
    src = list(read_frames(clips["gaps"]))
    with av.open(str(out)) as c:
        assert c.streams.video[0].codec_context.name == "h264"
        decoded = [(f.time, f.to_ndarray(format="rgb24")) for f in c.decode(video=0)]
    assert len(decoded) == 60
    assert np.allclose([t for t, _ in decoded], [f.time_s for f in src], atol=1e-3)
    for k in (1, 2):  # carried frames: the box colour differs from the source around the face
        assert np.abs(decoded[k][1].astype(int) - src[k].rgb.astype(int)).max() > 100


def test_rotation_audio_and_variable_frame_rate_are_kept(predictor, clips, tmp_path):
    out = tmp_path / "p.mp4"
    result = analyze_video(predictor, clips["phone"], out=out, csv_path=tmp_path / "p.csv")
    assert result.rotation == 90 and result.size == (640, 480) and result.audio == "copied"
    with av.open(str(clips["phone"])) as c:
        src_times = [f.time for f in c.decode(video=0)]
        c.seek(0)
        src_audio = sum(1 for p in c.demux(audio=0) if p.dts is not None)
    with av.open(str(out)) as c:
        frames = list(c.decode(video=0))
        assert (frames[0].width, frames[0].height) == (640, 480) and (frames[0].rotation or 0) == 0  # upright
        times = [f.time for f in frames]
        c.seek(0)
        out_audio = sum(1 for p in c.demux(audio=0) if p.dts is not None)
        assert c.streams.audio[0].codec_context.name == "aac"
    assert np.allclose(times, src_times, atol=1e-3)
    assert len(set(np.round(np.diff(times), 3))) == 2  # 1/30 s and 2/30 s steps: the variable rate survives
    assert out_audio == src_audio
    # upright means the face is found the right way up: the box is taller than wide
    rows = _rows(tmp_path / "p.csv")
    assert all(float(r["y2"]) - float(r["y1"]) > float(r["x2"]) - float(r["x1"]) for r in rows)


def test_a_cut_off_file_keeps_what_came_before(predictor, tmp_path):
    whole = face_clip(tmp_path / "whole.mp4", "moving", seconds=2.0, faststart=True)
    data = whole.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[:len(data) * 6 // 10])
    with pytest.raises(VideoError, match="truncated") as info:
        analyze_video(predictor, cut, out=tmp_path / "o.mp4", csv_path=tmp_path / "o.csv")
    partial = info.value.partial
    assert partial is not None and 0 < partial.frames < 60
    assert "Kept the first" in str(info.value)
    assert len(_rows(tmp_path / "o.csv")) == partial.processed  # one face per frame, every row flushed
    with av.open(str(tmp_path / "o.mp4")) as c:  # the annotated part is a finished, playable file
        assert sum(1 for _ in c.decode(video=0)) == partial.frames


def test_files_that_are_no_video_get_clear_errors(predictor, tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video at all")
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    no_frames = tmp_path / "no_frames.mp4"
    with av.open(str(no_frames), "w") as c:
        s = c.add_stream("libx264", rate=30)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        c.start_encoding()  # header and an empty video track, no frame
        c.mux(s.encode())
    sound = tmp_path / "sound.m4a"
    with av.open(str(sound), "w", format="mp4") as c:
        s = c.add_stream("aac", rate=44100)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="flt", layout="mono")
        frame.sample_rate = 44100
        c.mux(s.encode(frame))
        c.mux(s.encode())
    # FFmpeg drops a video track without samples, so a video of no frames reads as one without a video stream
    cases = {text: "not a video file", empty: "empty file", no_frames: "no video stream", sound: "no video stream",
             grace_hopper(): "still image", tmp_path / "missing.mp4": "no such file"}
    for path, message in cases.items():
        with pytest.raises(VideoError, match=message):
            analyze_video(predictor, path, csv_path=tmp_path / "x.csv")
    long = face_clip(tmp_path / "long.mp4", "moving", seconds=3.0, fps=10, size=(64, 48))
    with pytest.raises(VideoError, match="the limit is 2 s"):
        analyze_video(predictor, long, config=VideoConfig(max_seconds=2))
    assert probe(long)["duration_s"] == pytest.approx(3.0, abs=0.15)
    with pytest.raises(ValueError, match="every must be 1 or more"):
        VideoConfig(every=0)


def test_command_line_writes_video_csv_plot_and_summary(clips, tmp_path, capsys):
    out, table, plot, summary = (tmp_path / n for n in ("a.mp4", "f.csv", "t.png", "s.json"))
    code = main(["video", str(clips["crossing"]), "--out", str(out), "--csv", str(table), "--plot", str(plot),
                 "--json", str(summary), "--every", "2", "--no-progress"])
    printed = capsys.readouterr()
    assert code == 0
    assert out.stat().st_size > 10_000 and plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    tracks = json.loads(summary.read_text())["tracks"]
    assert [t["track"] for t in tracks] == [1, 2]
    assert all(abs(sum(t[c] for c in ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")) - 1) < 0.01
               for t in tracks)
    assert "track" in printed.out and "frames/s" in printed.err
    header = printed.out.splitlines()[0].split()
    assert {"surprise", "neutral", "happy"} <= set(header)  # whole class names, not "surpris"
    bad = tmp_path / "bad.mp4"
    bad.write_text("nope")
    assert main(["video", str(bad), "--csv", str(tmp_path / "b.csv")]) == 2
    assert "not a video file" in capsys.readouterr().err


def test_a_hard_cut_to_someone_else_in_the_same_place_starts_a_new_track(predictor, hopper_rgb, astronaut_rgb, tmp_path):
    """Ten frames of one portrait, then a cut to another at the same place: two tracks, the second from the
    cut on (classified at once, though it falls between every-3rd frames)."""
    from .helpers import portrait_frame

    path = tmp_path / "cut.mp4"
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=10)
        s.width, s.height, s.pix_fmt = 640, 480, "yuv420p"
        for rgb in [portrait_frame(hopper_rgb)] * 10 + [portrait_frame(astronaut_rgb)] * 10:
            for packet in s.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                c.mux(packet)
        for packet in s.encode():
            c.mux(packet)
    result = analyze_video(predictor, path, csv_path=tmp_path / "cut.csv", config=VideoConfig(every=3))
    rows = _rows(tmp_path / "cut.csv")
    assert [t.track for t in result.tracks] == [1, 2]
    assert {int(r["frame"]) for r in rows if r["track"] == "2"} == {10, 13, 16, 19}
    assert max(int(r["frame"]) for r in rows if r["track"] == "1") == 9
