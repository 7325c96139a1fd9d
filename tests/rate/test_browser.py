"""The rating app in a real browser (Debian's headless chromium through chromedriver and Selenium).

Skipped, saying what to install, where chromium, chromedriver or selenium are missing; `.ci/run` installs them.
"""

from __future__ import annotations

import sqlite3

import pytest

from mmrl.cli import main
from mmrl.rate import QUESTIONS
from mmrl.rate.store import Store
from tests.rate.browser import browser_missing, free_port, login, make_driver, start_server, wait_url
from tests.rate.helpers import INJECTIONS, synthetic_pairs, write_jsonl

pytestmark = [pytest.mark.browser, pytest.mark.skipif(browser_missing() is not None, reason=f"browser tests: {browser_missing()}")]


@pytest.fixture
def driver():
    d = make_driver()
    yield d
    d.quit()


def _checked(driver) -> dict[str, str]:
    from selenium.webdriver.common.by import By

    return {
        e.get_attribute("name")[2:]: e.get_attribute("value") for e in driver.find_elements(By.CSS_SELECTOR, "input[type=radio]:checked")
    }


def _keys(driver, keys: str) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(driver).send_keys(*keys).perform()


def test_rate_click_keyboard_kill_restart_resume_report(tmp_path, driver):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    pairs, key = synthetic_pairs(3)
    write_jsonl(tmp_path / "pairs.jsonl", pairs)
    write_jsonl(tmp_path / "key.jsonl", key)
    db = tmp_path / "r.sqlite"
    tokens = {name: Store(db).add_rater(name) for name in ("ana", "ben")}
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start_server(tmp_path / "pairs.jsonl", db, port, tmp_path / "server.log")
    try:
        login(driver, base, tokens["ana"])
        wait_url(driver, base + "/item/1")
        assert driver.find_element(By.ID, "progress").get_attribute("value") == "0"
        # item 1 by clicking
        for q in QUESTIONS:
            driver.find_element(By.ID, f"q-{q}-A").click()
        driver.find_element(By.ID, "comment").send_keys("clicked")
        driver.find_element(By.ID, "submit").click()
        wait_url(driver, base + "/item/2")
        # item 2 by keyboard: a, b, t, 1, 2, 3, a, b then Enter
        _keys(driver, "abt123ab")
        assert list(_checked(driver).values()) == ["A", "B", "tie", "A", "B", "tie", "A", "B"]
        _keys(driver, Keys.ENTER)
        wait_url(driver, base + "/item/3")
        assert driver.find_element(By.ID, "progress").get_attribute("value") == "2"
    finally:
        server.kill()  # SIGKILL mid-session: no shutdown hook runs
        server.wait()
    rows = sqlite3.connect(db).execute("SELECT COUNT(*) FROM judgements").fetchone()[0]
    assert rows == 2 * len(QUESTIONS)

    server = start_server(tmp_path / "pairs.jsonl", db, port, tmp_path / "server.log")
    try:
        driver.get(base + "/")  # the session cookie survives the restart; the app resumes at the first unrated item
        wait_url(driver, base + "/item/3")
        _keys(driver, Keys.ARROW_LEFT)  # back to revise item 2: its answers are shown
        wait_url(driver, base + "/item/2")
        assert list(_checked(driver).values()) == ["A", "B", "tie", "A", "B", "tie", "A", "B"]
        _keys(driver, "t" * len(QUESTIONS) + Keys.ENTER)
        wait_url(driver, base + "/item/3")
        _keys(driver, "b" * len(QUESTIONS) + Keys.ENTER)
        wait_url(driver, base + "/done")
        assert "rated 3 of 3" in driver.find_element(By.ID, "done").text
        # ben starts from scratch and sees none of ana's answers
        driver.delete_all_cookies()
        login(driver, base, tokens["ben"])
        wait_url(driver, base + "/item/1")
        assert _checked(driver) == {}
    finally:
        server.kill()
        server.wait()

    judgements = Store(db).rows()
    assert len(judgements) == 3 * len(QUESTIONS) and {r["rater"] for r in judgements} == {"ana"}
    assert {r["choice"] for r in judgements if r["item_id"] == "s02"} == {"tie"}
    assert {r["comment"] for r in judgements if r["item_id"] == "s01"} == {"clicked"}
    assert (
        main(
            ["rate", "report", "--db", str(db), "--key", str(tmp_path / "key.jsonl"), "--out", str(tmp_path / "rep"), "--bootstrap", "100"]
        )
        == 0
    )
    assert "24 judgements by 1 raters on 3 items" in (tmp_path / "rep" / "report.md").read_text()


def test_injection_replies_do_not_execute(tmp_path, driver):
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By

    pairs, _ = synthetic_pairs(3, injection=True)
    write_jsonl(tmp_path / "pairs.jsonl", pairs)
    db = tmp_path / "r.sqlite"
    token = Store(db).add_rater("ana")
    port = free_port()
    server = start_server(tmp_path / "pairs.jsonl", db, port, tmp_path / "server.log")
    try:
        login(driver, f"http://127.0.0.1:{port}", token)
        shown = set()
        for n in (1, 2, 3):
            driver.get(f"http://127.0.0.1:{port}/item/{n}")
            assert driver.execute_script("return typeof window.pwned") == "undefined"
            with pytest.raises(NoAlertPresentException):
                driver.switch_to.alert.text
            assert driver.find_elements(By.CSS_SELECTOR, ".reply img, .reply script, .context img, .context b") == []
            shown |= {driver.find_element(By.ID, "reply-a").text, driver.find_element(By.ID, "reply-b").text}
            assert INJECTIONS[0] in driver.find_element(By.CSS_SELECTOR, ".client").text
        assert shown == set(INJECTIONS)  # each injection string shown literally, as typed
    finally:
        server.kill()
        server.wait()
    assert "Token" not in (tmp_path / "server.log").read_text() and token not in (tmp_path / "server.log").read_text()
