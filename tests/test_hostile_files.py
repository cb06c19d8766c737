"""Crafted files, round 2: safetensors headers, weights metadata, Keras model_config, cubes given to eval.

Each file is made by hand to lie in one way. Each must cost one line naming the file, the documented
exit code, and nothing allocated from what the file merely claims.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from test_cli import assert_clean_failure, hsrecon

from hsrecon.weights import WeightsError, load_weights


def _safetensors(path: Path, header: object, data: bytes = b"") -> Path:
    """A file in the safetensors layout with whatever header we like (serialised as JSON)."""
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    return path


def _one_line(path: Path, match: str) -> str:
    with pytest.raises(WeightsError) as info:
        load_weights(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message, message
    assert match in message, message
    return message


# --- 1: the safetensors header -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "match"),
    [
        ([1, 2, 3], "header is not a JSON object but list"),
        ("just a string", "header is not a JSON object but str"),
        ({"a": {"dtype": "F32", "shape": [2]}}, "data_offsets must be two non-negative integers"),
        ({"a": {"dtype": "F32", "shape": [2], "data_offsets": ["0", "8"]}}, "data_offsets must be two"),
        ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8, 9]}}, "data_offsets must be two"),
        ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}}, "hold -8 bytes, its shape needs 8"),
        ({"a": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}, "shape must be a list of non-negative"),
        ({"a": {"dtype": "F32", "shape": "2", "data_offsets": [0, 8]}}, "shape must be a list"),
        ({"a": {"dtype": "Q99", "shape": [2], "data_offsets": [0, 8]}}, "unknown dtype 'Q99'"),
        ({"a": ["F32", [2], [0, 8]]}, "tensor 'a': expected an object"),
        ({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 8]}}, "hold 8 bytes, its shape needs 16"),
        ({"__metadata__": ["x"], "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, "__metadata__"),
        ({"__metadata__": {"hsrecon": 5}}, "__metadata__ must map names to strings"),
        (
            {
                "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]},
            },
            "overlap",
        ),
    ],
)
def test_a_crafted_safetensors_header_is_one_line(tmp_path, header, match):
    _one_line(_safetensors(tmp_path / "w.safetensors", header, bytes(16)), match)


def test_a_header_whose_offsets_pass_the_file_end_is_truncated(tmp_path):
    header = {"a": {"dtype": "F32", "shape": [1_000_000_000], "data_offsets": [0, 4_000_000_000]}}
    _one_line(_safetensors(tmp_path / "w.safetensors", header, bytes(16)), "truncated (needs")


def test_a_deeply_nested_header_is_unreadable_not_a_crash(tmp_path):
    path = tmp_path / "w.safetensors"
    raw = b"[" * 100_000 + b"]" * 100_000
    path.write_bytes(struct.pack("<Q", len(raw)) + raw)
    _one_line(path, "unreadable header")


# --- 2: the metadata, against its schema, before anything is built ------------------------------------


def _with_meta(tmp_path: Path, bundled_weights, change) -> Path:
    """The bundled file's tensors and header, with its hsrecon metadata changed by ``change(meta)``."""
    data = bundled_weights.path.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    meta = json.loads(header["__metadata__"]["hsrecon"])
    change(meta)
    header["__metadata__"]["hsrecon"] = json.dumps(meta)
    return _safetensors(tmp_path / "w.safetensors", header, data[8 + length :])


def _set(path: str, value: object):
    def change(meta: dict) -> None:
        *parents, last = path.split(".")
        node = meta
        for key in parents:
            node = node[key]
        if last.endswith("]"):
            last, index = last[:-1].split("[")
            node[last][int(index)] = value
        else:
            node[last] = value

    return change


@pytest.mark.parametrize(
    ("path", "value", "match"),
    [
        ("config.reduction", 0, "config.reduction: expected an integer from 1 to 512, found 0"),
        ("config.widths[1]", -16, "config.widths[1]: expected an integer from 1 to 512, found -16"),
        ("config.widths[2]", 10**9, "config.widths[2]: expected an integer from 1 to 512"),
        ("config.widths", [8, 16], "config.widths: expected a list of 3 integers"),
        ("config.blocks[0]", 2.5, "config.blocks[0]: expected an integer"),
        ("config.dropout", 1.5, "config.dropout: expected a number in [0, 0.99]"),
        ("config.bn_eps", 0, "config.bn_eps: expected a number in (0, 1]"),
        ("config.head_kernel", 4, "config.head_kernel: expected an odd integer"),
        ("config.coord_conv", "yes", "config.coord_conv: expected true or false"),
        ("config.in_channels", 4, "config.in_channels: expected an integer from 3 to 3"),
        ("config", [1, 2], "config: expected an object"),
        ("window_size", "64", "window_size: expected an integer from 4 to 1024, found '64'"),
        ("window_size", 0, "window_size: expected an integer from 4 to 1024, found 0"),
        ("window_size", 62, "window_size: expected a multiple of 4"),
        ("window_size", True, "window_size: expected an integer"),
        ("input_space", "cmyk", "input_space: unknown input space 'cmyk'"),
        ("input_space", 3, "input_space: expected a string"),
        ("wavelengths_nm", [400.0] * 31, "wavelengths_nm: expected strictly increasing values"),
        ("wavelengths_nm", "400-700", "wavelengths_nm: expected a list"),
        ("num_params", -1, "num_params: expected an integer from 0 to 50000000"),
        ("provenance", "me", "provenance: expected an object"),
    ],
)
def test_metadata_is_checked_against_its_schema(tmp_path, bundled_weights, path, value, match):
    weights = _with_meta(tmp_path, bundled_weights, _set(path, value))
    message = _one_line(weights, "invalid hsrecon metadata")
    assert match in message


def test_a_config_over_the_parameter_budget_is_refused_without_allocating(tmp_path, bundled_weights):
    """Every field in range, the whole far too big: counted on the meta device, refused in no time."""
    import resource

    big = {"widths": [512, 512, 512], "blocks": [8, 8, 8, 8, 8], "dense_width": 512}
    weights = _with_meta(tmp_path, bundled_weights, lambda meta: meta["config"].update(big))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    message = _one_line(weights, "invalid hsrecon metadata")
    assert "over the limit of 50,000,000" in message
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # kB: no 1 GB model built


def test_missing_metadata_keys_are_named(tmp_path, bundled_weights):
    weights = _with_meta(tmp_path, bundled_weights, lambda meta: meta.pop("window_size"))
    _one_line(weights, "missing key 'window_size'")


def test_crafted_weights_on_the_command_line_exit_3(tmp_path, bundled_weights):
    """What the user meets: one line, exit code 3, before any input is read (not a --window message)."""
    weights = _with_meta(tmp_path, bundled_weights, _set("window_size", 0))
    image = tmp_path / "a.png"
    image.write_bytes(b"not even read")
    result = hsrecon("convert", str(image), "-o", str(tmp_path / "out"), "--weights", str(weights))
    assert_clean_failure(result, 3, "window_size: expected an integer from 4 to 1024, found 0")
    assert "--window" not in result.stderr
    assert not (tmp_path / "out").exists()


# --- 3: import-keras on a model_config that is not what it should be ---------------------------------


def _keras_file(path: Path, model_config: object) -> Path:
    import h5py

    with h5py.File(path, "w") as handle:
        handle.attrs["model_config"] = model_config
        handle.create_group("model_weights")
    return path


@pytest.mark.parametrize(
    ("model_config", "match"),
    [
        ("{not json", "model_config is not JSON"),
        ("[1, 2, 3]", "model_config is not a JSON object but list"),
        (5, "model_config is not text but int64"),
        ('{"class_name": "Functional"}', "model_config has no config.layers list"),
        ('{"class_name": "Functional", "config": {"name": "m"}}', "model_config has no config.layers list"),
        ('{"class_name": "Functional", "config": {"layers": {}}}', "model_config has no config.layers list"),
        ('{"class_name": "Functional", "config": {"layers": [5]}}', "model_config layer 0 is not an object"),
        (
            '{"class_name": "Functional", "config": {"layers": [{"name": "a", "class_name": "Dense"}]}}',
            "model_config layer 0: 'config' missing or not a dict",
        ),
        (
            '{"class_name": "Functional", "config": {"layers": [{"name": "a", "class_name": "Dense", "config": {},'
            ' "inbound_nodes": [[["b"]]]}], "output_layers": [["a", 0, 0]]}}',
            "expected one CoordinateChannel2D layer, found 0",
        ),
        (
            '{"class_name": "Functional", "config": {"layers": [{"name": "a", "class_name": "Dense", "config": {},'
            ' "inbound_nodes": "b"}], "output_layers": [["a", 0, 0]]}}',
            "layer 'a': malformed inbound_nodes",
        ),
        (
            '{"class_name": "Functional", "config": {"layers": [], "output_layers": 7}}',
            "model_config has no valid config.output_layers",
        ),
        (
            '{"class_name": "Functional", "config": {"layers": [{"name": "c", "class_name": "CoordinateChannel2D",'
            ' "config": {}, "inbound_nodes": [[["in", 0, 0]]]}], "output_layers": [["c", 0, 0]]}}',
            "layer 'in' is referenced but not defined",
        ),
    ],
)
def test_a_malformed_model_config_is_one_line(tmp_path, model_config, match):
    from hsrecon.keras_import import KerasImportError, read_keras_state_dict

    path = _keras_file(tmp_path / "m.hdf5", model_config)
    with pytest.raises(KerasImportError) as info:
        read_keras_state_dict(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{path}: "), message
    assert match in message, message


def test_import_keras_of_a_malformed_model_config_exits_4(tmp_path):
    path = _keras_file(tmp_path / "m.hdf5", "[1, 2, 3]")
    out = tmp_path / "w.safetensors"
    result = hsrecon("import-keras", str(path), "-o", str(out))
    assert_clean_failure(result, 4, "model_config is not a JSON object but list")
    assert not out.exists() and list(tmp_path.iterdir()) == [path]


def _replace_conv4_kernel(reference: Path, path: Path, make) -> Path:
    """The authors' file with ``conv4``'s kernel replaced by ``make(group, name)``."""
    import shutil

    import h5py

    shutil.copy(reference, path)
    with h5py.File(path, "r+") as handle:
        group = handle["model_weights/conv4"]
        del group["conv4/kernel:0"]
        make(group, "conv4/kernel:0")
    return path


def _huge(group, name):
    group.create_dataset(name, shape=(100_000, 100_000, 32, 16), dtype="f4", chunks=(1, 1, 32, 16))


def _compound(group, name):
    import numpy as np

    group.create_dataset(name, data=np.zeros((7, 7, 32, 16), dtype=[("a", "f4"), ("b", "i4")]))


def _elsewhere(group, name):
    import h5py
    import numpy as np

    other = Path(group.file.filename).with_name("other.h5")
    with h5py.File(other, "w") as handle:
        handle["secret"] = np.zeros((7, 7, 32, 16), np.float32)
    group[name] = h5py.ExternalLink(str(other), "/secret")


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (_huge, "weight 'conv4/kernel:0' declares 5,120,000,000,000 values"),
        (_compound, "weight 'conv4/kernel:0' has the non-numeric type"),
        (_elsewhere, "weight 'conv4/kernel:0' points outside the file"),
    ],
)
def test_keras_weights_are_checked_before_they_are_read(keras_reference_file, tmp_path, make, match):
    from hsrecon.keras_import import KerasImportError, read_keras_state_dict

    path = _replace_conv4_kernel(keras_reference_file, tmp_path / "m.hdf5", make)
    assert path.stat().st_size < 2 * keras_reference_file.stat().st_size  # the huge one is sparse
    with pytest.raises(KerasImportError, match=match):
        read_keras_state_dict(path)


# --- 4 and 14: cubes given to eval --pred: declared sizes, types, NaN ---------------------------------


def _h5(path: Path, make) -> Path:
    import h5py

    with h5py.File(path, "w") as handle:
        make(handle)
    return path


@pytest.fixture()
def hostile_predictions(tmp_path):
    """Ground truth for scenes a…f, and predictions that lie, break or poison in one way each."""
    import h5py
    import numpy as np

    rng = np.random.default_rng(4)
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    pred.mkdir()
    gt.mkdir()
    truth = rng.uniform(0.05, 0.9, (24, 20, 31)).astype(np.float32)
    for name in "abcdef":
        _h5(gt / f"{name}.h5", lambda h: h.create_dataset("cube", data=truth))
    good = truth * 1.1
    _h5(pred / "a.h5", lambda h: h.create_dataset("cube", data=good))  # fine
    _h5(pred / "b.h5", lambda h: h.create_dataset("cube", shape=(100_000, 100_000, 31), dtype="f4", chunks=(1, 64, 31)))
    compound = np.zeros((24, 20, 31), dtype=[("re", "f4"), ("im", "f4")])
    _h5(pred / "c.h5", lambda h: h.create_dataset("cube", data=compound))
    poisoned = good.copy()
    poisoned[3, 4, 5] = np.nan
    poisoned[7, 0, :] = np.inf
    _h5(pred / "d.h5", lambda h: h.create_dataset("cube", data=poisoned))
    other = tmp_path / "elsewhere.h5"
    _h5(other, lambda h: h.create_dataset("cube", data=good))
    _h5(pred / "e.h5", lambda h: h.__setitem__("cube", h5py.ExternalLink(str(other), "/cube")))
    _h5(gt / "f.h5", lambda h: h.create_dataset("cube", data=(truth * 4000).astype(np.uint16)))  # raw codes
    _h5(pred / "f.h5", lambda h: h.create_dataset("cube", data=good))
    return pred, gt


def test_eval_checks_each_prediction_before_reading_it_and_scores_the_rest(hostile_predictions):
    import math

    from hsrecon.evaluate import evaluate_files

    pred, gt = hostile_predictions
    report = evaluate_files(pred, gt)
    failures = {failure.name: failure.message for failure in report.failures}
    assert sorted(failures) == ["b.h5", "c.h5", "d.h5", "e.h5"], failures
    assert "shape 100000×100000×31, ground truth b.h5 is 24×20×31 (as declared; not read)" in failures["b.h5"]
    assert "holds values of type" in failures["c.h5"] and "not real numbers" in failures["c.h5"]
    assert (
        "32 of 14,880 predicted values are NaN or infinite (the first at row 3, column 4, band 5)" in (failures["d.h5"])
    )
    assert "keeps its data outside the file" in failures["e.h5"]
    assert all("\n" not in message and message.startswith(str(pred)) for message in failures.values())
    scored = [result.name for result in report.results["pred"]]
    assert scored == ["a.h5", "f.h5"]
    summary = report.summary("pred")
    assert all(math.isfinite(summary[key]) for key in ("mrae_mean", "rmse_mean", "sam_mean", "ssim_mean"))
    assert report.notes == [
        f"{gt / 'f.h5'}: ground truth stored as uint16: scored on its stored values, not scaled to [0, 1] "
        "(divide by the white level first if the other cube holds reflectances)"
    ]


def test_eval_refuses_a_pair_over_the_memory_budget_before_reading(hostile_predictions):
    from hsrecon.evaluate import evaluate_files

    pred, gt = hostile_predictions
    report = evaluate_files(pred, gt, memory_budget_bytes=24 * 20 * 31 * 12)  # less than one pair
    assert [result.name for result in report.results["pred"]] == []
    assert "over the memory budget" in dict((f.name, f.message) for f in report.failures)["a.h5"]


def test_eval_of_hostile_predictions_on_the_command_line(hostile_predictions, tmp_path):
    import json

    pred, gt = hostile_predictions
    report = tmp_path / "r.json"
    result = hsrecon("eval", "--pred", str(pred), "--gt", str(gt), "--json", str(report), "-q")
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("hsrecon: error:")]
    assert len(errors) == 4, result.stderr
    notes = [line for line in result.stderr.splitlines() if line.startswith("hsrecon: note:")]
    assert len(notes) == 1 and "ground truth stored as uint16: scored on its stored values" in notes[0]
    data = json.loads(report.read_text())
    assert data["methods"]["pred"]["summary"]["images"] == 2
    assert data["methods"]["pred"]["summary"]["mrae_mean"] is not None
    assert len(data["failures"]) == 4 and len(data["notes"]) == 1
