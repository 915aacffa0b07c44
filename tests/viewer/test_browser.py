"""The viewer in a real headless Chromium (Debian's chromium and chromium-driver, through Selenium):
mail appears in the list without a reload, the message page shows the rendered HTML, the attachment and
the delivery timeline, and a script in the HTML part does not run. Screenshots go to artifacts/viewer/."""

from __future__ import annotations

import base64
import shutil
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from tests.support import HOST
from tests.viewer.conftest import ROOT

pytestmark = pytest.mark.e2e

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
SCREENSHOTS = ROOT / "artifacts" / "viewer"
INVOICE = b"%PDF-1.4\n% invoice 42\n"
# Each script, if it ran, would rewrite the greeting: the sandbox and the CSP must both stop it.
HOSTILE_HTML = (
    '<h1 id="greeting">Welcome, Alice</h1><p>Your invoice is attached.</p>'
    "<script>document.getElementById('greeting').textContent = 'script ran';</script>"
    "<img src=\"data:,\" onerror=\"document.getElementById('greeting').textContent = 'handler ran'\">"
    '<img src="{pixel}" alt="remote">'
)
PIXEL = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGP4z8DwHwAFAAH/iZk9HQAAAABJRU5ErkJggg=="
)


@pytest.fixture
def tracker() -> Iterator[tuple[str, list[str]]]:
    """A remote image on another origin (loopback), recording whether anything fetched it."""
    hits: list[str] = []

    class Pixel(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(PIXEL)))
            self.end_headers()
            self.wfile.write(PIXEL)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer((HOST, 0), Pixel)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://{HOST}:{server.server_address[1]}/pixel.png", hits
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip("chromium and chromium-driver are not installed (Debian packages; `make system-packages`)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900",
                     "--disable-gpu", "--no-first-run"):  # fmt: skip
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def wait(driver, timeout: float = 30):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.2)


def test_a_new_message_appears_opens_and_shows_html_attachment_and_timeline(stack, browser, tracker):
    from selenium.webdriver.common.by import By

    driver = browser
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    subject = f"Your invoice {uuid.uuid4().hex[:6]}"
    # Given: the list is open before the mail is sent
    driver.get(stack.viewer + "/")
    driver.execute_script("window.loadedOnce = true")
    # When: a message with HTML, text and an attachment, and a bounced one, go through the HTTP API
    message_id = stack.send(
        to=["Alice <alice@example.org>"], subject=subject, text="Welcome, Alice. Your invoice is attached.",
        html=HOSTILE_HTML.format(pixel=tracker[0]),
        attachments=[{"filename": "invoice-42.pdf", "content_type": "application/pdf",
                      "content": base64.b64encode(INVOICE).decode()}],
    )  # fmt: skip
    # Its own address: a bounce puts the address on the dev client's suppression list.
    bounced = stack.send(to=[f"bounce+list@{stack.info['simulator_domain']}"], subject=f"Bounced {subject}")
    # Then: both appear in the list, with their states, without a reload
    row = f"tr[data-id='{message_id}']"
    wait(driver).until(lambda d: "delivered" in d.find_element(By.CSS_SELECTOR, row).text)
    wait(driver).until(lambda d: "failed" in d.find_element(By.CSS_SELECTOR, f"tr[data-id='{bounced}']").text)
    assert driver.execute_script("return window.loadedOnce === true"), "the page was reloaded"
    assert subject in driver.find_element(By.CSS_SELECTOR, row).text
    driver.save_screenshot(str(SCREENSHOTS / "list.png"))

    # When: the message is opened from the list
    driver.find_element(By.CSS_SELECTOR, f"{row} a").click()
    wait(driver).until(lambda d: d.find_elements(By.ID, "html-part"))
    # Then: the timeline shows the attempt and the final state
    timeline = driver.find_element(By.ID, "timeline-entries").text
    assert "Accepted through the HTTP API" in timeline and "Delivered" in timeline
    assert "Attempt 1 via local-capture" in timeline and "250" in timeline
    # the attachment is a download link that serves the file
    link = driver.find_element(By.LINK_TEXT, "invoice-42.pdf")
    assert httpx.get(link.get_attribute("href"), timeout=10).content == INVOICE
    assert "Welcome, Alice. Your invoice is attached." in driver.find_element(By.ID, "text-part").text
    driver.set_window_size(1280, 1900)
    driver.save_screenshot(str(SCREENSHOTS / "message.png"))

    # the HTML part is rendered, and neither its script nor its event handler ran
    driver.switch_to.frame(driver.find_element(By.ID, "html-part"))
    try:
        greeting = wait(driver).until(lambda d: d.find_element(By.ID, "greeting"))
        assert greeting.text == "Welcome, Alice"
        assert "Your invoice is attached." in driver.find_element(By.TAG_NAME, "body").text
    finally:
        driver.switch_to.default_content()
        driver.set_window_size(1280, 900)
    # the remote image is not fetched until the reader asks for remote content
    assert tracker[1] == []
    driver.find_element(By.ID, "load-remote").click()
    wait(driver).until(lambda d: tracker[1])
    driver.switch_to.frame(driver.find_element(By.ID, "html-part"))
    try:
        assert driver.find_element(By.ID, "greeting").text == "Welcome, Alice"  # still no script
    finally:
        driver.switch_to.default_content()


def test_the_bounced_message_page_shows_its_refusal(stack, browser):
    from selenium.webdriver.common.by import By

    message_id = stack.send(to=[f"bounce+page@{stack.info['simulator_domain']}"], subject="Will bounce")
    stack.settled(message_id)
    browser.get(f"{stack.viewer}/messages/{message_id}")
    assert browser.find_element(By.ID, "state").text == "failed"
    timeline = browser.find_element(By.ID, "timeline-entries").text
    assert "Attempt 1 via simulator" in timeline and "550 5.1.1" in timeline and "Failed" in timeline
