"""Weights files: bundled defaults, metadata, round trips, and a clear error for each kind of bad file."""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest
import torch
from safetensors.torch import save_file

from hsrecon import weights as weights_module
from hsrecon.model import LWRDAN, LWRDANConfig, build_model
from hsrecon.weights import (
    BUNDLED,
    DEFAULT_WEIGHTS,
    WAVELENGTHS_NM,
    WeightsError,
    bundled_path,
    load_model,
    load_weights,
    make_meta,
    save_weights,
    sha256_of,
)
from hsrecon.windows import DEFAULT_PAD, Windowing


def test_bundled_weights_metadata(bundled_weights):
    meta = bundled_weights.meta
    assert meta.num_params == 233_059
    assert meta.trainable_params == 231_539
    assert meta.window_size == 64
    assert meta.input_space == "ntire2020-clean"
    assert meta.wavelengths_nm == tuple(range(400, 701, 10)) == WAVELENGTHS_NM
    assert meta.provenance["sha256"] == "c1fcfaea27cf30652161266dc7ce1c200164f901427532983f6dbdddf4fb5cb5"
    assert meta.provenance["commit"] == "0de84ebed542c030701b704b7102c074bd7c223c"
    assert "MIT" in meta.provenance["license"]
    assert meta.metrics["authors_reported_mrae"]["valid_50"] == 0.04497
    assert sha256_of(bundled_weights.path) == BUNDLED["ntire2020-clean"].sha256


def test_licence_travels_with_the_weights(bundled_weights):
    notice = (bundled_weights.path.parent / "LICENSE-LightWeightModel").read_text()
    assert "Copyright (c) 2022 Sabarinathan" in notice


def test_default_and_named_weights_are_the_same_file():
    assert DEFAULT_WEIGHTS == "clean-v3"  # issue 24: it beats the authors' weights on every held-out set
    assert load_weights().path == load_weights("clean-v3").path


def _random_weights(tmp_path, config: LWRDANConfig | None = None):
    model = build_model(config)
    meta = make_meta(model, window_size=64, input_space="ntire2020-clean", weights_version="test")
    return model, save_weights(tmp_path / "w.safetensors", model.state_dict(), meta)


def test_save_load_round_trip_gives_identical_outputs(tmp_path):
    model, path = _random_weights(tmp_path)
    model.eval()
    x = torch.rand(2, 3, 64, 64)
    loaded = load_model(path)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    assert not list(tmp_path.glob("*.tmp"))


def test_round_trip_of_another_config(tmp_path):
    config = LWRDANConfig(widths=(4, 8, 16), dense_width=8)
    model, path = _random_weights(tmp_path, config)
    loaded = load_weights(path)
    assert loaded.meta.config == config
    assert loaded.meta.num_params == sum(t.numel() for k, t in model.state_dict().items() if "num_batches" not in k)


def test_saving_is_deterministic(tmp_path):
    model = build_model()
    meta = make_meta(model, window_size=64, input_space="ntire2020-clean", weights_version="test")
    a = save_weights(tmp_path / "a.safetensors", model.state_dict(), meta)
    b = save_weights(tmp_path / "b.safetensors", model.state_dict(), meta)
    assert a.read_bytes() == b.read_bytes()


def _assert_one_line_error(path, match: str) -> None:
    with pytest.raises(WeightsError, match=match) as info:
        load_weights(path)
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message


def test_missing_file(tmp_path):
    _assert_one_line_error(tmp_path / "nope.safetensors", "no such weights file")


def test_an_unknown_name_lists_the_bundled_ones():
    with pytest.raises(WeightsError) as info:
        load_weights("camera-l3")
    assert str(info.value) == (
        "camera-l3: no such weights file or bundled name (bundled: ntire2020-clean, clean-v3, clean-v3-ft, "
        "clean-v3-auto, camera, camera-l2, camera-v3, rpr2-clean-provisional, rpr2-daylight, rpr2-incandescent, "
        "rpr2-fluorescent, rpr2-led, rpr2-auto)"
    )


def test_truncated_file(tmp_path, bundled_weights):
    data = bundled_weights.path.read_bytes()
    path = tmp_path / "cut.safetensors"
    path.write_bytes(data[: len(data) // 2])
    _assert_one_line_error(path, "truncated")


@pytest.mark.parametrize("content", [b"", b"hello", b"just some text that is not a weights file\n" * 10])
def test_not_safetensors(tmp_path, content):
    path = tmp_path / "text.safetensors"
    path.write_bytes(content)
    _assert_one_line_error(path, "not a safetensors file")


def test_keras_hdf5_gets_a_hint(keras_reference_file):
    _assert_one_line_error(keras_reference_file, "import-keras")


def test_pickle_is_refused_not_loaded(tmp_path):
    path = tmp_path / "model.pth"
    torch.save(build_model().state_dict(), path)
    _assert_one_line_error(path, "never loads")


def test_safetensors_without_hsrecon_metadata(tmp_path):
    path = tmp_path / "plain.safetensors"
    save_file({k: v.contiguous() for k, v in build_model().state_dict().items()}, path)
    _assert_one_line_error(path, "without hsrecon metadata")


def test_another_models_tensors(tmp_path):
    """Metadata claims the default LWRDAN, tensors are from a smaller one."""
    small = build_model(LWRDANConfig(widths=(4, 8, 16), dense_width=8))
    meta = make_meta(build_model(), window_size=64, input_space="ntire2020-clean", weights_version="x")
    path = save_weights(tmp_path / "other.safetensors", small.state_dict(), meta)
    _assert_one_line_error(path, "shape")


def test_missing_and_extra_tensors(tmp_path):
    model = build_model()
    state = model.state_dict()
    state.pop("fusion.weight")
    state["extra.weight"] = torch.zeros(3)
    meta = make_meta(model, window_size=64, input_space="ntire2020-clean", weights_version="x")
    path = save_weights(tmp_path / "partial.safetensors", state, meta)
    _assert_one_line_error(path, r"1 missing.*fusion.weight.*1 unexpected")


def test_parameter_count_mismatch(tmp_path):
    model = build_model()
    meta = dataclasses.replace(
        make_meta(model, window_size=64, input_space="ntire2020-clean", weights_version="x"), num_params=5
    )
    path = save_weights(tmp_path / "count.safetensors", model.state_dict(), meta)
    _assert_one_line_error(path, "metadata says 5")


def test_non_finite_weights(tmp_path):
    model = build_model()
    state = model.state_dict()
    state["fusion.bias"][3] = float("nan")
    meta = make_meta(model, window_size=64, input_space="ntire2020-clean", weights_version="x")
    path = save_weights(tmp_path / "nan.safetensors", state, meta)
    _assert_one_line_error(path, "NaN")


def test_invalid_metadata_json(tmp_path):
    path = tmp_path / "badmeta.safetensors"
    tensors = {k: v.contiguous() for k, v in build_model().state_dict().items()}
    save_file(tensors, path, metadata={"hsrecon": json.dumps({"config": {"depth": 9}})})
    _assert_one_line_error(path, "invalid hsrecon metadata")


def test_damaged_bundled_file_is_detected(tmp_path, monkeypatch):
    copy = tmp_path / BUNDLED[DEFAULT_WEIGHTS].filename
    shutil.copy(bundled_path(DEFAULT_WEIGHTS), copy)
    data = bytearray(copy.read_bytes())
    data[-1] ^= 0xFF  # flip bits in the last tensor value: still a valid safetensors file
    copy.write_bytes(bytes(data))
    monkeypatch.setattr(weights_module, "bundled_path", lambda name: copy)
    with pytest.raises(WeightsError, match="bundled weights damaged"):
        load_weights()


def test_model_is_in_eval_mode(bundled_model):
    assert isinstance(bundled_model, LWRDAN)
    assert not bundled_model.training


def test_bundled_weights_carry_their_measured_windowing(bundled_weights, tmp_path):
    """The window is a property of the weights: the bundled ones run as measured (docs/benchmarks.md), by
    name or by path; other weights in the window they were trained on, with the default pad."""
    assert bundled_weights.windowing() == Windowing(192, 172, pad=16, edge=7, least_pad=8)
    assert bundled_weights.windowing(pad=16).least_pad is None  # a pad given is the pad used
    assert bundled_weights.windowing(stride=160).least_pad is None  # measured for its own stride only
    assert load_weights(bundled_path("ntire2020-clean")).windowing() == bundled_weights.windowing()
    assert load_weights("camera").windowing() == Windowing(64, 32, pad=32, edge=0)  # its U-net works
    assert bundled_weights.windowing(window=64) == Windowing(64, 32, pad=16, edge=7)  # another window: half
    assert bundled_weights.windowing(window=64, stride=60).edge == 1  # the edge leaves a ramp in the overlap
    meta = dataclasses.replace(bundled_weights.meta, weights_version="retrained")
    other = load_weights(save_weights(tmp_path / "w.safetensors", bundled_weights.state_dict, meta))
    assert other.tuned is None and other.windowing() == Windowing(64, 32, pad=DEFAULT_PAD, edge=0)
    for option, value, message in (("window", 30, "window 30: must be"), ("stride", 200, "stride 200: must be"),
                                   ("pad", -1, "pad -1: must be")):  # fmt: skip
        with pytest.raises(ValueError, match=message):
            bundled_weights.windowing(**{option: value})
