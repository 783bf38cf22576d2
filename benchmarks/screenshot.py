"""Regenerate ``assets/screenshot.png`` (the README's picture) from the current UI.

Starts ``python app.py`` (offline, the tiny test pipeline, SynthPed as the gallery) on a free
port, or uses ``--url`` of an app already running, opens the Retrieve tab in headless Chromium
at 1366 x 768 once the first rankings are shown, and saves the whole page.

    python benchmarks/screenshot.py [--url http://127.0.0.1:7860/] [--out assets/screenshot.png] [--presenter]
"""

import argparse
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_app():
    """(process, url) of ``python app.py`` once it answers HTTP 200."""
    port = _free_port()
    env = dict(os.environ, HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False", POSE2ID_TEST_PIPELINE="1")
    process = subprocess.Popen([sys.executable, "app.py", "--port", str(port)], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"app.py exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return process, url
        except OSError:
            time.sleep(0.2)
    process.terminate()
    raise SystemExit("app.py did not serve within 300 s")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="an app already running (default: start app.py)")
    parser.add_argument("--out", default=str(ROOT / "assets" / "screenshot.png"))
    parser.add_argument("--presenter", action="store_true", help="the ?presenter view")
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    process, url = (None, args.url) if args.url else start_app()
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox",
                                                                                  "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1366, "height": 768})
            page.set_default_timeout(600_000)  # a fresh cache builds SynthPed first
            page.goto(url + ("?presenter" if args.presenter else ""))
            page.wait_for_selector("#pose-editor canvas.p2-canvas")
            page.get_by_role("tab", name="Retrieve").click()
            page.locator("#rankings .p2-rank-col .p2-hit img").first.wait_for()
            # the ranked thumbnails are data URIs: decoded once complete (the query strip's load lazily)
            page.wait_for_function("[...document.querySelectorAll('#rankings img')].every(i => i.complete)")
            page.screenshot(path=args.out, full_page=True)
            browser.close()
    finally:
        if process is not None:
            process.terminate()
            process.wait(30)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
