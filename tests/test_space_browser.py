"""The Space in a real browser: Debian's chromium driven by Playwright (no browser download).

Bad input first (a click before any upload, a file that is not a video, an empty video, a huge
resolution: each a readable message in the page), then upload, click a pixel of the shown frame,
see the mask appear, add a second object on another frame, track, see the overlay video and the
download links. Screenshots go to test-artifacts/space/ for a reviewer to look at.
"""

from __future__ import annotations

import io
import re
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

playwright = pytest.importorskip("playwright.sync_api")
from playwright.sync_api import expect, sync_playwright  # noqa: E402
from space import engine  # noqa: E402
from space.config import UNTRAINED, AppConfig, parse_args  # noqa: E402
from space.video import write_mp4  # noqa: E402

from sam2_hf.media.synthetic import synthetic_clip  # noqa: E402
from test_space_api import (  # noqa: E402
    BLUE_SQUARE_AT_6,
    HEIGHT,
    RED_DISC_AT_0,
    WIDTH,
    encode_video,
    running_app,
    save_clip,
    save_tiny_model,
)

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "space"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]  # fmt: skip
TIMEOUT = 60_000  # ms; generous: the CPU may be shared

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="Debian's chromium is not at /usr/bin/chromium (apt-get install chromium; scripts/test.sh does it)",
)


@pytest.fixture(scope="module")
def browser():
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch_persistent_context(
            tempfile.mkdtemp(prefix="chromium-profile-"),  # a fresh profile
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1000},
        )
        yield browser
        browser.close()


def open_page(browser, url: str):
    page = browser.new_page()
    page.set_default_timeout(TIMEOUT)
    page.goto(url, wait_until="domcontentloaded")  # "networkidle" never comes: Gradio keeps a stream open
    return page


def open_phone_page(browser, url: str):
    """A new tab (a session of its own) emulating a 390 x 844 touch phone (device scale 3, coarse pointer)."""
    phone = browser.new_page()
    phone.set_default_timeout(TIMEOUT)
    phone.set_viewport_size({"width": 390, "height": 844})
    cdp = phone.context.new_cdp_session(phone)
    cdp.send(
        "Emulation.setDeviceMetricsOverride", {"width": 390, "height": 844, "deviceScaleFactor": 3, "mobile": True}
    )
    cdp.send("Emulation.setTouchEmulationEnabled", {"enabled": True, "maxTouchPoints": 5})
    phone.goto(url, wait_until="domcontentloaded")
    assert phone.evaluate("[innerWidth, matchMedia('(pointer: coarse)').matches]") == [390, True]
    return phone


SCREENS = ("desktop", "phone")  # the flows below run at the fixture's 1400 x 1000 and on a phone
SHOT_SUFFIX = {"desktop": "", "phone": "_phone"}


@pytest.fixture(scope="module")
def page(browser, tmp_path_factory):
    model_dir = save_tiny_model(tmp_path_factory.mktemp("sam2-tiny-256"))
    with running_app(AppConfig(model=str(model_dir))) as url:
        yield open_page(browser, url)


def shot(page, name: str) -> None:
    page.screenshot(path=ARTIFACTS / f"{name}.png", full_page=True)


def status(page):
    return page.locator("#status textarea")


def warning(page, text: str):
    return page.locator(".toast-body", has_text=text)


def upload(page, path: Path) -> None:
    clear = page.locator("#video-in button[aria-label='Clear']")
    if clear.count():  # a video is shown: clear it to get the upload area back
        clear.first.dispatch_event("click")
    page.locator("#video-in input[type=file]").set_input_files(str(path))


def served_image(page) -> np.ndarray:
    src = page.locator("#frame img").get_attribute("src")
    return np.asarray(Image.open(io.BytesIO(page.request.get(src).body())).convert("RGB"), dtype=np.int16)


def click_frame(page, x: float, y: float) -> None:
    """Click video pixel (x, y) on the frame view (the view enlarges small videos; Gradio shows the
    image scaled down to fit its box, centred)."""
    img = page.locator("#frame img")
    box = img.bounding_box()
    nw, nh = img.evaluate("e => [e.naturalWidth, e.naturalHeight]")
    r = min(box["width"] / nw, box["height"] / nh, 1)
    sx, sy = (x + 0.5) * nw / WIDTH, (y + 0.5) * nh / HEIGHT
    img.click(position={"x": (box["width"] - nw * r) / 2 + sx * r, "y": (box["height"] - nh * r) / 2 + sy * r})


def test_bad_input_is_explained_in_the_page(page, tmp_path):
    page.locator("#track").click()
    expect(warning(page, "Upload a video (or pick an example) first.")).to_be_visible()
    expect(status(page)).to_have_value("Upload a video (or pick an example) first.")
    shot(page, "01_click_before_upload")

    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    upload(page, text)
    expect(warning(page, "notes.mp4 is not a video this app can read")).to_be_visible()
    shot(page, "02_not_a_video")

    upload(page, encode_video(tmp_path / "empty.mp4", []))
    expect(warning(page, "empty.mp4 contains no video frames")).to_be_visible()

    upload(page, write_mp4(synthetic_clip(2, 1088, 1920), tmp_path / "huge.mp4"))
    expect(warning(page, "Downscaled from 1920×1088 to 1280×725")).to_be_visible()
    expect(page.locator("#video-info")).to_contain_text("Downscaled from 1920×1088 to 1280×725")
    shot(page, "03_huge_downscaled")
    assert "Traceback" not in page.content()
    expect(page.locator("#untrained")).not_to_be_visible()  # trained weights: no warning


@pytest.mark.parametrize("screen", SCREENS)
def test_click_track_and_download(page, tmp_path, screen):
    """Items 3, 10, 11, 13 at both sizes: clicks and a box make masks; Cancel stands in Track's place while
    tracking; the downloads decode; the timeline jumps to a frame; a background effect redraws the frame."""
    if screen == "phone":
        page = open_phone_page(page.context, page.url)  # a session of its own; the desktop run keeps `page`
    upload(page, save_clip(tmp_path))
    expect(status(page)).to_have_value(re.compile(r"^Loaded clip\.mp4 · 12 frames"))
    shot(page, f"04_loaded{SHOT_SUFFIX[screen]}")

    before, src = served_image(page), page.locator("#frame img").get_attribute("src")
    click_frame(page, *RED_DISC_AT_0)
    expect(status(page)).to_have_value(re.compile(r"^#1 Object 1: 1 click on frame 0, mask \d"))
    expect(page.locator("#frame img")).not_to_have_attribute("src", src)
    after = served_image(page)
    changed = (np.abs(after - before).sum(axis=2) > 30).mean()
    assert changed > 0.02, f"only {changed:.1%} of the frame changed: no mask drawn"
    shot(page, f"05_mask_after_click{SHOT_SUFFIX[screen]}")

    page.get_by_role("button", name="+ Add object").click()
    expect(status(page)).to_have_value("Added #2 Object 2: click on it.")
    page.locator("#scrubber input[type=range]").fill("6")
    expect(page.locator("#frame")).to_contain_text("Frame 6 of 11")
    click_frame(page, *BLUE_SQUARE_AT_6)
    expect(status(page)).to_have_value(re.compile(r"^#2 Object 2: 1 click on frame 6"))
    page.locator("#mode label", has_text="Box").click()  # a box: two clicks at opposite corners
    click_frame(page, 58, 57)
    expect(status(page)).to_have_value("Now click the opposite corner of the box.")
    click_frame(page, 78, 77)
    expect(status(page)).to_have_value(re.compile(r"^#2 Object 2: 1 click \+ box on frame 6"))
    shot(page, f"06_second_object_with_box{SHOT_SUFFIX[screen]}")

    page.locator("#speed label", has_text="Best").click()  # the slowest preset: tracking is visible for a while
    expect(status(page)).to_have_value(re.compile("^Using .* Best · 256 px · every frame"))
    page.locator("#track").click()
    tracking = r"^Tracking: frame \d+, ([3-9]|1[01]) of 12 done, about \d+ s left \([\d.]+ s per frame per object"
    expect(status(page)).to_have_value(re.compile(tracking))
    expect(page.locator("#cancel")).to_be_visible()  # Cancel stands in Track's place while tracking
    expect(page.locator("#track")).to_be_hidden()
    expect(page.locator("#progress .bar")).to_be_visible()  # the progress bar, under the live preview
    shot(page, f"07_tracking{SHOT_SUFFIX[screen]}")
    expect(status(page)).to_have_value(re.compile(r"Tracked 12 of 12 frames .* Downloads ready\.$"), timeout=180_000)
    page.wait_for_function("() => { const v = document.querySelector('#overlay video'); return v && v.videoWidth > 0 }")
    expect(page.locator("#track")).to_be_visible()
    expect(page.locator("#cancel")).to_be_hidden()
    links = page.locator("#downloads a")
    expect(links).to_have_count(4)
    for name in ("clip_masks.zip", "clip_masks.json", "clip_overlay.mp4", "clip_transparent.zip"):
        expect(page.get_by_role("row", name=re.compile(f"^{re.escape(name)}"))).to_be_visible()
    for i in range(4):
        assert page.request.get(links.nth(i).get_attribute("href")).ok
    page.locator("#overlay").scroll_into_view_if_needed()
    shot(page, f"08_tracked_with_downloads{SHOT_SUFFIX[screen]}")

    timeline = page.locator("#timeline img")  # a lane per object; a click on frame 9's column shows frame 9
    timeline.scroll_into_view_if_needed()
    box = timeline.bounding_box()
    nw, nh = timeline.evaluate("e => [e.naturalWidth, e.naturalHeight]")
    r = min(box["width"] / nw, box["height"] / nh, 1)
    timeline.click(position={"x": (box["width"] - nw * r) / 2 + nw * r * 9.5 / 12, "y": box["height"] / 2})
    expect(page.locator("#frame")).to_contain_text("Frame 9 of 11")
    shot(page, f"08b_timeline_jump{SHOT_SUFFIX[screen]}")

    old_src, before = page.locator("#frame img").get_attribute("src"), served_image(page)
    page.locator("#effects").get_by_text("Effects").click()
    page.locator("#background label", has_text="erase").click()
    expect(status(page)).to_have_value(re.compile("^Background: erase"))
    page.wait_for_function(f"() => document.querySelector('#frame img').src !== {old_src!r}")
    after = served_image(page)
    black = [(image.max(axis=2) < 16).mean() for image in (before, after)]
    assert black[1] > black[0] + 0.01, black  # the background (what the masks leave of this frame) went black
    page.locator("#frame").scroll_into_view_if_needed()
    shot(page, f"08c_background_erased{SHOT_SUFFIX[screen]}")
    if screen == "phone":
        page.close()


def test_an_example_loads_with_one_click(page):
    page.locator("#video-in button[aria-label='Clear']").dispatch_event("click")
    page.locator("#examples button").first.click()
    expect(status(page)).to_have_value(re.compile(r"^Loaded shapes\.mp4 · 24 frames · 12 fps"))


def test_random_weights_are_announced_at_the_top(browser, monkeypatch):
    monkeypatch.setattr(engine, "ENGINE", engine.ENGINE)  # the second app replaces it: given back after
    config, _ = parse_args(["--random-weights", "--device", "cpu"])
    with running_app(replace(config, examples=False)) as url:
        page = open_page(browser, url)
        notice = page.locator("#untrained")
        expect(notice).to_be_visible()
        expect(notice).to_contain_text("Untrained model: the masks are meaningless.")
        assert notice.bounding_box()["y"] < page.locator("#frame").bounding_box()["y"]  # above the frame view
        expect(status(page)).to_have_value(f"Upload a video or pick an example to start. {UNTRAINED}")
        shot(page, "10_untrained_model_notice")
        page.close()


def test_one_screen_and_keyboard_shortcuts(page, tmp_path):
    """At 1366 x 900 the frame, its timeline, Track and the status are in view together (Track was below the
    fold); the page lists its keys, and they work: N negative, P positive, arrows change the frame, Z undoes,
    T tracks; then ▶ Play plays the results in the frame view to the last frame."""
    page.set_viewport_size({"width": 1366, "height": 900})
    page.evaluate("window.scrollTo(0, 0)")
    upload(page, save_clip(tmp_path))
    expect(status(page)).to_have_value(re.compile(r"^Loaded clip\.mp4 · 12 frames"))
    page.evaluate("window.scrollTo(0, 0)")
    for element in ("#frame", "#timeline", "#track", "#status"):
        box = page.locator(element).bounding_box()
        assert box is not None and box["y"] >= 0 and box["y"] + box["height"] <= 900, (element, box)
    expect(page.locator("#keys")).to_contain_text("N negative")
    shot(page, "11_one_screen_1366x900")

    page.locator("body").click(position={"x": 5, "y": 5})  # focus on the page, not a field
    page.keyboard.press("n")
    expect(page.locator("#mode label", has_text="Negative")).to_have_class(re.compile("selected"))
    page.keyboard.press("p")
    expect(page.locator("#mode label", has_text="Positive")).to_have_class(re.compile("selected"))
    page.keyboard.press("ArrowRight")
    expect(page.locator("#frame")).to_contain_text("Frame 1 of 11")
    page.keyboard.press("ArrowLeft")
    expect(page.locator("#frame")).to_contain_text("Frame 0 of 11")
    click_frame(page, *RED_DISC_AT_0)
    expect(status(page)).to_have_value(re.compile(r"^#1 Object 1: 1 click on frame 0"))
    page.keyboard.press("z")
    expect(status(page)).to_have_value(re.compile(r"^Undone: #1 Object 1: 1 click on frame 0"))
    click_frame(page, *RED_DISC_AT_0)
    expect(status(page)).to_have_value(re.compile(r"^#1 Object 1: 1 click on frame 0"))
    served_image_at_0 = served_image(page)
    page.keyboard.press("t")
    expect(status(page)).to_have_value(re.compile(r"^Tracked (\d+) of \1 frames"), timeout=180_000)
    # the results play in the frame view at once (the overlay video is written after): Play runs to the end
    page.locator("#play").click()
    expect(page.locator("#play")).to_have_text("⏸ Pause")
    expect(page.locator("#frame")).to_contain_text("Frame 11 of 11")
    expect(page.locator("#play")).to_have_text("▶ Play")
    assert np.abs(served_image(page) - served_image_at_0).max() > 0  # another frame, drawn with its masks
    page.set_viewport_size({"width": 1400, "height": 1000})


def test_phone_upload_first_then_frame_and_track_together(page, tmp_path):
    """On a 390 x 844 touch phone the upload comes first (it was ~1700 px down, under two empty boxes), then the
    frame with Track and the progress bar in one screen; nothing scrolls sideways; tapping a pixel and Track work."""
    phone = open_phone_page(page.context, page.url)
    top = phone.locator("#video-in").bounding_box()
    assert top is not None and top["y"] + 100 < 844, top  # the upload is on the first screen
    assert top["y"] < phone.locator("#frame").bounding_box()["y"]
    expect(phone.locator("#keys")).to_be_hidden()  # no keyboard on a phone
    upload(phone, save_clip(tmp_path))
    expect(status(phone)).to_have_value(re.compile(r"^Loaded clip\.mp4 · 12 frames"))
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    phone.locator("#frame").evaluate("e => e.scrollIntoView({block: 'start'})")
    frame, track = phone.locator("#frame").bounding_box(), phone.locator("#track").bounding_box()
    assert frame["y"] > -1 and track["y"] + track["height"] <= 844, (frame, track)  # one screen
    click_frame(phone, *RED_DISC_AT_0)
    expect(status(phone)).to_have_value(re.compile(r"^#1 Object 1: 1 click on frame 0"))
    shot(phone, "12_phone_390x844")
    phone.locator("#track").click()
    expect(phone.locator("#progress")).to_be_visible()
    bar = phone.locator("#progress").bounding_box()
    assert bar is not None and bar["y"] - frame["y"] < 844, (frame, bar)  # progress shows beside the frame
    expect(status(phone)).to_have_value(re.compile(r"^Tracked (\d+) of \1 frames"), timeout=180_000)
    phone.close()


@pytest.mark.parametrize("screen", SCREENS)
def test_work_survives_a_preset_switch_a_bad_upload_and_a_bad_model(page, tmp_path, screen):
    """Items 1, 2, 5, 14, 15 in the page: after tracking, a speed switch keeps every mask and says which setting
    made them; a file that is not a video changes nothing (frame, masks, downloads stay); a new object starts
    positive and a negative-only click is explained; Find objects answers; a model id that does not exist is
    named and the model in use stays. At both sizes."""
    tab = (open_page if screen == "desktop" else open_phone_page)(page.context, page.url)  # a session of its own
    upload(tab, save_clip(tmp_path))
    expect(status(tab)).to_have_value(re.compile(r"^Loaded clip\.mp4 · 12 frames"))
    click_frame(tab, *RED_DISC_AT_0)
    expect(status(tab)).to_have_value(re.compile(r"^#1 Object 1: 1 click on frame 0"))
    tab.locator("#speed label", has_text="Fastest").click()
    expect(status(tab)).to_have_value(re.compile("^Using .* Fastest"))
    tab.locator("#track").click()
    expect(status(tab)).to_have_value(re.compile(r"^Tracked (\d+) of \1 frames.* Downloads ready\.$"), timeout=180_000)
    tab.locator("#scrubber input[type=range]").fill("5")
    expect(tab.locator("#frame")).to_contain_text("Frame 5 of 11")
    tracked = served_image(tab)

    tab.locator("#speed label", has_text="Best").click()  # another resolution: the clicked frame is redone
    expect(status(tab)).to_have_value(re.compile(r"^Using .* Best .* The tracked masks were made with .* are kept"))
    expect(tab.locator("#frame")).to_contain_text("Frame 5 of 11")
    assert np.abs(served_image(tab) - tracked).max() <= 8  # frame 5's tracked mask is still drawn
    expect(tab.locator("#downloads a")).to_have_count(4)

    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    upload(tab, text)
    expect(warning(tab, "notes.mp4 is not a video this app can read")).to_be_visible()
    expect(status(tab)).to_have_value(re.compile("^notes.mp4 is not a video"))
    expect(tab.locator("#frame")).to_contain_text("Frame 5 of 11")
    assert np.abs(served_image(tab) - tracked).max() <= 8
    expect(tab.locator("#video-info")).to_contain_text("clip.mp4 · 12 frames")
    expect(tab.locator("#downloads a")).to_have_count(4)  # the last export is still there to download
    tab.wait_for_function("() => { const v = document.querySelector('#overlay video'); return v && v.videoWidth > 0 }")
    shot(tab, f"13_bad_upload_keeps_the_work{SHOT_SUFFIX[screen]}")

    tab.locator("#mode label", has_text="Negative").click()
    tab.get_by_role("button", name="+ Add object").click()
    expect(status(tab)).to_have_value("Added #2 Object 2: click on it.")
    expect(tab.locator("#mode label", has_text="Positive")).to_have_class(re.compile("selected"))
    tab.locator("#mode label", has_text="Negative").click()
    click_frame(tab, *BLUE_SQUARE_AT_6)
    expect(status(tab)).to_have_value(re.compile("Only negative clicks: .* Add a positive click on the object."))

    tab.locator("#find-objects").click()
    expect(status(tab)).to_have_value(re.compile(r"^(Found \d+ object|No objects found on frame 5)"))

    tab.locator("#model-accordion").get_by_text("Model").click()
    checkpoint = tab.locator("#checkpoint input")
    model_in_use = checkpoint.input_value()
    checkpoint.fill("no-such-user/no-such-sam2-model")
    checkpoint.press("Enter")
    expect(status(tab)).to_have_value(re.compile("no-such-user/no-such-sam2-model"), timeout=90_000)
    expect(checkpoint).to_have_value(model_in_use)
    expect(tab.locator("#frame")).to_contain_text("Frame 5 of 11")
    shot(tab, f"14_unknown_model_keeps_the_work{SHOT_SUFFIX[screen]}")
    tab.close()


def test_a_run_beyond_the_admitted_ones_shows_its_place_in_line(browser, monkeypatch, tmp_path):
    """With one tracking run admitted at a time, a second tab's Track waits in line and its status line shows the
    place (Gradio's "queue: place/size"); then it runs, and both end with their downloads."""
    monkeypatch.setattr(engine, "ENGINE", engine.ENGINE)  # the second app replaces it: given back after
    model_dir = save_tiny_model(tmp_path / "model")
    clip = write_mp4(synthetic_clip(60, HEIGHT, WIDTH), tmp_path / "clip.mp4")
    with running_app(AppConfig(model=str(model_dir), examples=False, track_concurrency=1)) as url:
        tabs = [open_page(browser, url) for _ in range(2)]
        for tab in tabs:
            upload(tab, clip)
            expect(status(tab)).to_have_value(re.compile(r"^Loaded clip\.mp4 · 60 frames"))
            tab.locator("#speed label", has_text="Best").click()  # the slowest preset: the first run lasts
            expect(status(tab)).to_have_value(re.compile("^Using .* Best"))  # as a person sees it, then clicks
            click_frame(tab, *RED_DISC_AT_0)
            expect(status(tab)).to_have_value(re.compile(r"^#1 Object 1: 1 click on frame 0"))
        tabs[0].locator("#track").click()
        expect(status(tabs[0])).to_have_value(re.compile(r"^Tracking: frame"))
        tabs[1].locator("#track").click()
        expect(tabs[1].locator("#status")).to_contain_text(re.compile(r"queue: 1/\d+"))
        shot(tabs[1], "15_waiting_in_line")
        for tab in tabs:
            expect(status(tab)).to_have_value(re.compile(r"Downloads ready\.$"), timeout=180_000)
            tab.close()
