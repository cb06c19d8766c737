r"""Make the Keras reference fixture that the PyTorch port of LW-RDAN is tested against.

What: this script rebuilds the authors' published Keras 2.2.4 model
(``lwrdan_ntire2020_clean_keras.hdf5``) in Keras 3 / TensorFlow, directly from the
file's ``model_config`` graph and ``model_weights``, runs it on a few fixed synthetic
inputs and saves the inputs with the outputs and intermediate activations to
``tests/fixtures/keras_reference.npz``.

Why: it is independent proof that hsrecon's PyTorch port is exact. The graph is
rebuilt generically, layer by layer from the file, sharing no code with the port,
so a misreading in the port is not repeated here. Final outputs are not enough:
with these weights the attention U-net contributes (almost) nothing to the final
output (its last conv ``K_x_1`` has a ~0 kernel and the activations it reads are
almost all exactly 0: zeroing that kernel changes ``op0`` by 0 on the dark and
rectangular inputs and by ~2e-6 on uniform noise), so a port can match ``op0``
while its U-net is wrong. The
fixture therefore also holds the U-net's output and every RDAB's output, on inputs
(uniform noise, a non-square image) that exercise them.

TensorFlow is not a dependency of hsrecon: run this only in a throwaway venv, from
the repository root::

    python3 -m venv /tmp/tfvenv
    /tmp/tfvenv/bin/pip install tensorflow-cpu==2.21.0 h5py numpy
    /tmp/tfvenv/bin/python -m tools.make_keras_reference \
        ../shared/reference/lwrdan_ntire2020_clean_keras.hdf5 \
        -o tests/fixtures/keras_reference.npz

Fixture layout (all float32, NHWC exactly as Keras gives): for each input set
``<set>`` in ``noise64``, ``dark64``, ``rect48x64``: ``<set>/input``,
``<set>/op0`` (final output), ``<set>/K_x`` (dense branch), ``<set>/K_x_1``
(U-net), ``<set>/rdab_0`` .. ``<set>/rdab_8`` (the nine RDAB outputs, see
``RDAB_LAYERS``) and ``<set>/coords`` (the CoordConv layer's output: RGB then the
two coordinate channels). ``meta`` is a JSON string (0-d unicode array) with the
versions, the source file's SHA-256, the seed, layer names and the U-net findings
printed at the end (max |op0 change| when ``K_x_1``'s kernel is zeroed, and the
share of exact zeros in the last RDAB output). One image per set keeps the file
near 2.5 MB (the 31-band ``op0`` and ``K_x`` maps dominate).
"""

from __future__ import annotations

import argparse
import base64
import datetime
import hashlib
import json
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Plain Eigen kernels: results then do not depend on which oneDNN paths the CPU has.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import h5py
import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

SEED = 20201
EXPECTED_VALUES = 233_059
# Over 80% of the file is the 31-band float32 op0 and K_x maps, which deflate
# poorly: hence one image per input set (see make_inputs).
SIZE_BUDGET_BYTES = 4 * 1024 * 1024

# RDAB outputs (the ReLU after the BatchNorm that follows each 4-input Add), in the
# U-net's order: encoder level 1 x2, level 2 x2, bottleneck x2, decoder level 2 x2,
# decoder level 1 x1. ``check_rdab_layers`` verifies this against the graph.
RDAB_LAYERS = (
    "activation_6",
    "activation_12",
    "activation_18",
    "activation_24",
    "activation_30",
    "activation_36",
    "activation_42",
    "activation_48",
    "activation_60",
)
TAPS = {"op0": "op0", "K_x": "K_x", "K_x_1": "K_x_1"}
TAPS |= {f"rdab_{i}": name for i, name in enumerate(RDAB_LAYERS)}
TAPS["coords"] = "coordinate_channel2d_1"
UNET_OUTPUT = "K_x_1"

# Config keys that only matter for training (weights are loaded, not initialised).
_TRAINING_ONLY_SUFFIXES = ("_initializer", "_regularizer", "_constraint")
_ALWAYS_IGNORED = {"name", "trainable"}

LayerSpec = dict[str, Any]
Tensor = Any  # a KerasTensor while building, a tf.Tensor when running


# --------------------------------------------------------------------------- layers


class CoordinateChannel2D(layers.Layer):
    """CoordConv channels, re-implemented from ``titu1994/keras-coordconv``.

    The original (``coord.py``, copied unchanged into the authors'
    ``dsabarinathan/LightWeightModel``) builds, for channels-last input of shape
    (B, dim1, dim2, C), ``xx`` with value ``i`` at row ``i`` (it ranges over dim1)
    and ``yy`` with value ``j`` at column ``j`` (it ranges over dim2), then
    ``xx / (dim1 - 1) * 2 - 1`` and ``yy / (dim2 - 1) * 2 - 1`` in float32, and
    concatenates ``[inputs, xx, yy]``. So channel C varies down the rows (-1 at the
    top, +1 at the bottom) and channel C+1 along the columns (-1 left, +1 right),
    both over the input actually given. The arithmetic order is kept so the
    values are bit-identical.
    """

    def __init__(
        self,
        use_radius: bool = False,
        data_format: str = "channels_last",
        **kwargs: Any,
    ) -> None:
        if use_radius or data_format != "channels_last":
            raise ValueError("only use_radius=False, channels_last is implemented")
        super().__init__(**kwargs)

    def call(self, inputs: Tensor) -> Tensor:
        """Append the row then the column coordinate channel."""
        batch, height, width = (ops.shape(inputs)[i] for i in range(3))
        rows = ops.reshape(_unit_ramp(height), (1, -1, 1, 1))
        cols = ops.reshape(_unit_ramp(width), (1, 1, -1, 1))
        target = (batch, height, width, 1)
        rows = ops.broadcast_to(rows, target)
        cols = ops.broadcast_to(cols, target)
        return ops.concatenate([inputs, rows, cols], axis=-1)

    def compute_output_shape(self, input_shape: Sequence[int | None]) -> tuple:
        """Two more channels; given so Keras need not trace ``call`` symbolically."""
        *lead, channels = input_shape
        return (*lead, channels + 2)


def _unit_ramp(n: Tensor) -> Tensor:
    """``arange(n) / (n - 1) * 2 - 1`` in float32, in the original's order."""
    ramp = ops.cast(ops.arange(n), "float32") / ops.cast(n - 1, "float32")
    return ramp * 2.0 - 1.0


def _channel_mean(x: Tensor) -> Tensor:
    return ops.mean(x, axis=3, keepdims=True)


def _channel_max(x: Tensor) -> Tensor:
    return ops.max(x, axis=3, keepdims=True)


def _marshal_names(code: bytes) -> set[str]:
    """Short ASCII strings in marshalled CPython 3.6 bytecode (its names and consts).

    A short string is a type byte ('z' or 'Z', plus 0x80 when it is a back-reference
    target), a one-byte length and the characters. Reading names this way avoids
    loading bytecode from another Python version.
    """
    pattern = re.compile(rb"(?=[zZ\xfa\xda](.))", re.DOTALL)  # overlapping
    names = set()
    for match in pattern.finditer(code):
        start = match.start() + 2
        names.add(code[start : start + match.group(1)[0]].decode("ascii", "replace"))
    return names


def lambda_function(config: dict[str, Any]) -> Callable[[Tensor], Tensor]:
    """Decide mean vs max for a Lambda from the names its bytecode uses.

    The Lambdas hold marshalled Python 3.6 lambdas (``K.mean(x, axis=3,
    keepdims=True)`` or ``K.max(...)``) that cannot be loaded on a current Python;
    which reduction each one is must come from the file, not from assumption.
    """
    if config.get("function_type") != "lambda" or config.get("arguments"):
        raise ValueError(f"unexpected Lambda config: {config}")
    names = _marshal_names(base64.b64decode(config["function"][0]))
    if not {"axis", "keepdims"} <= names:
        raise ValueError(f"{config['name']}: not a keepdims reduction: {names}")
    found = {"mean", "max"} & names
    if len(found) != 1:
        raise ValueError(f"{config['name']}: expected mean or max, found {found}")
    return _channel_mean if found == {"mean"} else _channel_max


def lambda_reductions(specs: list[LayerSpec]) -> dict[str, str]:
    """Map each Lambda layer to the reduction read from its bytecode, for the record."""
    return {
        spec["name"]: lambda_function(spec["config"]).__name__.removeprefix("_channel_")
        for spec in specs
        if spec["class_name"] == "Lambda"
    }


# --------------------------------------------------------------------------- graph


def _kwargs(config: dict[str, Any], keys: Sequence[str]) -> dict[str, Any]:
    """Pick ``keys`` from a Keras 2 config; fail on any key that is not understood.

    Keys outside ``keys`` may only be name/trainable or training-only settings
    (initialisers, regularisers, constraints), so nothing that changes inference
    is silently dropped.
    """
    for key in config:
        if key in keys or key in _ALWAYS_IGNORED:
            continue
        if not key.endswith(_TRAINING_ONLY_SUFFIXES):
            raise ValueError(f"{config['name']}: unhandled config key {key!r}")
    if config.get("data_format", "channels_last") != "channels_last":
        raise ValueError(f"{config['name']}: only channels_last is supported")
    picked = {key: config[key] for key in keys if key in config}
    picked["name"] = config["name"]
    return picked


_CONV = ("filters", "kernel_size", "strides", "padding", "data_format")
_CONV += ("dilation_rate", "activation", "use_bias")
_BUILDERS: dict[str, Callable[[dict[str, Any]], layers.Layer]] = {
    "Conv2D": lambda c: layers.Conv2D(**_kwargs(c, _CONV)),
    "Conv2DTranspose": lambda c: layers.Conv2DTranspose(**_kwargs(c, (*_CONV, "output_padding"))),
    "BatchNormalization": lambda c: layers.BatchNormalization(
        **_kwargs(c, ("axis", "momentum", "epsilon", "center", "scale"))
    ),
    "Activation": lambda c: layers.Activation(**_kwargs(c, ("activation",))),
    "Dense": lambda c: layers.Dense(**_kwargs(c, ("units", "activation", "use_bias"))),
    "GlobalAveragePooling2D": lambda c: layers.GlobalAveragePooling2D(**_kwargs(c, ("data_format",))),
    "GlobalMaxPooling2D": lambda c: layers.GlobalMaxPooling2D(**_kwargs(c, ("data_format",))),
    "Reshape": lambda c: layers.Reshape(target_shape=tuple(c["target_shape"]), name=c["name"]),
    "Lambda": lambda c: layers.Lambda(lambda_function(c), name=c["name"]),
    "Add": lambda c: layers.Add(**_kwargs(c, ())),
    "Multiply": lambda c: layers.Multiply(**_kwargs(c, ())),
    "Concatenate": lambda c: layers.Concatenate(**_kwargs(c, ("axis",))),
    "MaxPooling2D": lambda c: layers.MaxPooling2D(**_kwargs(c, ("pool_size", "strides", "padding", "data_format"))),
    "Dropout": lambda c: layers.Dropout(**_kwargs(c, ("rate", "noise_shape", "seed"))),
    "CoordinateChannel2D": lambda c: CoordinateChannel2D(**_kwargs(c, ("use_radius", "data_format"))),
}


def _input_tensor(spec: LayerSpec) -> Tensor:
    """Model input with free height and width, so non-64 sizes run too."""
    channels = spec["config"]["batch_input_shape"][-1]
    dtype = spec["config"]["dtype"]
    return keras.Input(shape=(None, None, channels), dtype=dtype, name=spec["name"])


def _inbound(node: list, tensors: dict[tuple[str, int], Tensor]) -> Tensor:
    """Resolve one inbound node: entries are [layer, node_index, tensor_index, kw]."""
    args = []
    for layer_name, node_index, tensor_index, kwargs in node:
        if tensor_index != 0 or kwargs:
            raise ValueError(f"unsupported inbound entry {layer_name}: {kwargs}")
        args.append(tensors[(layer_name, node_index)])
    return args[0] if len(args) == 1 else args


def build_graph(specs: list[LayerSpec]) -> dict[tuple[str, int], Tensor]:
    """Rebuild the functional graph in file order; returns every (layer, node) output.

    A layer is created once and called once per inbound node, in node order, so a
    shared layer (the channel-attention MLP's Dense pair is called on the average-
    and the max-pooled vector) keeps one set of weights and its node indices match
    the file's references such as ``["dense_2", 1, 0, {}]``.
    """
    tensors: dict[tuple[str, int], Tensor] = {}
    for spec in specs:
        name, kind = spec["name"], spec["class_name"]
        if kind == "InputLayer":
            tensors[(name, 0)] = _input_tensor(spec)
            continue
        layer = _BUILDERS[kind](spec["config"])
        for node_index, node in enumerate(spec["inbound_nodes"]):
            tensors[(name, node_index)] = layer(_inbound(node, tensors))
    return tensors


def check_rdab_layers(specs: list[LayerSpec]) -> list[str]:
    """Check that RDAB_LAYERS are exactly the ReLU(BN(4-input Add)) layers.

    Returns the matching names in file order, for the summary.
    """
    by_name = {spec["name"]: spec for spec in specs}

    def source(spec: LayerSpec) -> LayerSpec:
        (node,) = spec["inbound_nodes"]
        (entry,) = node
        return by_name[entry[0]]

    found = []
    for spec in specs:
        if spec["class_name"] != "Activation" or spec["config"]["activation"] != "relu":
            continue
        norm = source(spec)
        if norm["class_name"] != "BatchNormalization":
            continue
        add = source(norm)
        if add["class_name"] == "Add" and len(add["inbound_nodes"][0]) == 4:
            found.append(spec["name"])
    if sorted(found) != sorted(RDAB_LAYERS):
        raise ValueError(f"RDAB outputs in the graph: {found}, expected {RDAB_LAYERS}")
    return found


# --------------------------------------------------------------------------- weights


def load_weights(model: keras.Model, h5: h5py.File) -> int:
    """Copy every stored weight into the rebuilt layers, matched by name.

    Matching by name (kernel, bias, gamma, beta, moving_mean, moving_variance)
    rather than position, with shape checks and a check that no variable is left
    unset, means a mis-ordered load cannot pass silently. Returns the value count.
    """
    group = h5["model_weights"]
    total = 0
    loaded_layers = set()
    for layer_name in (n.decode() for n in group.attrs["layer_names"]):
        weight_names = [n.decode() for n in group[layer_name].attrs["weight_names"]]
        if not weight_names:
            continue
        layer = model.get_layer(layer_name)
        variables = {v.name: v for v in layer.weights}
        stored = {n.split("/")[-1].removesuffix(":0"): n for n in weight_names}
        if set(stored) != set(variables):
            raise ValueError(f"{layer_name}: stored {set(stored)} vs {set(variables)}")
        for key, path in stored.items():
            value = np.asarray(group[layer_name][path], dtype=np.float32)
            if tuple(variables[key].shape) != value.shape:
                raise ValueError(f"{layer_name}/{key}: shape {value.shape}")
            variables[key].assign(value)
            total += value.size
        loaded_layers.add(layer_name)
    unset = {layer.name for layer in model.layers if layer.weights} - loaded_layers
    if unset:
        raise ValueError(f"layers without stored weights: {sorted(unset)}")
    if total != EXPECTED_VALUES:
        raise ValueError(f"loaded {total:,} values, expected {EXPECTED_VALUES:,}")
    return total


# --------------------------------------------------------------------------- inputs


def _dark_scene(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Draw a smooth, dark, linear RGB scene like the NTIRE 2020 clean renderings.

    Per-channel gradients plus four soft Gaussian blobs, scaled so the maximum is
    0.2-0.3, then 1% multiplicative noise.
    """
    y, x = np.meshgrid(np.linspace(0.0, 1.0, height), np.linspace(0.0, 1.0, width), indexing="ij")
    y, x = y[..., None], x[..., None]
    slope_x, slope_y = rng.uniform(-0.04, 0.04, (2, 3))
    image = rng.uniform(0.02, 0.08, 3) + slope_x * x + slope_y * y
    for _ in range(4):
        cy, cx = rng.uniform(0.0, 1.0, 2)
        sigma = rng.uniform(0.08, 0.3)
        blob = np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2.0 * sigma**2))
        image = image + rng.uniform(0.03, 0.15, 3) * blob
    image = np.clip(image, 0.0, None) * rng.uniform(0.5, 1.0, 3)
    image *= rng.uniform(0.2, 0.3) / image.max()
    image *= 1.0 + 0.01 * rng.standard_normal(image.shape)
    return np.clip(image, 0.0, None).astype(np.float32)


def make_inputs(seed: int = SEED) -> dict[str, np.ndarray]:
    """Make the fixed input sets, NHWC float32, all drawn from one seeded generator.

    ``noise64`` exercises the U-net, ``dark64`` is in the range the model was
    trained on, ``rect48x64`` is non-square so a row/column swap (coordinate
    channels, transposed-conv cropping) cannot pass.
    """
    rng = np.random.default_rng(seed)
    # Of two noise draws, the second is kept: it is the one where the U-net's
    # encoder output (activation_12) reaches op0 through K_x_1. One image per set
    # keeps the fixture under the size budget (31-band float32 maps deflate poorly).
    noise = rng.random((2, 64, 64, 3), dtype=np.float32)[1:]
    dark = _dark_scene(rng, 64, 64)[None]
    rect = rng.random((1, 48, 64, 3), dtype=np.float32) * np.float32(0.5)
    return {"noise64": noise, "dark64": dark, "rect48x64": rect}


# --------------------------------------------------------------------------- record


def run_taps(model: keras.Model, image: np.ndarray) -> dict[str, np.ndarray]:
    """Run the tap model in inference mode (BatchNorm running stats, no dropout)."""
    outputs = model(tf.constant(image), training=False)
    return {key: np.asarray(value, dtype=np.float32) for key, value in outputs.items()}


def unet_effect(model: keras.Model, image: np.ndarray, op0: np.ndarray) -> float:
    """Return max |op0 - op0 with the U-net's last kernel zeroed|.

    The README says this is exactly 0 with these weights; measure, do not assume.
    """
    kernel = model.get_layer(UNET_OUTPUT).kernel
    saved = np.asarray(kernel)
    kernel.assign(np.zeros_like(saved))
    try:
        zeroed = run_taps(model, image)["op0"]
    finally:
        kernel.assign(saved)
    return float(np.max(np.abs(op0 - zeroed)))


def record(model: keras.Model, inputs: dict[str, np.ndarray]) -> dict[str, Any]:
    """Run every input set; returns the arrays and, per set, the U-net findings."""
    arrays: dict[str, np.ndarray] = {}
    findings: dict[str, dict[str, float]] = {}
    for set_name, image in inputs.items():
        taps = run_taps(model, image)
        arrays[f"{set_name}/input"] = image
        arrays |= {f"{set_name}/{key}": value for key, value in taps.items()}
        findings[set_name] = {
            "max_abs_op0_change_with_K_x_1_kernel_zeroed": unet_effect(model, image, taps["op0"]),
            "zero_share_activation_60": float(np.mean(taps["rdab_8"] == 0.0)),
        }
    return {"arrays": arrays, "findings": findings}


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file, to tie the fixture to the exact weights file."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def make_meta(source: Path, sets: Sequence[str], extra: dict[str, Any]) -> np.ndarray:
    """Provenance as a JSON string in a 0-d unicode array (loads without pickle)."""
    meta = {
        "tensorflow_version": tf.__version__,
        "keras_version": keras.__version__,
        "numpy_version": np.__version__,
        "source_file": source.name,
        "source_sha256": sha256(source),
        "rng": f"numpy.random.default_rng({SEED})",
        "seed": SEED,
        "rdab_layers": list(RDAB_LAYERS),
        "input_sets": list(sets),
        "taps": TAPS,
        "date": datetime.date.today().isoformat(),
        "layout": "NHWC float32, as Keras gives",
        "tf_enable_onednn_opts": os.environ["TF_ENABLE_ONEDNN_OPTS"],
        **extra,
    }
    return np.array(json.dumps(meta, indent=1))


# --------------------------------------------------------------------------- main


def print_summary(arrays: dict[str, np.ndarray], findings: dict[str, Any]) -> None:
    """Print shape and max magnitude of every stored tensor, then the U-net findings."""
    for set_name, found in findings.items():
        print(f"\n[{set_name}]")
        for key, value in arrays.items():
            if key.startswith(f"{set_name}/"):
                shape = "x".join(map(str, value.shape))
                print(f"  {key:24s} {shape:16s} max|v| = {np.abs(value).max():.6g}")
        for key, value in found.items():
            print(f"  {key} = {value:.6g}")


def print_unet_kernel(model: keras.Model) -> None:
    """Print why the U-net is dead: the magnitude of K_x_1's kernel per input."""
    kernel = np.abs(np.asarray(model.get_layer(UNET_OUTPUT).kernel))
    per_input = kernel.max(axis=(0, 1, 3))
    print(f"K_x_1 kernel max|w| per input channel: {np.array2string(per_input)}")


def parse_args() -> argparse.Namespace:
    """Parse the command line (source .hdf5, output path)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("hdf5", type=Path, help="the authors' Keras 2.2.4 .hdf5")
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        default=Path("tests/fixtures/keras_reference.npz"),
        help="where to write the fixture",
    )
    return parser.parse_args()


def main() -> None:
    """Rebuild, load, check, record, save, summarise."""
    args = parse_args()
    tf.config.experimental.enable_op_determinism()
    with h5py.File(args.hdf5, "r") as h5:
        graph = json.loads(h5.attrs["model_config"])["config"]
        rdab_in_file_order = check_rdab_layers(graph["layers"])
        tensors = build_graph(graph["layers"])
        ((input_name, _, _),) = graph["input_layers"]
        ((output_name, _, _),) = graph["output_layers"]
        if output_name != "op0":
            raise ValueError(f"unexpected model output {output_name}")
        model = keras.Model(
            tensors[(input_name, 0)],
            {key: tensors[(layer, 0)] for key, layer in TAPS.items()},
        )
        total = load_weights(model, h5)
    reductions = lambda_reductions(graph["layers"])
    print(f"weights loaded: {total:,} values (expected {EXPECTED_VALUES:,})")
    for kind in ("mean", "max"):
        names = [name for name, found in reductions.items() if found == kind]
        print(f"Lambda {kind} (from bytecode), {len(names)}: {', '.join(names)}")
    print(f"RDAB outputs in file order: {rdab_in_file_order}")
    print_unet_kernel(model)

    inputs = make_inputs()
    result = record(model, inputs)
    arrays = result["arrays"]
    meta = make_meta(
        args.hdf5,
        list(inputs),
        {
            "weight_values": total,
            "lambda_reductions": reductions,
            "trimmed": "one image per set (the second noise draw, the first dark scene)",
            "findings": result["findings"],
        },
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.output, meta=meta, **arrays)

    print_summary(arrays, result["findings"])
    size = args.output.stat().st_size
    print(f"\nwrote {args.output} ({size:,} bytes)")
    if size > SIZE_BUDGET_BYTES:
        print(f"WARNING: above the {SIZE_BUDGET_BYTES:,}-byte budget (op0/K_x dominate)")


if __name__ == "__main__":
    main()
