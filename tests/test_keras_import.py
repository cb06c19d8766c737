"""import-keras: the graph walk maps every tensor, is reproducible bit for bit, and refuses other graphs."""

from __future__ import annotations

import json
import shutil

import h5py
import pytest

from hsrecon.keras_import import KerasImportError, convert_keras_file, read_keras_state_dict
from hsrecon.model import LWRDANConfig
from hsrecon.weights import BUNDLED, load_weights, sha256_of


def test_config_read_from_the_file(keras_reference_file):
    config, state, facts = read_keras_state_dict(keras_reference_file)
    assert config == LWRDANConfig()
    assert facts["layers_mapped"] == 111  # 46 Conv2D + 2 Conv2DTranspose + 18 Dense + 45 BatchNormalization
    assert facts["keras_version"] == "2.2.4"
    assert sum(t.numel() for k, t in state.items() if "num_batches" not in k) == 233_059


def test_conversion_reproduces_the_bundled_file_bit_for_bit(keras_reference_file, tmp_path):
    out = convert_keras_file(keras_reference_file, tmp_path / "w.safetensors")
    assert sha256_of(out) == BUNDLED["ntire2020-clean"].sha256
    assert load_weights(out).meta.num_params == 233_059


def _edited_copy(source, tmp_path, edit) -> str:
    """A copy of the authors' file with its model_config (or weights) changed by ``edit``."""
    path = tmp_path / "edited.hdf5"
    shutil.copy(source, path)
    with h5py.File(path, "r+") as handle:
        config = json.loads(handle.attrs["model_config"])
        layers = {layer["name"]: layer for layer in config["config"]["layers"]}
        edit(handle, layers)
        handle.attrs["model_config"] = json.dumps(config)
    return path


def _set(name, key, value):
    def edit(_handle, layers):
        layers[name]["config"][key] = value

    return edit


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_set("conv3", "kernel_size", [3, 3]), r"layer 'conv3': expected kernel_size=\(5, 5\)"),
        (_set("conv2d_5", "activation", "relu"), r"layer 'conv2d_5': expected activation='sigmoid'"),
        (_set("dense_1", "activation", "linear"), r"layer 'dense_1': expected activation='relu'"),
        (_set("max_pooling2d_1", "pool_size", [4, 4]), r"layer 'max_pooling2d_1': expected pool_size"),
        (_set("conv2d_transpose_1", "strides", [1, 1]), r"layer 'conv2d_transpose_1': expected strides"),
        (_set("batch_normalization_3", "epsilon", 0.001), "different epsilons"),
    ],
)
def test_other_architectures_are_refused_naming_the_layer(keras_reference_file, tmp_path, edit, message):
    path = _edited_copy(keras_reference_file, tmp_path, edit)
    with pytest.raises(KerasImportError, match=message):
        read_keras_state_dict(path)


def test_rewired_skip_connection_is_refused(keras_reference_file, tmp_path):
    def rewire(_handle, layers):
        # Feed the final concatenation the wrong encoder features.
        layers["concatenate_12"]["inbound_nodes"][0][1][0] = "activation_6"

    path = _edited_copy(keras_reference_file, tmp_path, rewire)
    with pytest.raises(KerasImportError, match="skip connection"):
        read_keras_state_dict(path)


def test_lambda_swap_is_refused(keras_reference_file, tmp_path):
    def swap(_handle, layers):
        nodes = layers["concatenate_1"]["inbound_nodes"][0]
        nodes[0], nodes[1] = nodes[1], nodes[0]

    path = _edited_copy(keras_reference_file, tmp_path, swap)
    with pytest.raises(KerasImportError, match=r"expected \[channel mean, channel max\]"):
        read_keras_state_dict(path)


def test_missing_weights_are_refused(keras_reference_file, tmp_path):
    def drop(handle, _layers):
        del handle["model_weights/conv4"]

    path = _edited_copy(keras_reference_file, tmp_path, drop)
    with pytest.raises(KerasImportError, match="'conv4' has no weights"):
        read_keras_state_dict(path)


def test_extra_weights_are_refused(keras_reference_file, tmp_path):
    def add(handle, _layers):
        group = handle["model_weights"].create_group("stray_dense")
        group.create_dataset("stray_dense/kernel:0", data=[[1.0]])
        group.attrs["weight_names"] = [b"stray_dense/kernel:0"]

    path = _edited_copy(keras_reference_file, tmp_path, add)
    with pytest.raises(KerasImportError, match=r"outside the LWRDAN graph.*stray_dense"):
        read_keras_state_dict(path)


def test_not_hdf5(tmp_path):
    path = tmp_path / "model.hdf5"
    path.write_text("not hdf5")
    with pytest.raises(KerasImportError, match="not an HDF5 file"):
        read_keras_state_dict(path)


def test_hdf5_without_a_model(tmp_path):
    path = tmp_path / "data.h5"
    with h5py.File(path, "w") as handle:
        handle["cube"] = [1.0, 2.0]
    with pytest.raises(KerasImportError, match="not a Keras whole-model HDF5"):
        read_keras_state_dict(path)
