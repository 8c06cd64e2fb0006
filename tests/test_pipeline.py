"""The one way from an image file to a vector (clipsearch_onnx/pipeline.py) and the decoding under
it (clipsearch_onnx/decode.py): fidelity to the reference on a checkpoint that shows pixel
differences, geometry of reduced decodes, file facts, and bad files as values, not exceptions."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageOps

from clipsearch_onnx import turbo
from clipsearch_onnx.decode import (
    DATE_TIME_ORIGINAL,
    EXIF_IFD,
    ORIENTATION,
    _upright_box,
    decode,
    load_image,
    read_facts,
)
from clipsearch_onnx.errors import ImageError
from clipsearch_onnx.pipeline import (
    FAST,
    REFERENCE,
    decoded_batches,
    read_bytes,
    read_file,
    reduce_to,
)
from clipsearch_onnx.preprocess import Preprocessor
from tests.factories import CLIP_MEAN, CLIP_STD, make_detailed_jpegs, make_sensitive_clip

WEB = [(500, 375), (640, 480), (375, 500), (800, 600)]
PHOTO = [(1600, 1200), (1536, 2048)]


@pytest.fixture(scope="module")
def sensitive(tmp_path_factory):
    """(preprocessor, transformers' processor, fp32 PyTorch image embedding) of the sensitive
    tiny checkpoint."""
    import torch
    from transformers import CLIPImageProcessor, CLIPModel

    ckpt = make_sensitive_clip(tmp_path_factory.mktemp("sensitive"), image_size=32)
    model = CLIPModel.from_pretrained(ckpt).eval()

    def embed(pixels: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            out = model.get_image_features(pixel_values=torch.from_numpy(pixels))
        return torch.nn.functional.normalize(out, dim=-1).numpy()

    processor = CLIPImageProcessor.from_pretrained(ckpt)
    return Preprocessor(32, 32, CLIP_MEAN, CLIP_STD), processor, embed


@pytest.fixture(params=["simplejpeg", "pillow"])
def jpeg_decoder(request, monkeypatch):
    """FAST decoding with libjpeg-turbo's M/8 scales (simplejpeg), and without (Pillow's draft)."""
    if request.param == "simplejpeg" and not turbo.available():
        pytest.skip("simplejpeg (the `decode` extra) is not installed")
    if request.param == "pillow":
        monkeypatch.setattr(turbo, "simplejpeg", None)
    return request.param


def test_fast_decoding_stays_within_the_bar_of_the_reference(sensitive, tmp_path, jpeg_decoder):
    pre, processor, embed = sensitive
    paths = make_detailed_jpegs(tmp_path, WEB + PHOTO, seed=7)
    reference = np.stack([read_file(p, pre, REFERENCE).pixels for p in paths])
    full = [load_image(p) for p in paths]
    want = processor(full, return_tensors="np")["pixel_values"]
    assert np.abs(reference - want).max() < 1e-5  # REFERENCE is transformers' own result

    fast = np.stack([read_file(p, pre, FAST).pixels for p in paths])
    for path, img in zip(paths, full, strict=True):
        assert decode(path, reduce_to=reduce_to(pre)).image.width < img.width  # it did reduce
    ref_emb = embed(reference)
    cos = (embed(fast) * ref_emb).sum(axis=1)
    assert cos.min() >= 0.998 and cos.mean() >= 0.9995, cos  # the bar (pipeline.py)

    # The checkpoint is sensitive enough to tell: the old draft mode (decoded down to 1x the
    # target, resized with the reduced image's own geometry) falls below the bar.
    old = [pre.pixels(load_image(p, draft=True, min_side=32)) for p in paths]
    assert (embed(np.stack(old)) * ref_emb).sum(axis=1).min() < 0.998
    others = ref_emb @ ref_emb.T
    assert others[~np.eye(len(paths), dtype=bool)].mean() < 0.8


@pytest.mark.parametrize("orientation", range(1, 9))
def test_the_picture_box_turns_with_the_picture(orientation):
    arr = np.zeros((5, 7), dtype=np.uint8)
    arr[0:2, 0:3] = 255  # the box (0, 0, 3, 2) of a 7x5 picture
    img = Image.fromarray(arr)
    img.getexif()[ORIENTATION] = orientation
    turned = np.asarray(ImageOps.exif_transpose(img))
    x0, y0, x1, y1 = (int(v) for v in _upright_box((0, 0, 3, 2), (7, 5), orientation))
    assert turned[y0:y1, x0:x1].all() and int(turned.sum()) == 6 * 255


def _jpeg_with_exif(path, size, orientation=1, taken=None):
    img = make_detailed_jpegs(path.parent / "src", [size], seed=orientation)[0]
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    if taken is not None:
        exif.get_ifd(EXIF_IFD)[DATE_TIME_ORIGINAL] = taken
    Image.open(img).save(path, quality=90, exif=exif)
    return path


@pytest.mark.parametrize("orientation", [1, 2, 3, 6, 8])
def test_reduced_decodes_keep_the_full_geometry_in_every_orientation(tmp_path, orientation):
    pre = Preprocessor(40, 40, CLIP_MEAN, CLIP_STD)
    # 1001 x 751 does not divide by the 1/4 scale: the last column and row are partial pixels.
    path = _jpeg_with_exif(tmp_path / "turned.jpg", (1001, 751), orientation)
    fast, ref = read_file(path, pre, FAST), read_file(path, pre, REFERENCE)
    upright = (751, 1001) if orientation >= 5 else (1001, 751)
    assert (fast.facts.width, fast.facts.height) == upright == (ref.facts.width, ref.facts.height)
    assert decode(path, reduce_to=reduce_to(pre)).image.size == ((251, 188)[::-1] if
                                                                 orientation >= 5 else (251, 188))  # fmt: skip
    assert np.abs(fast.pixels - ref.pixels).mean() < 0.01  # normalised units: ~0.7 grey levels


def test_simplejpeg_decodes_at_eighths_and_leaves_damage_to_pillow(tmp_path):
    if not turbo.available():
        pytest.skip("simplejpeg (the `decode` extra) is not installed")
    pre = Preprocessor(96, 96, CLIP_MEAN, CLIP_STD)  # 4x: at least 384 px on the short side
    (path,) = make_detailed_jpegs(tmp_path, [(1600, 1200)], seed=5)
    decoded = decode(path, reduce_to=reduce_to(pre))
    assert decoded.image.size == (600, 450) and decoded.box == (0, 0, 600, 450)  # 3/8
    fast, ref = read_file(path, pre, FAST), read_file(path, pre, REFERENCE)
    assert np.abs(fast.pixels - ref.pixels).mean() < 0.01

    # Bytes libjpeg-turbo warns about (strict simplejpeg refuses them): Pillow decodes the file,
    # as the reference decoding does.
    data = path.read_bytes()
    sos = data.index(b"\xff\xda")
    odd = tmp_path / "odd.jpg"
    odd.write_bytes(data[:sos] + b"\x00\x00" + data[sos:])
    assert turbo.decode_scaled(odd.read_bytes(), (384, 384)) is None
    assert np.abs(read_file(odd, pre, FAST).pixels - ref.pixels).mean() < 0.01


def test_file_facts_come_from_the_header(tmp_path):
    path = _jpeg_with_exif(tmp_path / "a.jpg", (64, 48), 6, taken="2021:07:04 12:30:05")
    facts = read_file(path, Preprocessor(32, 32, CLIP_MEAN, CLIP_STD)).facts
    assert (facts.width, facts.height, facts.taken) == (48, 64, "2021-07-04T12:30:05")
    assert read_facts(path) == facts
    for bad in ("2021:13:04 12:30:05", "yesterday", "    :  :     :  :  "):
        assert read_facts(_jpeg_with_exif(tmp_path / "b.jpg", (8, 8), 1, taken=bad)).taken is None
    assert read_facts(_jpeg_with_exif(tmp_path / "c.jpg", (8, 6))).taken is None


def test_any_failure_of_one_file_is_that_file_s_error(tmp_path, monkeypatch):
    pre = Preprocessor(32, 32, CLIP_MEAN, CLIP_STD)
    paths = make_detailed_jpegs(tmp_path, [(40, 30)] * 5, seed=1)
    (tmp_path / "empty.jpg").write_bytes(b"")
    paths.insert(2, tmp_path / "empty.jpg")
    paths.insert(4, tmp_path / "missing.jpg")
    real = Preprocessor.pixels

    def flaky(self, image, box=None, size=None):
        if image.size == (40, 30) and flaky.calls == 3:  # a decoder bug tripped by one file
            flaky.calls += 1
            raise IndexError("list index out of range")
        flaky.calls += 1
        return real(self, image, box, size)

    flaky.calls = 0
    monkeypatch.setattr(Preprocessor, "pixels", flaky)
    batches = list(decoded_batches(paths, str, pre, batch_size=3, workers=1))
    assert [len(b) for b in batches] == [3, 3, 1]
    outcomes = [o for b in batches for o in b]
    assert [item for item, _ in outcomes] == paths
    errors = {str(item): o.reason for item, o in outcomes if isinstance(o, ImageError)}
    assert errors[str(tmp_path / "empty.jpg")] == "empty file"
    assert errors[str(tmp_path / "missing.jpg")] == "no such file"
    assert [r for r in errors.values() if "IndexError: list index out of range" in r]
    assert len(errors) == 3
    with pytest.raises(ImageError, match="not an image"):
        read_bytes(b"GIF89a\x00", "upload.gif", pre)


def test_a_huge_file_that_is_no_image_is_refused_before_it_is_read(tmp_path):
    import tracemalloc

    pre = Preprocessor(32, 32, CLIP_MEAN, CLIP_STD)
    video = tmp_path / "clip.jpg"
    with open(video, "wb") as fh:  # sparse: 200 MB that take no disk
        fh.write(b"\x00\x00\x00\x18ftypmp42")
        fh.truncate(200 << 20)
    big = tmp_path / "big.png"  # a real image's header, on a file over the size that is checked
    Image.new("RGB", (64, 48), "red").save(big)
    with open(big, "ab") as fh:
        fh.truncate(40 << 20)
    tracemalloc.start()
    try:
        with pytest.raises(ImageError, match="not an image"):
            read_file(video, pre)
        peak = tracemalloc.get_traced_memory()[1]
        assert peak < 20 << 20, f"{peak / 1e6:.0f} MB were read"
        assert read_file(big, pre).pixels.shape == (3, 32, 32)  # read whole, as before
    finally:
        tracemalloc.stop()
