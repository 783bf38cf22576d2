"""Fixtures for the browser tests: the app in a subprocess (tiny IPG pipeline injected) and
headless Debian Chromium driven by Playwright."""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
]
LAPTOP = {"width": 1366, "height": 768}
PROJECTOR = {"width": 1920, "height": 1080}


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serve(log, env, args=("app.py", "--port", "{port}")):
    """Start ``python *args`` (``{port}`` replaced by a free port) with ``env``; yield
    {"url"} once it serves (fails if it exits, or does not serve within 5 minutes); stop it."""
    port = _free_port()
    with open(log, "w") as out:
        process = subprocess.Popen([sys.executable, *(a.replace("{port}", str(port)) for a in args)], cwd=ROOT, env=env,
                                   stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    start = time.monotonic()
    try:
        while True:
            if process.poll() is not None:
                pytest.fail(f"the app exited with code {process.returncode}:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() - start > 300:
                pytest.fail(f"the app did not serve within 5 minutes:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield {"url": url}
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="session")
def serve():
    """The generator that starts an app process, for tests that need one of their own."""
    return _serve


@pytest.fixture(scope="session")
def app_server(tmp_path_factory):
    """Start ``python app.py`` with the tiny test pipeline on a free port; yield {"url"}; stop it.
    ``POSE2ID_APP_URL`` points the tests at an app that is already running instead."""
    if os.environ.get("POSE2ID_APP_URL"):
        yield {"url": os.environ["POSE2ID_APP_URL"]}
        return
    env = dict(os.environ, HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False", POSE2ID_TEST_PIPELINE="1")
    for server in _serve(tmp_path_factory.mktemp("app") / "app.log", env):
        # the page ranks SynthPed from its originals first and +IPG follows (test_first_visit_browser
        # checks that); the other tests start from the whole gallery: /retrieve waits until it is made
        from gradio_client import Client

        Client(server["url"], verbose=False).predict("synthped", 0, 2, 2, 2.0, False, 8, api_name="/retrieve")
        yield server


@pytest.fixture(scope="session")
def cpu_app_url(tmp_path_factory):
    """URL of the app as a first-time visitor meets it on a CPU-only machine without weights: no
    test pipeline, no GPU (CUDA hidden), not on a Space."""
    if os.environ.get("POSE2ID_APP_URL"):
        pytest.skip("the app was started outside the tests (POSE2ID_APP_URL)")
    env = dict(os.environ, HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False", CUDA_VISIBLE_DEVICES="")
    for name in ("POSE2ID_TEST_PIPELINE", "SPACE_ID"):
        env.pop(name, None)
    for server in _serve(tmp_path_factory.mktemp("cpu-app") / "app.log", env):
        yield server["url"]


@pytest.fixture(scope="session")
def app_url(app_server):
    return app_server["url"]


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def open_app(browser, app_url):
    """``open_app(viewport=LAPTOP)`` -> a page on the app, loaded, that records any request
    leaving localhost in ``page.external_requests``."""
    pages = []

    def _open(viewport=LAPTOP):
        context = browser.new_context(viewport=viewport, accept_downloads=True)
        page = context.new_page()
        page.external_requests = []
        page.on("request", lambda r: page.external_requests.append(r.url)
                if not r.url.startswith(("http://127.0.0.1", "data:", "blob:")) else None)
        # generous: on a fresh machine the first Retrieve view also builds SynthPed (~30 s on 2 cores)
        page.set_default_timeout(120_000)
        page.goto(app_url)
        page.wait_for_selector("#pose-editor canvas.p2-canvas")
        pages.append(context)
        return page

    yield _open
    for context in pages:
        context.close()


@pytest.fixture(scope="session")
def viewports():
    """The two screens the app must look good on."""
    return {"laptop": LAPTOP, "projector": PROJECTOR}


@pytest.fixture(scope="session")
def screenshot():
    """``screenshot(page, name)`` saves a full-page PNG under artifacts/screenshots/."""
    def _save(page, name):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)

    return _save
