"""The searcher calls a server needs: more like a catalogued image from its stored vector, an
uploaded image's bytes as a query, and a view of the searcher for another thread."""

from __future__ import annotations

import threading

import pytest

from clipsearch_onnx.errors import InputError
from clipsearch_onnx.search import open_searcher
from clipsearch_onnx.settings import Settings


@pytest.fixture(scope="module")
def searcher(indexed_collection):
    s = open_searcher(Settings(index_dir=indexed_collection.index))
    yield s
    s.close()


def test_similar_returns_the_image_itself_first_from_its_stored_vector(
    searcher, indexed_collection
):
    target = str(indexed_collection.images[5])
    (hit,) = searcher.search(image=target, k=1).results
    response = searcher.similar(hit.id, k=3)
    assert response.query == {"id": hit.id, "image": target}
    assert response.results[0].path == target
    assert response.results[0].score == pytest.approx(1.0, abs=1e-4)
    with pytest.raises(InputError, match="no image with id 999999"):
        searcher.similar(999_999)


def test_uploaded_bytes_search_like_the_file_they_came_from(searcher, indexed_collection):
    path = indexed_collection.images[7]
    from_file = searcher.search("a dog", image=path, k=5)
    from_bytes = searcher.search("a dog", image="upload.png", k=5, image_data=path.read_bytes())
    assert [r.path for r in from_bytes.results] == [r.path for r in from_file.results]
    assert from_bytes.query == {"text": "a dog", "image": "upload.png"}


def test_a_view_answers_on_another_thread(searcher):
    expected = [r.path for r in searcher.search("a red car", k=4).results]
    got: list[str] = []

    def work() -> None:
        view = searcher.view()
        try:
            got.extend(r.path for r in view.search("a red car", k=4).results)
        finally:
            view.close()

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert got == expected
