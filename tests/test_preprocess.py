"""Image loading and CLIP preprocessing, checked against transformers' CLIPImageProcessor."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageOps

from clipsearch_onnx.decode import MAX_PIXELS_ENV, load_image
from clipsearch_onnx.errors import ImageError, InputError
from clipsearch_onnx.preprocess import Preprocessor
from tests.factories import CLIP_MEAN, CLIP_STD, make_images

SIZES = [(8, 6), (6, 8), (1, 1), (32, 32), (33, 31), (31, 33), (40, 300), (300, 40),
         (999, 3), (101, 77), (640, 480), (480, 640), (225, 224)]  # fmt: skip


def reference(size: int, crop: int | None = None):
    from transformers import CLIPImageProcessor

    crop = crop or size
    proc = CLIPImageProcessor(
        size={"shortest_edge": size},
        crop_size={"height": crop, "width": crop},
        image_mean=CLIP_MEAN,
        image_std=CLIP_STD,
    )

    def run(images):
        out = proc(images, return_tensors="np", input_data_format="channels_last")
        return out["pixel_values"]

    return run


@pytest.fixture(scope="module")
def refs():
    return {32: reference(32), 224: reference(224)}


def ours(size: int, crop: int | None = None) -> Preprocessor:
    return Preprocessor(crop or size, size, CLIP_MEAN, CLIP_STD)


@pytest.mark.parametrize("side", [32, 224])
def test_matches_clip_image_processor_on_many_sizes(tmp_path, refs, side):
    images = []
    for i, size in enumerate(SIZES):
        (path,) = make_images(tmp_path / str(i), 1, size=size, seed=i)
        images.append(load_image(path))
    got = ours(side)(images)
    want = refs[side](images)
    assert got.dtype == np.float32 and got.shape == (len(SIZES), 3, side, side)
    assert np.abs(got - want).max() < 1e-5


def test_crop_larger_than_resize_pads_like_transformers(tmp_path):
    images = [load_image(p) for p in make_images(tmp_path, 3, size=(50, 20), seed=1)]
    got = ours(28, crop=32)(images)
    assert np.abs(got - reference(28, crop=32)(images)).max() < 1e-5


def test_non_rgb_inputs_are_converted_before_preprocessing(refs):
    rgb = Image.fromarray(np.random.default_rng(0).integers(0, 256, (20, 30, 3), np.uint8))
    got = ours(32)([rgb.convert("L"), rgb.convert("P"), rgb.convert("CMYK")])
    want = refs[32]([rgb.convert("L"), rgb.convert("P"), rgb.convert("CMYK")])
    assert np.abs(got - want).max() < 1e-5


# ---- load_image: modes ---------------------------------------------------------------------


def _save(img: Image.Image, path, **kw):
    img.save(path, **kw)
    return path


def test_modes_that_transformers_converts_alike(tmp_path, refs):
    rgb = make_images(tmp_path, 1, size=(37, 23), seed=5)[0]
    base = Image.open(rgb).convert("RGB")
    files = [
        _save(base, tmp_path / "rgb.png"),
        _save(base.convert("L"), tmp_path / "l.png"),
        _save(base.convert("1"), tmp_path / "bw.png"),
        _save(base.convert("P"), tmp_path / "p.png"),
        _save(base.convert("CMYK"), tmp_path / "cmyk.jpg"),
        _save(base.convert("YCbCr"), tmp_path / "ycbcr.tif"),
    ]
    for path in files:
        loaded = load_image(path)
        assert loaded.mode == "RGB" and loaded.size == (37, 23)
        raw = Image.open(path)
        assert np.abs(ours(32)([loaded]) - refs[32]([raw])).max() < 1e-5, path.name


def test_grey_stays_grey(tmp_path):
    grey = Image.fromarray(np.arange(256, dtype=np.uint8).reshape(16, 16), "L")
    arr = np.asarray(load_image(_save(grey, tmp_path / "g.png")))
    assert (arr[..., 0] == np.asarray(grey)).all() and (arr[..., 0] == arr[..., 2]).all()


def test_transparency_is_composited_over_white(tmp_path):
    rgba = np.zeros((4, 3, 4), np.uint8)
    rgba[0] = (200, 10, 10, 255)  # opaque red row
    rgba[1] = (0, 0, 0, 0)  # fully transparent (black underneath)
    rgba[2] = (0, 0, 0, 128)  # half-transparent black
    rgba[3] = (0, 0, 255, 0)
    img = Image.fromarray(rgba, "RGBA")
    for path in (_save(img, tmp_path / "a.png"), _save(img.convert("LA"), tmp_path / "la.png")):
        arr = np.asarray(load_image(path)).astype(int)
        assert (arr[1] == 255).all() and (arr[3] == 255).all(), path.name
        assert (abs(arr[2] - 127) <= 1).all(), path.name
    assert tuple(np.asarray(load_image(tmp_path / "a.png"))[0, 0]) == (200, 10, 10)

    pal = Image.new("P", (4, 2), 0)
    pal.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    pal.putpixel((0, 1), 1)
    path = _save(pal, tmp_path / "p.png", transparency=0)
    arr = np.asarray(load_image(path))
    assert tuple(arr[0, 0]) == (255, 255, 255) and tuple(arr[1, 0]) == (10, 200, 30)
    gif = _save(pal, tmp_path / "p.gif", transparency=0)
    assert tuple(np.asarray(load_image(gif))[0, 0]) == (255, 255, 255)


def test_high_bit_depth_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 257, 32896, 65535]], dtype=np.uint16)
    i16 = Image.fromarray(values)
    assert i16.mode == "I;16"
    arr = np.asarray(load_image(_save(i16, tmp_path / "deep.png")))[..., 0]
    assert list(arr[0]) == [0, 1, 128, 255]
    assert list(np.asarray(load_image(_save(i16, tmp_path / "deep.tif")))[0, :, 0]) == [
        0,
        1,
        128,
        255,
    ]

    floats = Image.fromarray(np.array([[-1.0, 0.0, 1.0]], dtype=np.float32))
    arr = np.asarray(load_image(_save(floats, tmp_path / "f.tif")))[..., 0]
    assert list(arr[0]) == [0, 128, 255]
    ints = Image.fromarray(np.array([[1000, 2000, 3000]], dtype=np.int32))
    assert list(np.asarray(load_image(_save(ints, tmp_path / "i.tif")))[0, :, 0]) == [0, 128, 255]


def test_cielab_tiff_converts_back_to_its_colour(tmp_path):
    from PIL import ImageCms

    srgb, lab = ImageCms.createProfile("sRGB"), ImageCms.createProfile("LAB")
    red = Image.new("RGB", (4, 4), (200, 30, 30))
    as_lab = ImageCms.applyTransform(red, ImageCms.buildTransform(srgb, lab, "RGB", "LAB"))
    pixel = np.asarray(load_image(_save(as_lab, tmp_path / "lab.tif")))[0, 0].astype(int)
    assert np.abs(pixel - (200, 30, 30)).max() <= 3


def test_exif_orientation_is_applied(tmp_path, refs):
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, :10] = (255, 0, 0)  # red strip on the left of the stored pixels
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = _save(Image.fromarray(arr), tmp_path / "rot.jpg", exif=exif, quality=95)
    loaded = load_image(path)
    assert loaded.size == (20, 40)
    top = np.asarray(loaded)[2, 10]
    assert top[0] > 200 and top[1] < 60  # the left strip is now on top
    upright = ImageOps.exif_transpose(Image.open(path))
    assert np.abs(ours(32)([loaded]) - refs[32]([upright])).max() < 1e-5


def test_animation_gives_first_frame(tmp_path):
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 0, 255))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50, loop=0)
    assert tuple(np.asarray(load_image(path))[4, 4]) == (255, 0, 0)


def test_bytes_already_read_decode_like_the_file(tmp_path):
    (path,) = make_images(tmp_path, 1, size=(30, 20), seed=2)
    same = load_image(tmp_path / "named-only.jpg", data=path.read_bytes())
    assert np.array_equal(np.asarray(same), np.asarray(load_image(path)))


def test_draft_decodes_large_jpegs_at_reduced_scale(tmp_path):
    (path,) = make_images(tmp_path, 1, size=(800, 600), seed=3)
    small = load_image(path, draft=True, min_side=100)
    assert min(small.size) >= 100 and small.size[0] < 800
    assert load_image(path).size == (800, 600)


# ---- load_image: errors --------------------------------------------------------------------


def _reason(path, **kw) -> str:
    with pytest.raises(ImageError) as info:
        load_image(path, **kw)
    assert info.value.path == path
    return info.value.reason


def test_unreadable_files_are_named_with_a_reason(tmp_path):
    assert _reason(tmp_path / "missing.jpg") == "no such file"
    assert "directory" in _reason(tmp_path)
    (tmp_path / "empty.jpg").write_bytes(b"")
    assert "not an image" in _reason(tmp_path / "empty.jpg")
    (tmp_path / "notes.jpg").write_text("this is not a picture\n")
    assert "not an image" in _reason(tmp_path / "notes.jpg")
    (path,) = make_images(tmp_path, 1, size=(64, 48), seed=4)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert "truncated" in _reason(cut)
    png = make_images(tmp_path / "png", 2, size=(64, 48), seed=4)[1]
    cut_png = tmp_path / "cut.png"
    cut_png.write_bytes(png.read_bytes()[: png.stat().st_size // 2])
    assert "truncated" in _reason(cut_png)


def test_pixel_limit_names_the_way_to_raise_it(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)  # restored after
    (path,) = make_images(tmp_path, 1, size=(40, 40), seed=6)  # 1,600 pixels
    monkeypatch.setenv(MAX_PIXELS_ENV, "1000")  # below twice the size: our own check
    reason = _reason(path)
    assert "1,600 pixels" in reason and "1,000" in reason
    assert MAX_PIXELS_ENV in reason and "MAX_IMAGE_PIXELS" in reason
    monkeypatch.setenv(MAX_PIXELS_ENV, "500")  # over twice: Pillow's DecompressionBombError
    reason = _reason(path)
    assert "too large" in reason and MAX_PIXELS_ENV in reason
    monkeypatch.setenv(MAX_PIXELS_ENV, "2000")
    assert load_image(path).size == (40, 40)
    monkeypatch.setenv(MAX_PIXELS_ENV, "0")  # no limit
    assert load_image(path).size == (40, 40)
    monkeypatch.delenv(MAX_PIXELS_ENV)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1200)  # Pillow's own setting is honoured
    assert "1,200" in _reason(path)
    monkeypatch.setenv(MAX_PIXELS_ENV, "lots")
    with pytest.raises(InputError, match=MAX_PIXELS_ENV):
        load_image(path)


# ---- property: every mode loads ------------------------------------------------------------

MODES = {  # mode -> formats that store it
    "1": ("png", "tif"), "L": ("png", "jpg", "tif"), "LA": ("png", "tif"), "P": ("png", "gif"),
    "RGB": ("png", "jpg", "webp"), "RGBA": ("png", "webp", "tif"), "CMYK": ("jpg", "tif"),
    "YCbCr": ("tif",), "I;16": ("png", "tif"), "I": ("tif",), "F": ("tif",), "PA": ("tif",),
}  # fmt: skip


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    mode=st.sampled_from(sorted(MODES)),
    data=st.data(),
    width=st.integers(1, 40),
    height=st.integers(1, 40),
    seed=st.integers(0, 2**16),
)
def test_any_mode_loads_as_rgb_of_the_same_size(tmp_path, mode, data, width, height, seed):
    fmt = data.draw(st.sampled_from(MODES[mode]))
    rng = np.random.default_rng(seed)
    img = Image.fromarray(rng.integers(0, 256, (height, width, 3), np.uint8))
    if mode in ("I;16", "I", "F"):
        depth = {"I;16": np.uint16, "I": np.int32, "F": np.float32}[mode]
        img = Image.fromarray(rng.integers(0, 60000, (height, width)).astype(depth))
        assert img.mode == mode
    elif mode == "PA":
        img = img.convert("RGBA").convert("PA")
    else:
        img = img.convert(mode)
    path = tmp_path / f"{mode.replace(';', '_')}-{width}x{height}.{fmt}"
    img.save(path)
    loaded = load_image(path)
    assert loaded.mode == "RGB" and loaded.size == (width, height)
    pixels = ours(32)([loaded])
    assert np.isfinite(pixels).all()
