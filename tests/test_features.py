"""Feature-file errors say what the file really is (recbole_spectral.data.features.load_feature_matrix):
not a .npy file at all (text, PNG, zip, empty), an object/pickled array, truncated, an unreadable header,
a non-numeric dtype, the wrong number of dimensions. Each is one DataError line naming the file, from the
reader, from the MMRec converter's command line (exit 2), and from a multimodal dataset's load."""
import numpy as np
import pytest

from recbole_spectral import cli
from recbole_spectral.config import SpectralConfig
from recbole_spectral.data import create_dataset
from recbole_spectral.data.converters.mmrec import convert
from recbole_spectral.data.features import load_feature_matrix
from recbole_spectral.errors import DataError
from tests.helpers import write_mmrec

EXPECTED = "expected a 2-d float array written by numpy.save"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(40)


def _npy_bytes(array):
    import io

    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


GOOD = _npy_bytes(np.ones((4, 3), dtype=np.float32))


def _npz_bytes():
    import io

    buffer = io.BytesIO()
    np.savez(buffer, a=np.ones(3))
    return buffer.getvalue()


# name -> (file content, the message with {p} for the path)
BAD = {
    "text": (b"item,feat\n1,0.2\n", "{p} is not a .npy file (starts with b'item,feat\\n1,0.2\\n'): " + EXPECTED),
    "png": (PNG, "{p} is not a .npy file (it is a PNG image, starts with b'\\x89PNG'): " + EXPECTED),
    "npz": (_npz_bytes(), "{p} is not a .npy file (it is a zip archive, e.g. an .npz or a torch file, "
                          "starts with b'PK\\x03\\x04'): " + EXPECTED),
    "empty": (b"", "{p} is not a .npy file (it is empty): " + EXPECTED),
    "object": (_npy_bytes(np.array([[1.0, "x"]] * 3, dtype=object)),
               "{p} holds an object/pickled array (dtype object): " + EXPECTED),
    "truncated": (GOOD[:-5], "{p} is truncated: its header says shape (4, 3) of float32 (48 bytes) but it holds 43 bytes of data"),
    "header-cut": (GOOD[:20], "{p} is a .npy file with an unreadable header (EOF: reading array header, expected 118 bytes "
                              "got 10): " + EXPECTED),
    "strings": (_npy_bytes(np.array([["a", "b"]] * 3)), "{p} has dtype <U1 (text): " + EXPECTED),
    "complex": (_npy_bytes(np.ones((3, 2), dtype=complex)), "{p} has dtype complex128 (complex numbers): " + EXPECTED),
    "1-d": (_npy_bytes(np.arange(8.0)), "{p} has shape (8,): expected a 2-d array (items x dim)"),
    "3-d": (_npy_bytes(np.zeros((2, 3, 4))), "{p} has shape (2, 3, 4): expected a 2-d array (items x dim)"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_load_feature_matrix_says_what_the_file_is(case, tmp_path):
    content, message = BAD[case]
    path = tmp_path / "image_feat.npy"
    path.write_bytes(content)
    with pytest.raises(DataError) as err:
        load_feature_matrix(str(path))
    assert str(err.value) == message.format(p=path)
    assert "\n" not in str(err.value)


def test_a_non_npy_file_is_not_reported_as_a_pickled_array(tmp_path):
    for content in (b"hello\n", PNG):
        path = tmp_path / "image_feat.npy"
        path.write_bytes(content)
        with pytest.raises(DataError) as err:
            load_feature_matrix(str(path))
        assert "is not a .npy file" in str(err.value) and "pickled" not in str(err.value)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.int64, np.uint8, bool])
def test_numeric_2d_arrays_are_accepted_memory_mapped(dtype, tmp_path):
    path = tmp_path / "ok.npy"
    np.save(path, np.ones((5, 2), dtype=dtype))
    array = load_feature_matrix(str(path))
    assert array.shape == (5, 2) and isinstance(array, np.memmap)


def test_missing_feature_file(tmp_path):
    with pytest.raises(DataError, match=r"^missing feature file .*nothing\.npy$"):
        load_feature_matrix(str(tmp_path / "nothing.npy"))


# -- through the commands that read feature files -------------------------------------------------
@pytest.mark.parametrize("case", ["text", "png", "object", "truncated", "1-d"])
def test_prepare_mmrec_refuses_a_bad_image_feat_npy_with_one_line(case, workdir, capsys):
    src = workdir / "src" / "clips"
    write_mmrec(src)
    content, message = BAD[case]
    (src / "image_feat.npy").write_bytes(content)
    code = cli.main(["prepare", "mmrec", "--src", str(src), "--name", "clips", "--out", str(workdir / "out")])
    out, err = capsys.readouterr()
    assert code == 2
    assert err.splitlines() == [f"error: {message.format(p=src / 'image_feat.npy')}"]
    assert not (workdir / "out" / "clips").exists()


@pytest.mark.parametrize("case", ["png", "truncated", "strings"])
def test_a_converted_dataset_whose_feature_file_was_replaced_is_refused_at_load(case, workdir):
    write_mmrec(workdir / "mmrec" / "toy")
    convert(str(workdir / "mmrec" / "toy"), "toy", log=lambda line: None)
    path = workdir / "dataset_atomic" / "toy" / "toy.image.npy"
    content, message = BAD[case]
    path.write_bytes(content)
    config = SpectralConfig("BPR", "toy", config_dict={"use_gpu": False, "state": "WARNING"})
    with pytest.raises(DataError) as err:
        create_dataset(config)
    assert str(err.value) == message.format(p=path)
