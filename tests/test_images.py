import numpy as np
import pytest
import torch

from redegkit.io.images import (
    ImageDecodeError,
    decode_image,
    encode_image,
    from_tensor,
    to_tensor,
    write_image,
)

from .conftest import gradient_rgb

BAD = {
    "truncated.jpg": "truncated JPEG",
    "truncated.png": "truncated PNG",
    "empty.jpg": "empty file",
    "not_an_image.png": "not a decodable image",
    "corrupt.jpg": "not a decodable image",
}


def test_every_odd_kind_decodes_or_fails_clearly(odd_folder):
    folder, files = odd_folder
    for name, path in files.items():
        if name in BAD:
            with pytest.raises(ImageDecodeError) as e:
                decode_image(path)
            assert str(path) in str(e.value) and BAD[name] in e.value.reason, (name, str(e.value))
        else:
            img = decode_image(path)
            assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3, name


def test_sixteen_bit_and_gray_and_palette_values(odd_folder):
    _, files = odd_folder
    ref = decode_image(files["ok.png"])
    assert np.array_equal(decode_image(files["sixteen_bit.png"]), ref)  # 16-bit scaled exactly
    g = decode_image(files["gray.png"])
    assert np.array_equal(g[..., 0], g[..., 1]) and np.array_equal(g[..., 0], ref[..., 0])
    pal = decode_image(files["palette.png"]).astype(int)
    assert np.abs(pal - ref).mean() < 12  # adaptive palette: close, not exact


def test_alpha_policies(odd_folder):
    _, files = odd_folder
    ref = decode_image(files["ok.png"]).astype(np.float32)
    comp = decode_image(files["rgba.png"], alpha="composite", background=(255, 255, 255)).astype(np.float32)
    drop = decode_image(files["rgba.png"], alpha="drop")
    assert np.array_equal(drop, ref.astype(np.uint8))
    expected = ref * (128 / 255) + 255 * (1 - 128 / 255)
    assert np.abs(comp - expected).max() <= 1.0


def test_exif_orientation_applied(odd_folder):
    _, files = odd_folder
    plain = decode_image(files["ok.jpg"])
    rotated = decode_image(files["rotated_exif.jpg"])
    h, w = plain.shape[:2]
    assert rotated.shape[:2] == (w, h)
    # orientation 6 = the stored image must be rotated 90° clockwise for display
    expect = np.rot90(plain, k=-1)
    assert np.abs(rotated.astype(int) - expect.astype(int)).mean() < 4


def test_cmyk_jpeg_colours_close(odd_folder):
    _, files = odd_folder
    ref = decode_image(files["ok.png"]).astype(int)
    cmyk = decode_image(files["cmyk.jpg"]).astype(int)
    assert cmyk.shape == ref.shape
    assert np.abs(cmyk - ref).mean() < 10


def test_encode_roundtrip_and_determinism(tmp_path):
    img = gradient_rgb(33, 47)
    a, b = encode_image(img, "png"), encode_image(img, "png")
    assert a == b
    assert np.array_equal(decode_image(a), img)
    p = write_image(tmp_path / "x" / "y.png", img)
    assert np.array_equal(decode_image(p), img)
    assert not list((tmp_path / "x").glob("*.tmp"))
    with pytest.raises(ValueError, match="expected RGB uint8"):
        encode_image(img.astype(np.float32))


def test_tensor_conversion_roundtrip():
    img = gradient_rgb(16, 24)
    t = to_tensor(img)
    assert t.shape == (3, 16, 24) and t.dtype == torch.float32
    assert t.min() >= -1 and t.max() <= 1
    assert np.array_equal(from_tensor(t), img)
    batch = to_tensor(np.stack([img, img]))
    assert batch.shape == (2, 3, 16, 24)
    assert np.array_equal(from_tensor(batch)[1], img)


def test_jpeg_with_a_large_trailer_decodes_and_a_cut_one_is_truncated(tmp_path):
    # A Motion Photo appends a video after the JPEG's end-of-image marker: far more than 64 KiB
    # with no FF D9 near the end of the file. The decoder, not a byte search, decides.
    img = gradient_rgb(96, 128)
    jpg = encode_image(img, "jpg", quality=90)
    trailer = b"\x00\x00\x00\x18ftypmp42" + bytes(300_000)
    p = tmp_path / "motion.jpg"
    p.write_bytes(jpg + trailer)
    assert np.array_equal(decode_image(p), decode_image(jpg))
    for cut in (len(jpg) // 2, len(jpg) - 2):  # mid-scan, and only the end-of-image marker missing
        with pytest.raises(ImageDecodeError, match="truncated JPEG"):
            decode_image(jpg[:cut], path="cut.jpg")
