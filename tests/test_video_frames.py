"""Frame sources: video files of several containers/codecs (written here with PyAV), image folders,
arrays and pushed streams; random access, rotation, variable frame rate and broken files."""

from fractions import Fraction

import av
import numpy as np
import pytest
from PIL import Image

from sam2_hf.media.frames import (
    ArrayFrames,
    FrameSource,
    ImageFolderFrames,
    StreamFrames,
    VideoDecodeError,
    VideoFileFrames,
    open_frames,
)

HEIGHT, WIDTH, NUM_FRAMES, FPS = 64, 96, 24, 12
CONTAINERS = [
    ("mp4", "libx264"),
    ("webm", "libvpx-vp9"),
    ("mkv", "libx264"),
    ("mov", "libx264"),
    ("avi", "mpeg4"),
    ("ts", "libx264"),  # MPEG-TS: seeking lands after the requested keyframe
]
RAW_H264 = ("h264", "libx264")  # an elementary stream: no timestamps, not seekable, no frame rate
LOSSY_TOLERANCE = 12  # mean absolute difference (0-255) allowed between a decoded frame and its source


def synthetic_frames(num_frames=NUM_FRAMES, height=HEIGHT, width=WIDTH) -> np.ndarray:
    """(T, H, W, 3) uint8: a horizontal gradient, a red block in the top-left corner (shows rotation)
    and a green square moving right 3 px per frame (tells frames apart)."""
    frames = np.zeros((num_frames, height, width, 3), np.uint8)
    frames[..., 2] = np.linspace(0, 200, width, dtype=np.uint8)
    frames[:, : height // 4, : width // 4] = (220, 30, 30)
    for t in range(num_frames):
        x = 3 * t % (width - 16)
        frames[t, height // 2 : height // 2 + 16, x : x + 16] = (30, 220, 30)
    return frames


def write_video(path, frames, codec, fps=FPS, pts_ms=None, rotation=None, faststart=False):
    """Encode `frames` (T, H, W, 3) with PyAV; `pts_ms` gives per-frame times (variable frame rate)."""
    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        stream.codec_context.gop_size = 6  # several keyframes, so seeking has somewhere to go
        if pts_ms is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for t, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            if pts_ms is not None:
                frame.pts, frame.time_base = pts_ms[t], Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def assert_close(decoded, source):
    assert decoded.shape == source.shape and decoded.dtype == np.uint8
    assert np.abs(decoded.astype(int) - source).mean() < LOSSY_TOLERANCE


def assert_frames_match(decoded, sources):
    """Each decoded frame is close to its source, and closer to it than to any other frame."""
    assert len(decoded) == len(sources)
    for t, frame in enumerate(decoded):
        assert_close(frame, sources[t])
        errors = np.abs(frame.astype(int)[None] - sources).mean(axis=(1, 2, 3))
        assert errors.argmin() == t


def skip_unless_encoder(codec):
    if codec not in av.codecs_available:
        pytest.skip(f"PyAV's bundled FFmpeg has no {codec} encoder")


@pytest.fixture(scope="module")
def sources():
    return synthetic_frames()


@pytest.fixture(scope="module")
def videos(tmp_path_factory, sources):
    """{extension: path} of the synthetic clip in every container whose encoder is available."""
    folder = tmp_path_factory.mktemp("videos")
    return {
        ext: write_video(folder / f"clip.{ext}", sources, codec)
        for ext, codec in [*CONTAINERS, RAW_H264]
        if codec in av.codecs_available
    }


@pytest.mark.parametrize("ext,codec", CONTAINERS)
def test_containers_decode_with_metadata_and_content(videos, sources, ext, codec):
    skip_unless_encoder(codec)
    with open_frames(str(videos[ext])) as frames:
        assert isinstance(frames, VideoFileFrames)
        assert (frames.num_frames, len(frames), frames.height, frames.width) == (NUM_FRAMES, NUM_FRAMES, HEIGHT, WIDTH)
        assert frames.fps == pytest.approx(FPS)
        np.testing.assert_allclose(frames.timestamps - frames.timestamps[0], np.arange(NUM_FRAMES) / FPS, atol=1e-3)
        assert_frames_match(list(frames), sources)


@pytest.mark.parametrize("ext", ["mp4", "mkv", "avi", "ts", "h264"])  # mkv, ts, h264: no frame count in metadata
def test_random_and_backward_access_equal_sequential(videos, ext):
    with VideoFileFrames(videos[ext]) as frames:
        sequential = list(frames)
    with VideoFileFrames(videos[ext]) as frames:
        for t in [17, 3, 23, 0, 12, 11, 10, 9, 5, 6, 22, 1]:
            np.testing.assert_array_equal(frames.frame(t), sequential[t])
        assert len(sequential) == NUM_FRAMES and (frames.timestamps is None) == (ext == "h264")


def test_sequential_reads_never_seek_and_nearby_frames_are_cached(videos, monkeypatch):
    seeks = []
    original = VideoFileFrames._seek_to_keyframe
    monkeypatch.setattr(VideoFileFrames, "_seek_to_keyframe", lambda self, k: (seeks.append(k), original(self, k)))
    with VideoFileFrames(videos["mp4"], cache_size=4) as frames:
        for t in range(NUM_FRAMES):
            frames.frame(t)
        assert seeks == []
        for t in [22, 21, 20, 23, 21]:  # back and forth within the cache
            frames.frame(t)
        assert seeks == []
        frames.frame(14)
        assert seeks == [12]  # keyframes every 6 frames


def test_returned_frames_are_copies(videos):
    with VideoFileFrames(videos["mp4"]) as frames:
        first = frames.frame(0)
        first[:] = 0
        assert frames.frame(0).any()


@pytest.mark.parametrize("degrees", [90, 180, -90])
def test_rotation_metadata_gives_upright_frames(tmp_path, sources, degrees):
    """`set_display_rotation(d)` asks players to turn the picture d degrees counter-clockwise."""
    path = write_video(tmp_path / "rotated.mp4", sources[:6], "libx264", rotation=degrees)
    upright = np.rot90(sources[:6], k=degrees // 90, axes=(1, 2))
    with VideoFileFrames(path) as frames:
        assert (frames.height, frames.width) == upright.shape[1:3]
        assert_frames_match(list(frames), upright)
        np.testing.assert_array_equal(frames.frame(4), list(VideoFileFrames(path))[4])


@pytest.mark.parametrize("ext", ["mp4", "mkv"])
def test_variable_frame_rate_indexes_frames_in_order_with_their_timestamps(tmp_path, ext):
    pts_ms = [0, 40, 80, 200, 240, 500, 520, 540, 900, 1000]
    sources = synthetic_frames(len(pts_ms))
    path = write_video(tmp_path / f"vfr.{ext}", sources, "libx264", pts_ms=pts_ms)
    with VideoFileFrames(path) as frames:
        assert frames.num_frames == len(pts_ms)
        np.testing.assert_allclose(frames.timestamps, np.array(pts_ms) / 1000, atol=1e-3)
        assert len(set(np.diff(pts_ms))) > 1
        assert_frames_match(list(frames), sources)
        assert_close(frames.frame(6), sources[6])


def test_index_out_of_range_names_index_and_count(videos):
    with VideoFileFrames(videos["mp4"]) as frames:
        for bad in [NUM_FRAMES, -1]:
            with pytest.raises(IndexError, match=rf"{bad}.*{NUM_FRAMES} frames"):
                frames.frame(bad)


def test_not_a_video_raises_video_decode_error(tmp_path):
    path = tmp_path / "noise.mp4"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 20_000, dtype=np.uint8).tobytes())
    with pytest.raises(VideoDecodeError, match="noise.mp4") as error:
        open_frames(path)
    assert isinstance(error.value, ValueError) and error.value.frame_index is None


def test_file_without_video_stream(tmp_path):
    path = tmp_path / "audio.mkv"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000, layout="mono")
        samples = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        samples.sample_rate = 8000
        container.mux(stream.encode(samples))
        container.mux(stream.encode())
    with pytest.raises(VideoDecodeError, match="no video stream"):
        VideoFileFrames(path)


def test_zero_frame_video(tmp_path):
    path = tmp_path / "empty.avi"  # AVI keeps a video stream with no frames (MP4 drops the track)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=FPS)
        stream.height, stream.width, stream.pix_fmt = HEIGHT, WIDTH, "yuv420p"
        container.start_encoding()
    with pytest.raises(VideoDecodeError, match="has no frames"):
        VideoFileFrames(path)


@pytest.mark.parametrize("ext", ["mp4", "mkv"])
def test_truncated_video_keeps_the_frames_before_the_cut(tmp_path, sources, ext):
    """Cut halfway through the frame data. The MP4 has its index up front (+faststart), else the cut loses it."""
    path = write_video(tmp_path / f"full.{ext}", sources, "libx264", faststart=ext == "mp4")
    with av.open(str(path)) as container:
        data_start = next(container.demux(video=0)).pos
    data = path.read_bytes()
    cut = tmp_path / f"cut.{ext}"
    cut.write_bytes(data[: (data_start + len(data)) // 2])
    decoded = []
    with VideoFileFrames(cut) as frames:
        try:
            for frame in frames:
                decoded.append(frame)
        except VideoDecodeError as error:
            assert error.frame_index == len(decoded) and str(cut) in str(error)
        assert 0 < len(decoded) < NUM_FRAMES
        assert_frames_match(decoded, sources[: len(decoded)])
        for t in reversed(range(len(decoded))):
            np.testing.assert_array_equal(frames.frame(t), decoded[t])


def save_images(folder, names, frames):
    folder.mkdir(exist_ok=True)
    for name, rgb in zip(names, frames):
        Image.fromarray(rgb).save(folder / name)


def test_image_folder_numeric_order_and_content(tmp_path, sources):
    names = [f"{t}.{'png' if t % 2 else 'jpg'}" for t in range(12)]  # unpadded: "10" < "2" as text
    save_images(tmp_path / "frames", names, sources[:12])
    (tmp_path / "frames" / "notes.txt").write_text("not a frame")
    frames = open_frames(tmp_path / "frames")
    assert isinstance(frames, ImageFolderFrames)
    assert (len(frames), frames.height, frames.width, frames.fps) == (12, HEIGHT, WIDTH, None)
    assert_frames_match(list(frames), sources[:12])
    np.testing.assert_array_equal(frames.frame(11), sources[11])  # PNG is lossless


def test_image_folder_natural_order_and_mode_conversion(tmp_path, sources):
    folder = tmp_path / "frames"
    names = ["frame_2.png", "frame_10.png", "frame_1.png"]
    save_images(folder, names, sources[[2, 10, 1]])
    Image.fromarray(sources[3]).convert("RGBA").save(folder / "frame_3.png")
    Image.fromarray(sources[4]).convert("L").save(folder / "frame_4.PNG")
    frames = ImageFolderFrames(folder)
    assert [p.name for p in frames.files] == [
        "frame_1.png",
        "frame_2.png",
        "frame_3.png",
        "frame_4.PNG",
        "frame_10.png",
    ]
    np.testing.assert_array_equal(frames.frame(2), sources[3])
    gray = frames.frame(3)
    assert gray.shape == (HEIGHT, WIDTH, 3) and (gray == gray[..., :1]).all()


def test_image_folder_errors(tmp_path, sources):
    save_images(tmp_path / "mixed", ["0.png", "1.png"], [sources[0], sources[1, :32]])
    frames = ImageFolderFrames(tmp_path / "mixed")
    with pytest.raises(VideoDecodeError, match="1.png") as error:
        frames.frame(1)
    assert error.value.frame_index == 1 and error.value.source == tmp_path / "mixed" / "1.png"
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("")
    with pytest.raises(ValueError, match="No .*images"):
        open_frames(tmp_path / "empty")


def test_image_folder_ignores_hidden_and_non_image_files(tmp_path, sources):
    """A folder copied from macOS: 00000.jpg ... plus AppleDouble companions ._00000.jpg (not images)."""
    folder = tmp_path / "frames"
    save_images(folder, [f"{t:05d}.jpg" for t in range(12)], sources[:12])
    for t in range(12):
        (folder / f"._{t:05d}.jpg").write_bytes(b"\x00\x05\x16\x07" + bytes(60))  # AppleDouble header
    (folder / ".DS_Store").write_bytes(bytes(16))
    (folder / "labels.json").write_text("{}")
    frames = open_frames(folder)
    assert len(frames) == 12 and [p.name for p in frames.files] == [f"{t:05d}.jpg" for t in range(12)]
    assert [f.shape for f in frames] == [(HEIGHT, WIDTH, 3)] * 12


def test_image_folder_unreadable_frame_names_file_and_index(tmp_path, sources):
    folder = tmp_path / "frames"
    save_images(folder, [f"{t:05d}.png" for t in range(6)], sources[:6])
    (folder / "00003.png").write_bytes(b"not a png")
    (folder / "00004.png").write_bytes((folder / "00005.png").read_bytes()[:200])  # truncated
    frames = open_frames(folder)
    np.testing.assert_array_equal(frames.frame(2), sources[2])
    for index in (3, 4):
        with pytest.raises(VideoDecodeError, match=f"0000{index}.png") as error:
            frames.frame(index)
        assert error.value.frame_index == index and error.value.source == folder / f"0000{index}.png"
    np.testing.assert_array_equal(frames.frame(5), sources[5])  # the frames around it stay readable


def test_sixteen_bit_frames_are_refused_naming_the_mode(tmp_path, sources):
    folder = tmp_path / "frames"
    folder.mkdir()
    for t in range(3):
        Image.fromarray(sources[t, ..., 0].astype(np.uint16) * 16).save(folder / f"{t}.png")  # 12-bit data
    assert Image.open(folder / "0.png").mode.startswith("I")
    with pytest.raises(VideoDecodeError, match=r"0.png \(frame 0\).*mode 'I") as error:
        open_frames(folder)
    assert error.value.frame_index == 0


def test_float_frames_in_unit_range_are_read_as_8_bit(sources):
    frames = open_frames(sources[:3].astype(np.float32) / 255)
    np.testing.assert_array_equal(frames.frame(1), sources[1])


def test_arrays_and_lists(sources):
    frames = open_frames(sources)
    assert isinstance(frames, ArrayFrames) and (len(frames), frames.height, frames.width) == (NUM_FRAMES, HEIGHT, WIDTH)
    np.testing.assert_array_equal(frames.frame(5), sources[5])
    gray = open_frames(sources[..., 0]).frame(2)
    np.testing.assert_array_equal(gray, np.repeat(sources[2, ..., :1], 3, axis=2))
    pil = open_frames([Image.fromarray(rgb) for rgb in sources[:3]])
    np.testing.assert_array_equal(pil.frame(1), sources[1])
    rgba = open_frames((np.dstack([sources[0], np.full((HEIGHT, WIDTH), 7, np.uint8)]),))
    np.testing.assert_array_equal(rgba.frame(0), sources[0])
    assert [f.shape for f in pil] == [(HEIGHT, WIDTH, 3)] * 3


def test_array_errors(sources):
    with pytest.raises(ValueError, match="same size"):
        ArrayFrames([sources[0], sources[1, :10]])
    with pytest.raises(ValueError, match="one image"):
        open_frames(sources[0])
    with pytest.raises(VideoDecodeError, match=r"frame array \(frame 0\).*values in \[0, 1\]"):
        open_frames(sources.astype(np.float32))  # 0..255 floats: one policy for every image, see test_inputs
    with pytest.raises(VideoDecodeError, match=r"frame 0.*uint16"):
        open_frames(sources.astype(np.uint16))
    with pytest.raises(ValueError, match="No frames"):
        open_frames([])


def test_open_frames_dispatch(tmp_path, videos):
    frames = VideoFileFrames(videos["mp4"])
    assert open_frames(frames) is frames
    assert isinstance(open_frames(videos["mov"]), VideoFileFrames)  # pathlib.Path
    with pytest.raises(TypeError, match="dict"):
        open_frames({"frames": []})
    with pytest.raises(FileNotFoundError):
        open_frames(tmp_path / "missing.mp4")


def test_stream_push_and_eviction(sources):
    stream = StreamFrames(max_buffered=3, fps=30)
    assert isinstance(stream, FrameSource) and stream.num_frames is None and stream.height is None
    buffer = sources[0].copy()
    for t in range(5):
        buffer[:] = sources[t]  # a camera loop reusing its buffer
        assert stream.push(buffer) == t
    assert (stream.height, stream.width) == (HEIGHT, WIDTH)
    with pytest.raises(TypeError, match="unknown"):
        len(stream)
    np.testing.assert_array_equal(stream.frame(2), sources[2])
    np.testing.assert_array_equal(stream.frame(4), sources[4])
    with pytest.raises(IndexError, match="evicted.*last 3"):
        stream.frame(1)
    with pytest.raises(IndexError, match="5 frames pushed"):
        stream.frame(5)
    assert len(list(stream)) == 3
    with pytest.raises(ValueError, match="32x64"):
        stream.push(sources[0, :, :32])
    stream.end()
    assert stream.num_frames == len(stream) == 5
    with pytest.raises(IndexError, match="out of range"):
        stream.frame(5)
    with pytest.raises(RuntimeError, match="ended"):
        stream.push(sources[5])
