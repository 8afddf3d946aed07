"""Reading the image files users meet: compressed TIFF, BigTIFF, OME/ImageJ, PNG, JPEG, channels.

Fixture files are written here, small, by tifffile/PIL; pixels must read back exactly (JPEG:
within a stated tolerance). The real files in ../shared/data are read in place, or skipped.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
import tifffile
from PIL import Image

from nuclei_pa.errors import InputError
from nuclei_pa.io.images import list_images, load_raw, read_image, read_labels
from tests.realdata import DSB, KUMAR, require_real_data

H, W = 24, 32
RNG = np.random.default_rng(7)


def pixels(dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    """Random values over the type's range (floats: signed, fractional), so every bit counts."""
    if dtype == "float32":
        return RNG.normal(0, 1000, shape).astype(np.float32)
    info = np.iinfo(dtype)
    return RNG.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)


def smooth_rgb() -> tuple[np.ndarray, np.ndarray]:
    """Smooth grey and RGB ramps: JPEG's loss on them is small, a decoding bug is not."""
    y, x = np.mgrid[0:48, 0:64]
    grey = (20 + 2 * x + 2 * y).astype(np.uint8)
    rgb = np.stack(
        [
            grey,
            (230 - 1.5 * x).astype(np.uint8),
            (128 + 60 * np.sin(x / 8 + y / 10)).astype(np.uint8),
        ],
        axis=-1,
    )
    return grey, rgb


# JPEG is lossy (DCT quantisation, 4:2:0 chroma subsampling): on smooth_rgb it is off by ≤ 7
# grey levels (mean < 1) at the default quality; a wrong colour conversion, channel order or
# plane layout is off by tens, so this tolerance still catches decoding bugs.
JPEG_MAX, JPEG_MEAN = 10, 2.0


def assert_jpeg_close(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape and got.dtype == want.dtype
    diff = np.abs(got.astype(int) - want.astype(int))
    assert diff.max() <= JPEG_MAX and diff.mean() <= JPEG_MEAN, (diff.max(), diff.mean())


# ---------------------------------------------------------------------------- compressed TIFF

COMPRESSIONS = [None, "lzw", "zlib", "deflate", "packbits", "zstd"]


@pytest.mark.parametrize("compression", COMPRESSIONS)
@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32"])
@pytest.mark.parametrize("colour", [False, True], ids=["grey", "rgb"])
def test_compressed_tiff_reads_back_exactly(tmp_path, compression, dtype, colour):
    data = pixels(dtype, (H, W, 3) if colour else (H, W))
    path = tmp_path / "x.tif"
    tifffile.imwrite(
        path, data, photometric="rgb" if colour else "minisblack", compression=compression
    )
    got = read_image(path)
    assert got.dtype == data.dtype
    assert np.array_equal(got, data)


@pytest.mark.parametrize("compression", ["lzw", "zlib", "zstd"])
@pytest.mark.parametrize("dtype", ["uint16", "float32"])
def test_predictor_tiled_planar_tiff(tmp_path, compression, dtype):
    """Horizontal/floating-point predictors, tiles and planar RGB, as microscopes write them."""
    data = pixels(dtype, (3, 32, 48))
    path = tmp_path / "x.tif"
    tifffile.imwrite(
        path,
        data,
        photometric="rgb",
        planarconfig="separate",
        compression=compression,
        predictor=True,
        tile=(16, 16),
    )
    assert np.array_equal(read_image(path), np.moveaxis(data, 0, -1))


@pytest.mark.parametrize("colour", [False, True], ids=["grey", "rgb"])
def test_jpeg_compressed_tiff(tmp_path, colour):
    grey, rgb = smooth_rgb()
    data = rgb if colour else grey
    path = tmp_path / "x.tif"
    tifffile.imwrite(path, data, photometric="rgb" if colour else "minisblack", compression="jpeg")
    assert_jpeg_close(read_image(path), data)


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32"])
def test_bigtiff(tmp_path, dtype):
    grey, rgb = pixels(dtype, (H, W)), pixels(dtype, (H, W, 3))
    tifffile.imwrite(tmp_path / "g.tif", grey, bigtiff=True, compression="lzw")
    tifffile.imwrite(tmp_path / "c.tif", rgb, bigtiff=True, photometric="rgb", compression="zlib")
    assert tifffile.TiffFile(tmp_path / "g.tif").is_bigtiff
    assert np.array_equal(read_image(tmp_path / "g.tif"), grey)
    assert np.array_equal(read_image(tmp_path / "c.tif"), rgb)


def test_big_endian_tiff_is_returned_native(tmp_path):
    data = pixels("uint16", (H, W))
    tifffile.imwrite(tmp_path / "be.tif", data, byteorder=">", compression="lzw")
    got = read_image(tmp_path / "be.tif")
    assert got.dtype.isnative and np.array_equal(got, data)


# ---------------------------------------------------------------------------- OME and ImageJ


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32"])
def test_ome_grey(tmp_path, dtype):
    data = pixels(dtype, (H, W))
    tifffile.imwrite(tmp_path / "g.ome.tif", data, ome=True, metadata={"axes": "YX"})
    assert np.array_equal(read_image(tmp_path / "g.ome.tif"), data)


def test_ome_colour_interleaved_and_planar(tmp_path):
    rgb = pixels("uint8", (H, W, 3))
    tifffile.imwrite(
        tmp_path / "yxc.ome.tif",
        rgb,
        ome=True,
        photometric="rgb",
        metadata={"axes": "YXC"},
        compression="lzw",
    )
    tifffile.imwrite(
        tmp_path / "cyx.ome.tif",
        np.moveaxis(rgb, -1, 0),
        ome=True,
        photometric="rgb",
        planarconfig="separate",
        metadata={"axes": "CYX"},
    )
    for name in ("yxc.ome.tif", "cyx.ome.tif"):
        got = read_image(tmp_path / name)
        assert got.shape == (H, W, 3) and np.array_equal(got, rgb), name


def test_ome_singleton_leading_axes_are_squeezed(tmp_path):
    grey = pixels("uint16", (H, W))
    tifffile.imwrite(
        tmp_path / "t.ome.tif", grey[None, None, None], ome=True, metadata={"axes": "TZCYX"}
    )
    assert np.array_equal(read_image(tmp_path / "t.ome.tif"), grey)
    tifffile.imwrite(tmp_path / "z.ome.tif", grey[None], ome=True, metadata={"axes": "ZYX"})
    assert np.array_equal(read_labels(tmp_path / "z.ome.tif"), grey.astype(np.int32))


def test_ome_pyramid_reads_full_resolution(tmp_path):
    grey = pixels("uint8", (64, 64))
    with tifffile.TiffWriter(tmp_path / "p.ome.tif", ome=True) as tif:
        tif.write(grey, subifds=1, tile=(16, 16), compression="zlib", metadata={"axes": "YX"})
        tif.write(grey[::2, ::2], subfiletype=1, tile=(16, 16), compression="zlib")
    assert np.array_equal(read_image(tmp_path / "p.ome.tif"), grey)


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32"])
@pytest.mark.parametrize("layout", ["ome-CYX", "ome-TCZYX", "imagej-CYX", "minisblack-YXC"])
def test_multichannel_needs_a_channel(tmp_path, dtype, layout):
    chans = pixels(dtype, (3, H, W))  # 3 grey channels: stains, not an RGB image
    path = tmp_path / "m.tif"
    if layout == "ome-CYX":
        tifffile.imwrite(path, chans, ome=True, metadata={"axes": "CYX"}, compression="zlib")
    elif layout == "ome-TCZYX":
        tifffile.imwrite(path, chans[None, :, None], ome=True, metadata={"axes": "TCZYX"})
    elif layout == "imagej-CYX":
        tifffile.imwrite(path, chans, imagej=True, metadata={"axes": "CYX"})
    else:  # one page, 3 samples per pixel, photometric MINISBLACK: channels, not colour
        tifffile.imwrite(
            path, np.moveaxis(chans, 0, -1), photometric="minisblack", planarconfig="contig"
        )
    with pytest.raises(InputError, match=r"3 channels.*choose one with the channel option"):
        read_image(path)
    for c in range(3):
        got = read_image(path, channel=c)
        assert got.shape == (H, W) and got.dtype == chans.dtype
        assert np.array_equal(got, chans[c])
    assert np.array_equal(load_raw(path, channel=2), chans[2])
    with pytest.raises(InputError, match=r"channel 3 is out of range: the image has 3 channels"):
        read_image(path, channel=3)
    with pytest.raises(InputError, match="out of range"):
        read_image(path, channel=-1)


def test_two_channel_fluorescence(tmp_path):
    chans = pixels("uint16", (2, H, W))
    tifffile.imwrite(tmp_path / "c2.ome.tif", chans, ome=True, metadata={"axes": "CYX"})
    with pytest.raises(InputError, match=r"2 channels \(axes CYX.*\(0 to 1\)"):
        read_image(tmp_path / "c2.ome.tif")
    assert np.array_equal(read_image(tmp_path / "c2.ome.tif", channel=1), chans[1])


def test_channel_of_rgb_and_grey(tmp_path):
    rgb = pixels("uint8", (H, W, 3))
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb", compression="lzw")
    assert np.array_equal(read_image(tmp_path / "rgb.tif", channel=2), rgb[..., 2])
    grey = pixels("uint16", (H, W))
    tifffile.imwrite(tmp_path / "g.tif", grey)
    assert np.array_equal(read_image(tmp_path / "g.tif", channel=0), grey)
    with pytest.raises(InputError, match="the image has 1 channel "):
        read_image(tmp_path / "g.tif", channel=1)
    with pytest.raises(InputError, match="channel must be an integer"):
        read_image(tmp_path / "g.tif", channel=1.5)  # type: ignore[arg-type]


def test_stacks_stay_rejected_with_a_channel(tmp_path):
    zc = pixels("uint8", (4, 2, H, W))
    tifffile.imwrite(tmp_path / "zc.ome.tif", zc, ome=True, metadata={"axes": "ZCYX"})
    with pytest.raises(InputError, match=r"4-D array of shape \(4, 2, 24, 32\) \(axes ZCYX\)"):
        read_image(tmp_path / "zc.ome.tif")
    with pytest.raises(InputError, match=r"3-D array of shape \(4, 24, 32\) \(axes ZYX\)"):
        read_image(tmp_path / "zc.ome.tif", channel=1)
    # plain multi-page TIFF: pages of unknown meaning (z-planes? channels?)
    tifffile.imwrite(tmp_path / "q.tif", zc[:, 0], photometric="minisblack")
    with pytest.raises(InputError, match=r"3-D array.*axes QYX.*save it with axes metadata"):
        read_image(tmp_path / "q.tif")


# ---------------------------------------------------------------------------- PNG and JPEG


@pytest.mark.parametrize(
    ("mode_data"),
    [pixels("uint8", (H, W)), pixels("uint8", (H, W, 3)), pixels("uint16", (H, W))],
    ids=["grey8", "rgb8", "grey16"],
)
def test_png(tmp_path, mode_data):
    Image.fromarray(mode_data).save(tmp_path / "x.png")
    got = read_image(tmp_path / "x.png")
    assert got.dtype == mode_data.dtype and np.array_equal(got, mode_data)


def test_png_grey_alpha_is_two_channels(tmp_path):
    la = pixels("uint8", (H, W, 2))
    Image.fromarray(la, mode="LA").save(tmp_path / "la.png")
    with pytest.raises(InputError, match="2 channels"):
        read_image(tmp_path / "la.png")
    assert np.array_equal(read_image(tmp_path / "la.png", channel=0), la[..., 0])


@pytest.mark.parametrize("suffix", [".jpg", ".jpeg"])
@pytest.mark.parametrize("colour", [False, True], ids=["grey", "rgb"])
def test_jpeg(tmp_path, suffix, colour):
    grey, rgb = smooth_rgb()
    data = rgb if colour else grey
    Image.fromarray(data).save(tmp_path / f"x{suffix}", quality=90)
    assert_jpeg_close(read_image(tmp_path / f"x{suffix}"), data)
    assert [p.name for p in list_images(tmp_path)] == [f"x{suffix}"]


# ---------------------------------------------------------------------------- failures


def hide_imagecodecs(monkeypatch, backend=None) -> None:
    """Make tifffile decode as it does without imagecodecs (its pure-Python fallbacks only).

    Call it after writing the test files. tifffile caches codecs in TIFF.*COMPRESSORS and
    *PREDICTORS; fresh, monkeypatched ones keep the simulation from leaking into other tests.
    """
    import tifffile.tifffile as tt
    from tifffile import _imagecodecs

    monkeypatch.setattr(tt, "imagecodecs", _imagecodecs if backend is None else backend)
    for name, codec in [
        ("COMPRESSORS", tt.CompressionCodec(encode=True)),
        ("DECOMPRESSORS", tt.CompressionCodec(encode=False)),
        ("PREDICTORS", tt.PredictorCodec(encode=True)),
        ("UNPREDICTORS", tt.PredictorCodec(encode=False)),
    ]:
        monkeypatch.setattr(tt.TIFF, name, codec)


def test_missing_codec_is_named_not_called_truncated(tmp_path, monkeypatch):
    data = pixels("uint8", (H, W, 3))
    for compression in ("lzw", "zlib", "packbits"):
        tifffile.imwrite(
            tmp_path / f"{compression}.tif", data, photometric="rgb", compression=compression
        )
    hide_imagecodecs(monkeypatch)
    # what tifffile itself raises without imagecodecs (our message depends on it):
    with pytest.raises(ValueError, match=r"<COMPRESSION\.LZW: 5> requires the 'imagecodecs'"):
        tifffile.imread(tmp_path / "lzw.tif")
    with pytest.raises(InputError) as err:
        read_image(tmp_path / "lzw.tif")
    msg = str(err.value)
    assert "lzw.tif" in msg and "truncated" not in msg and "unreadable" not in msg
    assert "needs the LZW codec from the 'imagecodecs' package, which is not installed" in msg
    assert "pip install imagecodecs" in msg
    # tifffile alone still decodes zlib and PackBits
    assert np.array_equal(read_image(tmp_path / "zlib.tif"), data)
    assert np.array_equal(read_image(tmp_path / "packbits.tif"), data)


def test_missing_predictor_is_named(tmp_path, monkeypatch):
    tifffile.imwrite(
        tmp_path / "f.tif", pixels("float32", (H, W)), compression="zlib", predictor=True
    )
    hide_imagecodecs(monkeypatch)
    with pytest.raises(InputError, match=r"needs the FLOATINGPOINT predictor .* not installed"):
        read_image(tmp_path / "f.tif")


def test_codec_missing_from_installed_imagecodecs(tmp_path, monkeypatch):
    """imagecodecs present but built without the codec: say so, not 'not installed'."""
    import types

    tifffile.imwrite(tmp_path / "l.tif", pixels("uint8", (H, W)), compression="lzw")
    stub = types.SimpleNamespace(__name__="imagecodecs", __version__="2099.1.1")  # no codecs
    hide_imagecodecs(monkeypatch, backend=stub)
    with pytest.raises(
        InputError, match=r"needs the LZW codec .* imagecodecs 2099\.1\.1 was built"
    ):
        read_image(tmp_path / "l.tif")


def test_zstd_without_imagecodecs(tmp_path, monkeypatch):
    """tifffile's fallback takes zstd from the stdlib (Python ≥ 3.14), else fails on import."""
    data = pixels("uint16", (H, W))
    tifffile.imwrite(tmp_path / "z.tif", data, compression="zstd")
    hide_imagecodecs(monkeypatch)
    if sys.version_info >= (3, 14):
        assert np.array_equal(read_image(tmp_path / "z.tif"), data)
    else:
        with pytest.raises(InputError, match=r"needs the ZSTD codec .* not installed .*: pip"):
            read_image(tmp_path / "z.tif")


@pytest.mark.parametrize("compression", [None, "lzw", "zlib", "packbits", "zstd", "jpeg"])
def test_truncated_compressed_tiff(tmp_path, compression):
    _, rgb = smooth_rgb()
    path = tmp_path / "cut.tif"
    tifffile.imwrite(path, rgb, photometric="rgb", compression=compression, rowsperstrip=8)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 6 // 10])
    with pytest.raises(InputError, match="unreadable or truncated") as err:
        read_image(path)
    assert "cut.tif" in str(err.value) and "imagecodecs" not in err.value.problem


def test_unknown_compression(tmp_path):
    path = tmp_path / "odd.tif"
    tifffile.imwrite(path, np.zeros((8, 8), np.uint8), compression="zlib")
    with tifffile.TiffFile(path, mode="r+b") as tif:
        tif.pages[0].tags["Compression"].overwrite(60123)
    with pytest.raises(InputError, match="TIFF compression 60123 cannot be decoded"):
        read_image(path)


@pytest.mark.filterwarnings("ignore:The legacy `DICOM` plugin:DeprecationWarning")
def test_not_an_image(tmp_path):
    for name in ("x.tif", "x.png"):
        (tmp_path / name).write_bytes(b"this is text, not pixels\n" * 10)
        with pytest.raises(InputError, match="unreadable or truncated"):
            read_image(tmp_path / name)


# ---------------------------------------------------------------------------- real files


def test_kumar_images_read_as_rgb():
    require_real_data("kumar-partial", "images")
    images = sorted((KUMAR / "images").glob("*.tif"))
    assert len(images) == 13, images
    for path in images:
        img = read_image(path)
        assert img.shape == (1000, 1000, 3) and img.dtype == np.uint8, path.name
        assert 30 < img.mean() < 250 and img.std() > 5, path.name  # real H&E, not zeros


def test_dsb_images_and_labels_agree():
    names = [p.name for p in list_images(require_real_data("dsb-fluo", "images"))]
    assert len(names) == 9 and names == [p.name for p in list_images(DSB / "labels")]
    nuclei = 0
    for name in names:
        image = read_image(DSB / "images" / name)
        labels = read_labels(DSB / "labels" / name, image.shape)
        assert image.ndim == 2 and image.dtype == np.uint8, name
        assert labels.shape == image.shape and labels.max() > 0, name
        nuclei += len(np.unique(labels)) - 1
    assert nuclei == 353  # as the data's README states
