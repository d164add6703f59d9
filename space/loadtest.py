"""Many people on the Space at once, through gradio_client: `python -m space.loadtest --users 50`.

Starts the app (`app.py`, a subprocess on a free localhost port, its own Gradio cache folder) on a random-weight
SAM 2.1 tiny at 256 px, lets one warm-up visitor through, then measures the server's resident memory and the
disk its cache folder holds. Then `--users` visitors arrive at the same moment, each in a thread with a client of
its own: upload the same clip, pick the preset, click an object, name it after themselves, track both ways (the
downloads are written at the end of the run) and read the export's object names; one more visitor only clicks
and changes frames while the others track; `--leavers` more close their tab (their client) after the first tracked
frame. When everyone has left (their clients closed), memory and disk are measured again.

Reported: how many were served, served after waiting in line (a place > 1 seen), refused (with the message they
saw), cut (a response that did not arrive whole) or failed; per-visitor time; click and frame-change latency
(median, 95th percentile) while others track; memory and disk before and after; session folders left behind;
exceptions in the server's log. `--out` writes the report as JSON and markdown (default bench/results/).
Timings depend on the machine: they are reported here, never asserted (tests/test_space_load.py runs 8 visitors
and asserts what must hold anywhere: nobody cut, refused or failed, every export holding only its own object).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .config import DEFAULT_SPEED, SPEEDS

REPO = Path(__file__).resolve().parents[1]
STATUS, FILES = 1, 8  # /track's outputs (the State is not one): the status line, the downloads
CLIP = (12, 96, 128)  # frames, height, width of the synthetic clip every visitor uploads
CLICK = (26, 25)  # a pixel on the clip's red disc on frame 0
CUT = ("peer closed connection", "incomplete", "RemoteProtocolError", "Content-Length")  # a response cut short


@dataclass
class Visit:
    """What one visitor got."""

    user: int
    outcome: str = "served"  # "served", "refused", "cut" or "error"
    message: str = ""  # the refusal or the error, as the visitor saw it
    place: int = 0  # the highest place in line the visitor was shown (0: never waited)
    seconds: float = 0.0  # from arrival to the last response
    objects: list[str] = field(default_factory=list)  # the object names in the visitor's export


@dataclass
class Latencies:
    """The click-only visitor's response times (s), while at least one other visitor was tracking."""

    click: list[float] = field(default_factory=list)
    frame: list[float] = field(default_factory=list)


class Tracking:
    """How many visitors are tracking right now (the click-only visitor's latencies count while any are)."""

    def __init__(self):
        self._count, self._lock = 0, threading.Lock()

    @contextmanager
    def run(self) -> Iterator[None]:
        with self._lock:
            self._count += 1
        try:
            yield
        finally:
            with self._lock:
                self._count -= 1

    @property
    def now(self) -> int:
        return self._count


def percentile(values: list[float], q: float) -> float | None:
    """The `q` quantile (0..1) of `values`, linear between ranks; None for no values."""
    if not values:
        return None
    values = sorted(values)
    position = q * (len(values) - 1)
    low, high = int(position), min(int(position) + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (position - low)


def classify(error: BaseException) -> str:
    """ "cut" for a response that did not arrive whole, else "error"."""
    text = f"{type(error).__name__}: {error} {error.__cause__!r}"
    return "cut" if any(marker in text for marker in CUT) else "error"


def call(client, api_name: str, *args, place: list[int] | None = None):
    """One request, polling its status every 0.1 s: -> its result (a generator's last output). The highest place
    in line shown (1 = next) goes into `place[0]`."""
    from gradio_client.utils import Status

    job = client.submit(*args, api_name=api_name)
    while not job.done():
        update = job.status()
        if update.code == Status.IN_QUEUE and update.rank is not None and place is not None:
            place[0] = max(place[0], update.rank + 1)
        time.sleep(0.1)
    return job.result()


def export_names(files) -> list[str]:
    """The object names in a /track or /export downloads output (the PNG zip's masks/objects.json)."""
    files = files["value"] if isinstance(files, dict) else files  # a component update, or the value itself
    paths = [f["path"] if isinstance(f, dict) else f for f in files or []]
    archive = next(Path(p) for p in paths if str(p).endswith("_masks.zip"))
    with zipfile.ZipFile(archive) as zf:
        return [o["name"] for o in json.loads(zf.read("masks/objects.json")).values()]


def visit(url: str, clip: Path, user: int, preset: str, tracking: Tracking | None = None, leave: bool = False) -> Visit:
    """One visitor's whole flow (see the module docstring); never raises. `leave`: close the tab (the client) once
    the first tracked frame arrives instead of waiting for the run ("left" when it did). A leaver's client downloads
    no files: a closed tab fetches nothing more, where gradio_client's job thread would go on fetching each later
    update's images after `close`, racing the server freeing the session's files (a FileNotFoundError in its log)."""
    from gradio_client import Client, handle_file

    result, began, place = Visit(user), time.perf_counter(), [0]
    client = None
    try:
        client = Client(url, verbose=False, **({"download_files": False} if leave else {}))
        out = call(client, "/load_video", handle_file(str(clip)), place=place)
        if out[STATUS].startswith("The Space is full"):
            result.outcome, result.message = "refused", out[STATUS]
            return result
        call(client, "/set_speed", preset, place=place)
        call(client, "/add_point", 0, 1, "positive", *CLICK, place=place)
        call(client, "/rename_object", 1, f"visitor {user}", place=place)
        if leave:
            job = client.submit(0, "both", api_name="/track")
            deadline = time.monotonic() + 600
            while not job.outputs() and not job.done() and time.monotonic() < deadline:
                time.sleep(0.1)
            result.outcome = "left" if job.outputs() else "error"
            result.message = "" if job.outputs() else "no tracked frame came before the visitor left"
            return result
        with tracking.run() if tracking is not None else nullcontext():
            final = call(client, "/track", 0, "both", place=place)
        if not final[STATUS].startswith("Tracked") or not final[STATUS].endswith("Downloads ready."):
            result.outcome, result.message = "error", final[STATUS]
            return result
        result.objects = export_names(final[FILES])
    except Exception as e:  # every failure is counted, by kind
        result.outcome, result.message = classify(e), f"{type(e).__name__}: {e}"[:300]
    finally:
        result.place, result.seconds = place[0], time.perf_counter() - began
        if client is not None:
            client.close()  # the heartbeat stops: the server ends the session (demo.unload)
    return result


def click_while_others_track(url: str, clip: Path, started: threading.Event, over: threading.Event,
                             tracking: Tracking) -> tuple[Latencies, list[str]]:  # fmt: skip
    """The click-only visitor: loads the clip first, then clicks and changes frames (cycling through them) until
    `over`; -> (latencies of the requests made while someone was tracking, the errors seen)."""
    from gradio_client import Client, handle_file

    client, latencies, errors = Client(url, verbose=False), Latencies(), []
    try:
        call(client, "/load_video", handle_file(str(clip)))
        started.set()
        frame = 0
        while not over.is_set():
            requests = (("frame", ("/show_frame", frame)), ("click", ("/add_point", frame, 1, "positive", *CLICK)))
            for kind, args in requests:
                busy = tracking.now > 0
                began = time.perf_counter()
                try:
                    client.predict(*args[1:], api_name=args[0])  # blocking: the time is the response's
                except Exception as e:
                    errors.append(f"{classify(e)}: {type(e).__name__}: {e}"[:300])
                    continue
                if busy:
                    getattr(latencies, kind).append(time.perf_counter() - began)
            frame = (frame + 1) % CLIP[0]
    finally:
        started.set()
        client.close()
    return latencies, errors


# ------------------------------------------------------------------------------ the server
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def resident_mb(pid: int) -> float | None:
    """The process's resident memory (VmRSS, MiB); None where /proc is not there."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def disk_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


class Server:
    """`python app.py --model MODEL` in a subprocess with its own Gradio cache folder under `work`; log in work."""

    def __init__(self, model: Path, work: Path):
        self.cache, self.log_path, port = work / "gradio-cache", work / "server.log", free_port()
        self.url = f"http://127.0.0.1:{port}/"
        env = {**os.environ, "GRADIO_TEMP_DIR": str(self.cache), "GRADIO_ANALYTICS_ENABLED": "False"}
        command = [sys.executable, str(REPO / "app.py"), "--model", str(model), "--device", "cpu"]
        command += ["--host", "127.0.0.1", "--port", str(port)]
        self.log = self.log_path.open("w")
        self.process = subprocess.Popen(command, cwd=REPO, env=env, stdout=self.log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the app exited ({self.process.returncode}); see {self.log_path}")
            try:
                with urllib.request.urlopen(self.url, timeout=5):
                    return
            except OSError:
                time.sleep(0.5)
        raise TimeoutError(f"the app did not answer at {self.url} within {timeout:.0f} s; see {self.log_path}")

    def measure(self) -> dict:
        sessions = [d for d in self.cache.glob("sam2-space-sessions-*/session-*") if d.is_dir()]
        return {
            "rss_mb": resident_mb(self.process.pid),
            "disk_mb": disk_mb(self.cache),
            "session_folders": len(sessions),
        }

    def exceptions(self) -> list[str]:
        """The log's lines that report an exception (tracebacks and 'Error' lines)."""
        lines = self.log_path.read_text(errors="replace").splitlines()
        return [line for line in lines if "Traceback" in line or "Error" in line.split(":")[0]]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


def settle(server: Server, seconds: float) -> dict:
    """Wait until every session folder is gone (or `seconds` passed), then measure."""
    deadline = time.monotonic() + seconds
    while server.measure()["session_folders"] and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(1.0)
    return server.measure()


# ------------------------------------------------------------------------------ the run
def save_model(folder: Path) -> Path:
    """The random-weight SAM 2.1 tiny at 256 px the run serves (objects judged present, as the Space's own)."""
    import torch

    from sam2_hf import Sam2VideoConfig, Sam2VideoModel

    from .models import RANDOM_OBJECT_SCORE_BIAS

    torch.manual_seed(0)
    model = Sam2VideoModel(Sam2VideoConfig.from_size("tiny", "2.1", image_size=256))
    with torch.no_grad():
        model.mask_decoder.pred_obj_score_head.proj_out.bias += RANDOM_OBJECT_SCORE_BIAS
    model.save_pretrained(folder)
    return folder


def run(users: int, leavers: int = 0, preset: str = DEFAULT_SPEED["cpu"], model: Path | None = None,
        settle_seconds: float = 60.0, work: Path | None = None) -> dict:  # fmt: skip
    """The whole load test (module docstring) with `users` visitors and `leavers` more who close their tab after
    the first tracked frame; -> the report (a JSON-able dict)."""
    from sam2_hf.media.synthetic import synthetic_clip

    from .video import write_mp4

    work = Path(work or tempfile.mkdtemp(prefix="sam2-space-load-"))
    model = model or save_model(work / "tiny-256")
    clip = write_mp4(synthetic_clip(*CLIP), work / "clip.mp4")
    server = Server(model, work)
    try:
        server.wait_ready()
        warm_up = visit(server.url, clip, 0, preset)
        before = settle(server, settle_seconds)
        tracking, started, over = Tracking(), threading.Event(), threading.Event()
        clicker: dict = {}
        clicking = threading.Thread(
            target=lambda: clicker.update(
                zip(("latencies", "errors"), click_while_others_track(server.url, clip, started, over, tracking))
            )
        )
        clicking.start()
        started.wait(120)
        visits: list[Visit] = [Visit(i) for i in range(1, users + leavers + 1)]

        def go(i: int) -> None:
            visits[i - 1] = visit(server.url, clip, i, preset, tracking, leave=i > users)

        threads = [threading.Thread(target=go, args=(i,)) for i in range(1, users + leavers + 1)]
        began = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - began
        over.set()
        clicking.join()
        after = settle(server, settle_seconds)
        return report(users, leavers, preset, warm_up, visits, clicker, before, after, wall, server.exceptions())
    finally:
        server.stop()


def report(users, leavers, preset, warm_up, visits, clicker, before, after, wall, exceptions) -> dict:
    served = [v for v in visits if v.outcome == "served"]
    latencies: Latencies = clicker.get("latencies", Latencies())
    return {
        "users": users,
        "leavers": leavers,
        "left_mid_track": sum(v.outcome == "left" for v in visits),
        "preset": preset,
        "clip": {"frames": CLIP[0], "height": CLIP[1], "width": CLIP[2]},
        "warm_up": asdict(warm_up),
        "served": len(served),
        "served_after_waiting": sum(v.place > 1 for v in served),
        "refused": [v.message for v in visits if v.outcome == "refused"],
        "cut": [v.message for v in visits if v.outcome == "cut"],
        "errors": [v.message for v in visits if v.outcome == "error"],
        "isolated": sum(v.objects == [f"visitor {v.user}"] for v in served),
        "seconds_per_visitor": {q: percentile([v.seconds for v in served], p) for q, p in QUANTILES.items()},
        "wall_seconds": wall,
        "click_while_tracking": {q: percentile(latencies.click, p) for q, p in QUANTILES.items()},
        "frame_change_while_tracking": {q: percentile(latencies.frame, p) for q, p in QUANTILES.items()},
        "clicks_measured": len(latencies.click),
        "frame_changes_measured": len(latencies.frame),
        "clicker_errors": clicker.get("errors", ["the click-only visitor did not finish"]),
        "before": before,
        "after": after,
        "server_exceptions": exceptions,
        "visits": [asdict(v) for v in visits],
    }


QUANTILES = {"p50": 0.5, "p95": 0.95, "max": 1.0}


def markdown(result: dict, command: str) -> str:
    """The report as a markdown page (bench/results)."""
    from bench.provenance import provenance_lines

    def s(x) -> str:
        return "–" if x is None else f"{x:.2f}"

    b, a = result["before"], result["after"]
    lines = [
        f"# The Space under load: {result['users']} visitors at once",
        "",
        f"Command: `{command}`  ",
        *provenance_lines(result.get("provenance")),
        f"Setup: random-weight SAM 2.1 tiny at 256 px, preset {result['preset']}, a {result['clip']['frames']}-frame "
        f"{result['clip']['width']}×{result['clip']['height']} clip; each visitor uploads, picks the preset, clicks, "
        "names the object, tracks both ways and reads the export; one more visitor only clicks and changes frames; "
        f"{result['leavers']} more {'closes its' if result['leavers'] == 1 else 'close their'} tab after the first "
        "tracked frame (not counted as served). A warm-up visitor goes first, before the 'before' measurement.  ",
        "Waited: served after being shown place 2 or later in some line (someone was ahead). Cut: a response that "
        "did not arrive whole (the connection closed before its declared length).",
        "",
        "| served | of them waited | refused | cut | errors | exports with only the visitor's object |",
        "|---|---|---|---|---|---|",
        f"| {result['served']} | {result['served_after_waiting']} | {len(result['refused'])} | {len(result['cut'])} "
        f"| {len(result['errors'])} | {result['isolated']}/{result['served']} |",
        "",
        "| seconds | p50 | p95 | max |",
        "|---|---|---|---|",
        *(
            f"| {name} | {s(result[key]['p50'])} | {s(result[key]['p95'])} | {s(result[key]['max'])} |"
            for name, key in (
                ("per visitor, arrival to export", "seconds_per_visitor"),
                (f"click while others track ({result['clicks_measured']} samples)", "click_while_tracking"),
                (
                    f"frame change while others track ({result['frame_changes_measured']} samples)",
                    "frame_change_while_tracking",
                ),
            )
        ),
        "",
        f"All {result['users']} visitors done in {result['wall_seconds']:.0f} s; {result['left_mid_track']} of "
        f"{result['leavers']} left mid-track, as planned.  ",
        f"Server memory (RSS): {s(b['rss_mb'])} MiB before, {s(a['rss_mb'])} MiB after "
        f"({s(a['rss_mb'] / b['rss_mb'] if a['rss_mb'] and b['rss_mb'] else None)}x); Gradio cache folder "
        f"{s(b['disk_mb'])} MiB before, {s(a['disk_mb'])} MiB after; session folders left: {a['session_folders']}.  ",
        f"Exceptions in the server's log: {len(result['server_exceptions'])}; click-only visitor's errors: "
        f"{len(result['clicker_errors'])}.",
    ]
    for name in ("refused", "cut", "errors", "server_exceptions", "clicker_errors"):
        lines += [f"- {name}: {m}" for m in sorted(set(result[name]))[:5]]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    import torch
    from bench.provenance import RunProvenance

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--users", type=int, default=50, help="visitors arriving at once (default: %(default)s)")
    p.add_argument("--leavers", type=int, default=5, help="more visitors who close the tab mid-track (default: 5)")
    p.add_argument("--preset", default=DEFAULT_SPEED["cpu"], choices=SPEEDS, help="speed preset (default: %(default)s)")
    p.add_argument("--model", type=Path, help="a saved model folder (default: random-weight tiny at 256 px)")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results",
                   help="folder for space_load.json / .md (default: bench/results)")  # fmt: skip
    args = p.parse_args(argv)
    command = " ".join(["python -m space.loadtest", *(argv if argv is not None else sys.argv[1:])])
    provenance = RunProvenance(torch.get_num_threads())  # commit, machine load, GEMM rate (bench/provenance.py)
    result = run(args.users, args.leavers, args.preset, args.model)
    result["command"], result["provenance"] = command, provenance.finish()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "space_load.json").write_text(json.dumps(result, indent=1))
    page = markdown(result, command)
    (args.out / "space_load.md").write_text(page)
    print(page)


if __name__ == "__main__":
    main()
