"""The Flask example's search page in a real browser: headless Chromium driven by selenium.

The app runs in a real WSGI server (werkzeug's) on a loopback port, against a
real database; the browser types a query, submits the form, reads the results
table, applies a filter and follows a result's link.  ``.ci/run`` installs
Debian's ``chromium`` and ``chromium-driver``.  Set ``VECTORSTORE_SCREENSHOT``
to a path to keep the page's screenshot (``docs/img/search-page.png`` was
made so).
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import URL
from werkzeug.serving import make_server

import vectorstore as vs
from examples.flask_app import create_app

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

DOCUMENTS = [
    ("a cat sleeps on the warm mat", "pet"),
    ("the cat chased a mouse across the mat", "pet"),
    ("my dog runs in the park every morning", "pet"),
    ("bond yields rose as the cat of the markets woke", "finance"),
    ("the central bank raised interest rates", "finance"),
    ("a recipe for bread with a crisp crust", "food"),
]


@pytest.fixture
def served(vectorstore_url: URL) -> Iterator[str]:
    app = create_app({"VECTORSTORE_DATABASE_URL": vectorstore_url,
                      "VECTORSTORE_EMBEDDER": vs.HashingTestEmbedder()})  # fmt: skip
    engine = app.extensions["vectorstore"].engine
    with vs.DocumentRepository.standalone(engine, collection="documents",
                                          embedder=vs.HashingTestEmbedder()) as repo:  # fmt: skip
        repo.bulk_add([{"text": text, "metadata": {"kind": kind}, "external_id": f"d{i}"}
                       for i, (text, kind) in enumerate(DOCUMENTS)])  # fmt: skip
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join()
        server.server_close()
        engine.dispose()


@pytest.fixture
def browser() -> Iterator[Any]:
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip("needs Debian's chromium and chromium-driver (.ci/run installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1100,800"):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def results(browser: Any) -> list[dict[str, str]]:
    from selenium.webdriver.common.by import By

    rows = browser.find_elements(By.CSS_SELECTOR, "#results tbody tr")
    out = []
    for row in rows:
        cells = [c.text for c in row.find_elements(By.TAG_NAME, "td")]
        out.append({"score": cells[1], "text": cells[2], "metadata": cells[3]})
    return out


def submit(browser: Any, **fields: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    for name, value in fields.items():
        box = browser.find_element(By.ID, name)
        box.clear()
        box.send_keys(value)
    old = browser.find_element(By.TAG_NAME, "html")
    browser.find_element(By.ID, "go").click()
    # Wait for the next page load (a form submit), not for a fixed time.
    WebDriverWait(browser, 30).until(expected_conditions.staleness_of(old))


def test_search_filter_and_follow_a_result(served: str, browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    browser.get(served + "/")
    assert browser.find_element(By.ID, "q").get_attribute("value") == ""
    assert not browser.find_elements(By.ID, "results")

    submit(browser, q="cat on the mat")
    found = results(browser)
    assert found[0]["text"] in {DOCUMENTS[0][0], DOCUMENTS[1][0]}
    assert len(found) == len(DOCUMENTS)
    scores = [float(r["score"]) for r in found]
    assert scores == sorted(scores, reverse=True)
    assert browser.find_element(By.ID, "strategy").text in {"exact", "index", "iterative"}

    submit(browser, where="kind=finance")
    filtered = results(browser)
    assert [r["metadata"] for r in filtered] == ["kind=finance", "kind=finance"]
    assert filtered[0]["text"] == DOCUMENTS[3][0]
    assert browser.find_element(By.ID, "where").get_attribute("value") == "kind=finance"

    screenshot = Path(os.environ.get("VECTORSTORE_SCREENSHOT") or tmp_path / "search-page.png")
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(screenshot))
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    browser.find_element(By.CSS_SELECTOR, "#results tbody tr a").click()
    assert browser.find_element(By.ID, "text").text == DOCUMENTS[3][0]


def test_a_bad_query_shows_the_error_on_the_page(served: str, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    browser.get(served + "/?q=cats&where=broken")
    assert "where expects key=value" in browser.find_element(By.ID, "error").text
    assert not browser.find_elements(By.ID, "results")
