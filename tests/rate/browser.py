"""Driving the rating app in Debian's headless chromium (Selenium): the server as a subprocess, a driver, a screenshot.

``python -m tests.rate.browser docs/rate_screenshot.png`` takes the README's screenshot from a synthetic pair.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


def browser_missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed: pip install -e '.[dev]'"
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not os.access(path, os.X_OK):
            return f"{path} not found: apt-get install -y chromium chromium-driver (Debian's {package})"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(pairs: Path, db: Path, port: int, log: Path) -> subprocess.Popen:
    """``mmrl rate serve`` on 127.0.0.1:``port`` in a subprocess, returned once it answers."""
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    argv = [sys.executable, "-m", "mmrl.cli", "rate", "serve", "--pairs", str(pairs), "--db", str(db), "--port", str(port)]
    proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}: {log.read_text()}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=1)
            return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"the server did not answer within 60 s: {log.read_text()}")


def make_driver(width: int = 1200, height: int = 1400):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync", f"--window-size={width},{height}",
        f"--user-data-dir={tempfile.mkdtemp(prefix='mmrl-chromium-')}",
    ):  # fmt: skip
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    return driver


def login(driver, base: str, token: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(base + "/login")
    driver.find_element(By.ID, "token").send_keys(token)
    button = driver.find_element(By.ID, "login")
    button.click()
    _wait(driver, lambda d: _stale(button))


def _stale(element) -> bool:
    from selenium.common.exceptions import StaleElementReferenceException

    try:
        element.is_enabled()
        return False
    except StaleElementReferenceException:
        return True


def _wait(driver, condition, timeout: float = 15):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(condition)


def wait_url(driver, url: str) -> str:
    """The browser's URL once it is ``url`` (a TimeoutException naming where it is otherwise)."""
    from selenium.common.exceptions import TimeoutException

    try:
        _wait(driver, lambda d: d.current_url == url)
    except TimeoutException:
        raise AssertionError(f"expected the browser at {url}, it is at {driver.current_url}") from None
    return driver.current_url


def screenshot(out: Path) -> Path:
    """The README's screenshot: one synthetic pair, a rater half-way through the questions."""
    from selenium.webdriver.common.by import By

    from mmrl.rate.store import Store
    from tests.rate.helpers import synthetic_pairs, write_jsonl

    work = Path(tempfile.mkdtemp(prefix="mmrl-shot-"))
    pairs, _ = synthetic_pairs(12)
    write_jsonl(work / "pairs.jsonl", pairs)
    token = Store(work / "r.sqlite").add_rater("ana")
    port = free_port()
    server = start_server(work / "pairs.jsonl", work / "r.sqlite", port, work / "server.log")
    driver = make_driver(1200, 1500)
    try:
        login(driver, f"http://127.0.0.1:{port}", token)
        for q in ("truthfulness", "safety", "fairness"):
            driver.find_element(By.ID, f"q-{q}-B").click()
        driver.save_screenshot(str(out))
    finally:
        driver.quit()
        server.kill()
    return out


if __name__ == "__main__":
    print(screenshot(Path(sys.argv[1])))
