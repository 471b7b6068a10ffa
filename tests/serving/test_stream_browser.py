"""Camera mode of the web page in a real headless Chromium (a fake camera) against a real uvicorn."""
from __future__ import annotations

import pytest

from tests.serving.helpers import live_server, make_settings
from tests.serving.test_browser import chromium

pytestmark = pytest.mark.browser


@pytest.fixture
def camera_driver(tmp_path):
    # A synthetic camera (a moving test pattern), and the permission prompt answered "allow".
    browser = chromium(tmp_path, "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream")
    yield browser
    browser.quit()


def test_camera_mode_streams_stylised_frames_and_switches_style(model_dir, camera_driver):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    from impasto.serving.app import create_app

    driver = camera_driver
    app = create_app(make_settings(model_dir))
    with live_server(app) as base:
        driver.get(base + "/")
        wait = WebDriverWait(driver, 20)
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#styles .style-row")) > 0)
        Select(driver.find_element(By.ID, "model")).select_by_value("trio")
        Select(driver.find_element(By.ID, "camera-size")).select_by_value("240")
        driver.find_element(By.ID, "camera").click()

        canvas = driver.find_element(By.ID, "camera-canvas")

        def frames() -> int:
            return int(canvas.get_attribute("data-frames") or 0)

        wait.until(lambda d: frames() >= 3)
        assert canvas.is_displayed() and driver.find_element(By.ID, "camera-video").is_displayed()
        assert not driver.find_element(By.ID, "result-empty").is_displayed()
        width, height = driver.execute_script("const c = arguments[0]; return [c.width, c.height];", canvas)
        assert max(width, height) == 240  # the fake camera's 640x480, captured at the chosen size
        stats = driver.find_element(By.ID, "camera-stats").text
        assert " fps · " in stats and " ms · frame " in stats, stats
        assert canvas.get_attribute("data-style") == "wave"
        assert driver.find_element(By.ID, "camera").text == "Stop camera"

        # Switching the style while it runs: later frames come in the new style.
        ink = driver.find_element(By.CSS_SELECTOR, '#styles .style-row[data-style="ink"] button')
        ink.click()
        wait.until(lambda d: canvas.get_attribute("data-style") == "ink")
        seen = frames()
        wait.until(lambda d: frames() >= seen + 2)
        assert driver.find_element(By.ID, "error").text == ""

        driver.find_element(By.ID, "camera").click()  # stop
        wait.until(lambda d: not canvas.is_displayed())
        assert driver.find_element(By.ID, "camera").text == "Start camera"
        assert driver.find_element(By.ID, "result-empty").is_displayed()
        assert driver.execute_script("return document.getElementById('camera-video').srcObject") is None
        assert "Stopped after" in driver.find_element(By.ID, "camera-stats").text
        metrics = app.state.service.metrics
        wait.until(lambda d: metrics.streams_open.labels("/api/stream")._value.get() == 0)
        assert metrics.stream_frames.labels("trio")._value.get() >= seen + 2

        # A camera the user refused: one clear message, nothing left running.
        driver.execute_script("navigator.mediaDevices.getUserMedia = () => "
                              "Promise.reject(new DOMException('Permission denied', 'NotAllowedError'));")
        driver.find_element(By.ID, "camera").click()
        wait.until(lambda d: d.find_element(By.ID, "error").text)
        assert driver.find_element(By.ID, "error").text.startswith("Camera access was denied.")
        assert driver.find_element(By.ID, "camera").text == "Start camera"
        assert not canvas.is_displayed()


def write_y4m(path, frames=30, size=(640, 480)):
    """A camera clip Chromium's fake device can play (YUV4MPEG2, 4:2:0): a slow pan over a photo."""
    from PIL import Image
    from skimage import data

    photo = Image.fromarray(data.coffee()).resize((size[0] + frames * 2, size[1] + frames))
    with open(path, "wb") as out:
        out.write(f"YUV4MPEG2 W{size[0]} H{size[1]} F15:1 Ip A1:1 C420jpeg\n".encode())
        for i in range(frames):
            frame = photo.crop((2 * i, i, 2 * i + size[0], i + size[1])).convert("YCbCr")
            y, cb, cr = frame.split()
            half = (size[0] // 2, size[1] // 2)
            out.write(b"FRAME\n" + y.tobytes() + cb.resize(half).tobytes() + cr.resize(half).tobytes())


def test_camera_mode_with_the_bundled_model(tmp_path):
    """The default service stylises a (fake) camera showing a real scene. With
    IMPASTO_UPDATE_SCREENSHOT=1 the page is saved as the README's camera screenshot."""
    import os
    import shutil

    import numpy as np
    from PIL import Image
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from impasto.serving.app import create_app
    from impasto.serving.settings import Settings
    from tests.serving.test_browser import SCREENSHOT

    clip = tmp_path / "camera.y4m"
    write_y4m(clip)
    driver = chromium(tmp_path, "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
                      f"--use-file-for-fake-video-capture={clip}")
    try:
        with live_server(create_app(Settings(threads=1))) as base:
            driver.get(base + "/")
            wait = WebDriverWait(driver, 20)
            wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#styles .style-row")) > 0)
            driver.find_element(By.CSS_SELECTOR, '#styles .style-row[data-style="wave"] button').click()
            driver.find_element(By.ID, "camera").click()
            canvas = driver.find_element(By.ID, "camera-canvas")
            wait.until(lambda d: int(canvas.get_attribute("data-frames") or 0) >= 5
                       and canvas.get_attribute("data-style") == "wave")
            assert driver.find_element(By.ID, "error").text == ""
            shot = tmp_path / "camera.png"
            assert driver.save_screenshot(str(shot))
    finally:
        driver.quit()
    # The stylised frame on the canvas is a picture, not a blank (it shows the coffee cup in wave).
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float32)
    assert pixels.std() > 20
    if os.environ.get("IMPASTO_UPDATE_SCREENSHOT"):
        shutil.copyfile(shot, SCREENSHOT.with_name("camera.png"))
