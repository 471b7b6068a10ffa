"""The web page in a real headless Chromium against a real uvicorn on loopback."""
from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.serving.helpers import live_server, make_settings

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SCREENSHOT = Path(__file__).resolve().parents[2] / "data" / "screenshots" / "web-ui.png"


def _photo(path: Path) -> tuple[int, int]:
    """A real photo when scikit-image's samples are installed (nicer screenshot), else a gradient."""
    try:
        from skimage import data

        img = Image.fromarray(data.chelsea())
    except ImportError:
        y, x = np.mgrid[0:300, 0:451]
        img = Image.fromarray(np.stack([x * 255 // 451, y * 255 // 300, (x + y) % 256], -1).astype(np.uint8))
    img.save(path)
    return img.size


def chromium(tmp_path: Path, *extra_args: str):
    """A headless Chromium under selenium (skips the test when Chromium is not installed)."""
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip(f"browser test needs {CHROMIUM} and {CHROMEDRIVER}: apt-get install chromium chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'chromium-profile'}",
                "--window-size=1440,1000", *extra_args):
        options.add_argument(arg)
    browser = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    browser.set_page_load_timeout(30)
    return browser


@pytest.fixture
def driver(tmp_path):
    browser = chromium(tmp_path)
    yield browser
    browser.quit()


def test_upload_stylize_and_screenshot(model_dir, driver, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    from impasto.serving.app import create_app

    photo = tmp_path / "cat.png"
    width, height = _photo(photo)
    max_size = 256
    expected = (max_size, round(height * max_size / width)) if width >= height else (round(width * max_size / height), max_size)

    with live_server(create_app(make_settings(model_dir))) as base:
        driver.get(base + "/")
        wait = WebDriverWait(driver, 20)
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#styles .style-row")) > 0)
        Select(driver.find_element(By.ID, "model")).select_by_value("trio")
        wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#styles .style-row").get_attribute("data-style") == "wave")
        Select(driver.find_element(By.ID, "max-size")).select_by_value(str(max_size))
        # Blend two styles with the sliders before choosing the image.
        sliders = driver.find_elements(By.CSS_SELECTOR, "#styles input[type=range]")
        driver.execute_script("arguments[0].value = 50; arguments[0].dispatchEvent(new Event('input'));", sliders[1])
        driver.find_element(By.ID, "file").send_keys(str(photo))
        wait.until(lambda d: d.find_element(By.ID, "result").get_attribute("data-state") in ("done", "error"))
        error = driver.find_element(By.ID, "error")
        assert driver.find_element(By.ID, "result").get_attribute("data-state") == "done", error.text
        natural = driver.execute_script(
            "const r = document.getElementById('result'); return [r.naturalWidth, r.naturalHeight];")
        assert tuple(natural) == expected
        assert driver.find_element(By.ID, "result").is_displayed()
        assert "batch of" in driver.find_element(By.ID, "result-info").text
        assert driver.find_element(By.ID, "download").get_attribute("download").endswith(".png")
        # The UI asked for the blend the sliders show.
        labels = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#styles .weight")]
        assert labels[:2] == ["67%", "33%"], labels

        shot = tmp_path / "web-ui.png"
        assert driver.save_screenshot(str(shot))
    png = Image.open(io.BytesIO(shot.read_bytes()))
    assert png.size[0] >= 1000 and png.getextrema() != ((0, 0), (0, 0), (0, 0))


def test_bundled_styles_in_the_page(driver, tmp_path):
    """The default service (bundled model): pick a painting, stylise a photo. With
    IMPASTO_UPDATE_SCREENSHOT=1 the page is saved as the README's screenshot."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from impasto.serving.app import create_app
    from impasto.serving.settings import Settings

    photo = tmp_path / "cat.png"
    _photo(photo)
    with live_server(create_app(Settings(threads=1))) as base:
        driver.get(base + "/")
        wait = WebDriverWait(driver, 20)
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#styles .style-row")) > 0)
        rows = driver.find_elements(By.CSS_SELECTOR, "#styles .style-row")
        names = [r.get_attribute("data-style") for r in rows]
        assert "starry_night" in names and "identity" not in names[:1]
        driver.find_element(By.ID, "file").send_keys(str(photo))
        wait.until(lambda d: d.find_element(By.ID, "result").get_attribute("data-state") in ("done", "error"))
        assert driver.find_element(By.ID, "result").get_attribute("data-state") == "done", \
            driver.find_element(By.ID, "error").text
        shot = tmp_path / "web-ui.png"
        assert driver.save_screenshot(str(shot))
    if os.environ.get("IMPASTO_UPDATE_SCREENSHOT"):
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, SCREENSHOT)
