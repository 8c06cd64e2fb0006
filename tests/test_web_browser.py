"""The page of `clipsearch serve` in a real headless browser: Debian's chromium driven by
Playwright (never a downloaded browser). CI installs chromium first (`.ci/run`), and sets
CLIPSEARCH_REQUIRE_BROWSER=1 so that a missing browser fails there instead of skipping."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIMEOUT_MS = 30_000
LOADED = "n => [...document.querySelectorAll('#results img')].filter(i => i.complete && i.naturalWidth > 0).length === n"


def chromium() -> str:
    path = CHROMIUM if os.access(CHROMIUM, os.X_OK) else shutil.which("chromium")
    if path:
        return path
    reason = f"Debian's chromium is not installed ({CHROMIUM}; apt-get install chromium)"
    if os.environ.get("CLIPSEARCH_REQUIRE_BROWSER"):
        pytest.fail(reason + " but CLIPSEARCH_REQUIRE_BROWSER is set")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def page(web_server, tmp_path_factory):
    from playwright.sync_api import sync_playwright

    executable = chromium()
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile), executable_path=executable, headless=True, args=ARGS
        )
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        page.goto(web_server.url + "/")
        yield page
        context.close()


def open_search(page, url: str, text: str, k: int) -> None:
    from urllib.parse import urlencode

    page.goto(f"{url}/?{urlencode({'q': text, 'k': k})}")
    page.wait_for_function(LOADED, arg=k)


def first_path(page) -> str:
    return page.locator("#results .result").first.get_attribute("title")


def test_a_text_search_shows_k_loaded_thumbnails(page, web_server):
    open_search(page, web_server.url, "a dog running on the beach", 10)
    assert page.locator("#results .result").count() == 10
    assert page.input_value("#q") == "a dog running on the beach"
    assert "10 results" in page.text_content("#status")
    assert page.locator("#error").is_hidden()


def test_an_uploaded_image_comes_back_first(page, web_server, web_collection):
    target: Path = web_collection.images[9]
    open_search(page, web_server.url, "a cat", 10)
    page.set_input_files("#file", str(target))
    page.wait_for_function(
        "p => document.querySelector('#results .result')?.title === p", arg=str(target)
    )
    page.wait_for_function(LOADED, arg=10)
    assert page.locator("#chosen").is_visible()


def test_more_like_this_opens_the_larger_view_and_searches_from_it(
    page, web_server, web_collection
):
    open_search(page, web_server.url, "a red car", 10)
    third = page.locator("#results .result").nth(2)
    path = third.get_attribute("title")
    third.click()
    dialog = page.locator("#detail")
    dialog.wait_for(state="visible")
    page.wait_for_function("() => document.querySelector('#detail-img').naturalWidth > 0")
    assert page.text_content("#detail-path") == path
    captions = page.locator("#detail-captions li").all_text_contents()
    assert captions == web_collection.captions[Path(path).name]
    page.click("#more")
    page.wait_for_function("p => document.querySelector('#results .result')?.title === p", arg=path)
    assert dialog.is_hidden()
    assert "pictures like" in page.text_content("#status")


def test_an_error_shows_a_message(page, web_server, tmp_path):
    open_search(page, web_server.url, "a cat", 10)
    junk = tmp_path / "not-a-picture.jpg"
    junk.write_bytes(os.urandom(4096))
    page.set_input_files("#file", str(junk))
    page.locator("#error").wait_for(state="visible")
    assert "not an image" in page.text_content("#error")


def shown_paths(page) -> list[str]:
    return page.eval_on_selector_all("#results .result", "cards => cards.map(c => c.title)")


def test_a_folder_filter_narrows_the_results_and_stays_in_the_link(
    page, web_server, web_collection
):
    trips = web_collection.photos / "trips"
    in_trips = sorted(str(p) for p in web_collection.images if p.parent == trips)
    assert 0 < len(in_trips) < len(web_collection.images)
    open_search(page, web_server.url, "a dog running on the beach", 10)
    page.click("#filters summary")
    page.fill("#f-under", str(trips))
    page.select_option("#f-sort", "path")
    page.press("#f-under", "Enter")
    page.wait_for_function(LOADED, arg=len(in_trips))
    assert shown_paths(page) == in_trips  # all of them, sorted by path
    assert page.locator("#error").is_hidden()
    link = page.url
    assert parse_qs(urlsplit(link).query)["under"] == [str(trips)]

    fresh = page.context.new_page()  # the link as shared, in a page of its own
    try:
        fresh.goto(link)
        fresh.wait_for_function(LOADED, arg=len(in_trips))
        assert shown_paths(fresh) == in_trips
        assert fresh.input_value("#f-under") == str(trips)
        assert fresh.locator("#filters").get_attribute("open") is not None
    finally:
        fresh.close()

    page.locator("#results .result").nth(1).click()  # more like this keeps the filter
    page.click("#more")
    page.wait_for_function(
        "() => document.querySelector('#status').textContent.includes('pictures like')"
    )
    page.wait_for_function(LOADED, arg=len(in_trips))
    assert sorted(shown_paths(page)) == in_trips

    outside = next(p for p in web_collection.images if p.parent != trips)
    page.set_input_files("#file", str(outside))  # and so does an upload
    page.wait_for_function(
        "n => document.querySelector('#status').textContent.includes(`like ${n} in`)",
        arg=outside.name,
    )
    page.wait_for_function(LOADED, arg=len(in_trips))
    assert sorted(shown_paths(page)) == in_trips

    page.fill("#f-min_size", "big")  # the API's own message for a bad value
    page.press("#f-min_size", "Enter")
    page.locator("#error").wait_for(state="visible")
    assert "800x600" in page.text_content("#error")
    page.click("#clear-filters")
    assert page.input_value("#f-under") == ""
