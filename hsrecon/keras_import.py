"""Read the authors' Keras HDF5 model with h5py alone and map it, by its layer graph, onto :class:`LWRDAN`.

Why by the graph: Keras numbers layers in creation order (``conv2d_1``, ``batch_normalization_2``…), which
is neither the order of the forward pass nor stable across rebuilds. So the importer starts at the model's
output and walks ``inbound_nodes`` backwards, recognising each part of the network by its shape in the
graph (which layer feeds which, with what class and settings). Every weight of the file must be claimed by
exactly one PyTorch tensor; anything that does not match is refused with one sentence naming the layer.

TensorFlow is never imported: the Lambda layers' marshalled bytecode is only inspected for the name of
the reduction it calls (``mean`` or ``max``).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch

from hsrecon.model import LWRDAN, LWRDANConfig
from hsrecon.weights_schema import check_config, check_parameter_budget

__all__ = ["KerasGraph", "KerasImportError", "import_keras_model", "map_keras_layers", "read_keras_state_dict"]


MAX_WEIGHT_VALUES = 16_000_000
"""The largest single weight array read (64 MB of float32); LWRDAN's largest has 12,800 values."""


class KerasImportError(ValueError):
    """The file is not a Keras HDF5 of the LWRDAN architecture; the message says what did not match."""


@dataclass(frozen=True)
class KerasLayer:
    """One layer of ``model_config``: its class, config, and the names of the layers feeding each call."""

    name: str
    class_name: str
    config: dict
    calls: tuple[tuple[str, ...], ...]

    @property
    def inputs(self) -> tuple[str, ...]:
        """Inputs of the first call (all layers here but the shared attention MLP are called once)."""
        return self.calls[0] if self.calls else ()


class _Layers(dict):
    """Layers by name; a name no layer has is the file's error, said as such (not a KeyError)."""

    def __missing__(self, name: str) -> KerasLayer:
        raise KerasImportError(f"layer {name!r} is referenced but not defined")


class KerasGraph:
    """The layer graph of a Keras 2 functional model, with checks that fail as :class:`KerasImportError`."""

    def __init__(self, model_config: dict) -> None:
        if model_config.get("class_name") not in ("Model", "Functional"):
            raise KerasImportError(f"expected a functional Keras Model, found {model_config.get('class_name')!r}")
        config = model_config["config"]
        self.layers: dict[str, KerasLayer] = _Layers()
        for entry in config["layers"]:
            calls = tuple(tuple(node[0] for node in call) for call in entry.get("inbound_nodes", []))
            self.layers[entry["name"]] = KerasLayer(entry["name"], entry["class_name"], entry["config"], calls)
        outputs = config["output_layers"]
        if len(outputs) != 1:
            raise KerasImportError(f"expected one output layer, found {len(outputs)}")
        self.output = outputs[0][0]

    def get(self, name: str, class_name: str | tuple[str, ...], **expected: object) -> KerasLayer:
        """The layer ``name``, checked to be of ``class_name`` and to have the ``expected`` config values."""
        layer = self.layers.get(name)
        if layer is None:
            raise KerasImportError(f"layer {name!r} is referenced but not defined")
        classes = (class_name,) if isinstance(class_name, str) else class_name
        if layer.class_name not in classes:
            raise KerasImportError(f"layer {name!r}: expected {' or '.join(classes)}, found {layer.class_name}")
        for key, value in expected.items():
            actual = layer.config.get(key)
            if isinstance(actual, list):
                actual = tuple(actual)
            if actual != value:
                raise KerasImportError(f"layer {name!r}: expected {key}={value!r}, found {actual!r}")
        return layer

    def single_input(self, name: str) -> str:
        inputs = self.layers[name].inputs
        if len(inputs) != 1:
            raise KerasImportError(f"layer {name!r}: expected one input, found {len(inputs)}")
        return inputs[0]

    def conv(self, name: str, *, kernel: int, activation: str = "linear", use_bias: bool = True) -> KerasLayer:
        """A stride-1 ``same`` Conv2D with the given kernel size and activation."""
        return self.get(
            name,
            "Conv2D",
            kernel_size=(kernel, kernel),
            strides=(1, 1),
            padding="same",
            activation=activation,
            use_bias=use_bias,
        )

    def chain(self, name: str, *classes: str) -> list[str]:
        """Follow single inputs from ``name`` through layers of ``classes`` (in order); return their names."""
        names = []
        for class_name in classes:
            self.get(name, class_name)
            names.append(name)
            name = self.single_input(name)
        return [*names, name]

    def lambda_reduction(self, name: str) -> str:
        """``'mean'`` or ``'max'``: the reduction a Lambda layer's (unloadable) bytecode calls."""
        layer = self.get(name, "Lambda")
        code = base64.b64decode(layer.config["function"][0])
        found = [op for op in ("mean", "max") if op.encode() in code]
        if len(found) != 1:
            raise KerasImportError(f"layer {name!r}: Lambda is neither a channel mean nor a channel max")
        return found[0]


# A mapping from PyTorch module paths to the Keras layers that hold their weights.
LayerMap = dict[str, str]


def _match_relu(graph: KerasGraph, name: str) -> str:
    """``name`` is ``Activation('relu')``; return its input."""
    graph.get(name, "Activation", activation="relu")
    return graph.single_input(name)


def _match_conv_bn_relu(graph: KerasGraph, name: str, prefix: str, found: LayerMap) -> str:
    """``relu(BN(conv3×3(x)))`` ending at ``name``; record conv and BN; return x."""
    bn = _match_relu(graph, name)
    graph.get(bn, "BatchNormalization")
    conv = graph.single_input(bn)
    graph.conv(conv, kernel=3)
    found[f"{prefix}.conv"] = conv
    found[f"{prefix}.norm"] = bn
    return graph.single_input(conv)


def _match_channel_attention(graph: KerasGraph, gate: str, features: str, prefix: str, found: LayerMap) -> None:
    """sigmoid(MLP(GAP(f)) + MLP(GMP(f))) with one MLP (two Dense layers, each called twice)."""
    graph.get(gate, "Activation", activation="sigmoid")
    added = graph.get(graph.single_input(gate), "Add")
    if len(added.inputs) != 2 or len(set(added.inputs)) != 1:
        raise KerasImportError(f"layer {added.name!r}: expected the shared MLP's two results added")
    fc2 = graph.get(added.inputs[0], "Dense", activation="linear")
    fc1_calls = {call[0] for call in fc2.calls}
    if len(fc1_calls) != 1 or len(fc2.calls) != 2:
        raise KerasImportError(f"layer {fc2.name!r}: expected one Dense layer called twice")
    fc1 = graph.get(fc1_calls.pop(), "Dense", activation="relu")
    pools = []
    for call in fc1.calls:
        reshape = graph.get(call[0], "Reshape")
        pool = graph.get(graph.single_input(reshape.name), ("GlobalAveragePooling2D", "GlobalMaxPooling2D"))
        if graph.single_input(pool.name) != features:
            raise KerasImportError(f"layer {pool.name!r}: expected to pool {features!r}")
        pools.append(pool.class_name)
    if pools != ["GlobalAveragePooling2D", "GlobalMaxPooling2D"]:
        raise KerasImportError(f"layer {fc1.name!r}: expected calls on the average then the max pooled features")
    found[f"{prefix}.mlp.fc1"] = fc1.name
    found[f"{prefix}.mlp.fc2"] = fc2.name


def _match_spatial_attention(graph: KerasGraph, conv: str, features: str, prefix: str, found: LayerMap) -> None:
    """sigmoid(conv7×7([mean_c(f), max_c(f)])), no bias, channel mean first."""
    layer = graph.get(conv, "Conv2D", filters=1, activation="sigmoid", use_bias=False, padding="same")
    concat = graph.get(graph.single_input(conv), "Concatenate")
    reductions = [graph.lambda_reduction(name) for name in concat.inputs]
    if reductions != ["mean", "max"]:
        raise KerasImportError(f"layer {concat.name!r}: expected [channel mean, channel max], found {reductions}")
    for name in concat.inputs:
        if graph.single_input(name) != features:
            raise KerasImportError(f"layer {name!r}: expected to reduce {features!r}")
    found[f"{prefix}.conv"] = layer.name


def _match_rdab(graph: KerasGraph, output: str, prefix: str, found: LayerMap) -> str:
    """One RDAB ending at ``output`` (see :class:`hsrecon.model.RDAB`); record its layers; return its input."""
    post_norm = graph.get(_match_relu(graph, output), "BatchNormalization")
    total = graph.get(graph.single_input(post_norm.name), "Add")
    if len(total.inputs) != 4:
        raise KerasImportError(f"layer {total.name!r}: expected the RDAB's sum of 4 terms")
    products = [n for n in total.inputs if graph.layers[n].class_name == "Multiply"]
    others = [n for n in total.inputs if n not in products]
    if len(products) != 2:
        raise KerasImportError(f"layer {total.name!r}: expected two attention products among its inputs")
    block_input, side = _split_residual_and_side(graph, others, total.name)
    _match_conv_bn_relu(graph, side, f"{prefix}.side", found)
    features = _match_attention_products(graph, products, prefix, found)
    x = _match_conv_bn_relu(graph, features, f"{prefix}.body.1", found)
    x = _match_conv_bn_relu(graph, x, f"{prefix}.body.0", found)
    pre_norm = graph.get(_match_relu(graph, x), "BatchNormalization")
    if graph.single_input(pre_norm.name) != block_input:
        raise KerasImportError(f"layer {pre_norm.name!r}: expected to normalise the block input {block_input!r}")
    found[f"{prefix}.pre_norm"] = pre_norm.name
    found[f"{prefix}.post_norm"] = post_norm.name
    return block_input


def _split_residual_and_side(graph: KerasGraph, names: list[str], where: str) -> tuple[str, str]:
    """Of the two non-product terms, the side branch is relu(BN(conv(other))); return (input, side)."""
    for x, side in (names, names[::-1]):
        layer = graph.layers[side]
        if layer.class_name == "Activation" and layer.config.get("activation") == "relu":
            bn = graph.layers[graph.single_input(side)]
            if bn.class_name == "BatchNormalization":
                conv = graph.layers[graph.single_input(bn.name)]
                if conv.class_name == "Conv2D" and graph.single_input(conv.name) == x:
                    return x, side
    raise KerasImportError(f"layer {where!r}: no side branch relu(BN(conv(x))) among {names}")


def _match_attention_products(graph: KerasGraph, products: list[str], prefix: str, found: LayerMap) -> str:
    """features·CA(features) and features·SA(features); return the features' layer name."""
    features, gates = None, {}
    for name in products:
        pair = graph.get(name, "Multiply").inputs
        if len(pair) != 2:
            raise KerasImportError(f"layer {name!r}: expected a product of two tensors")
        features = features or pair[0]
        if pair[0] != features:
            raise KerasImportError(f"layer {name!r}: the two attention products gate different features")
        gates[graph.layers[pair[1]].class_name] = pair[1]
    if set(gates) != {"Activation", "Conv2D"}:
        raise KerasImportError(f"layers {products}: expected one channel gate and one spatial gate")
    _match_channel_attention(graph, gates["Activation"], features, f"{prefix}.channel_attention", found)
    _match_spatial_attention(graph, gates["Conv2D"], features, f"{prefix}.spatial_attention", found)
    return features


def _match_stage(graph: KerasGraph, output: str, prefix: str, found: LayerMap) -> tuple[str, int]:
    """RDABs back from ``output`` to the stage's entry layer; return (entry name, number of RDABs)."""
    blocks: list[LayerMap] = []
    name, seen = output, {output}
    while True:
        block: LayerMap = {}
        name = _match_rdab(graph, name, "", block)
        blocks.append(block)
        if name in seen:  # a crafted graph can loop back on itself; a real one never does
            raise KerasImportError(f"layer {name!r}: the graph loops back on itself")
        seen.add(name)
        layer = graph.layers[name]
        if layer.class_name != "Activation":
            break
    for index, block in enumerate(reversed(blocks)):
        found.update({f"{prefix}.blocks.{index}{key}": value for key, value in block.items()})
    found[f"{prefix}.entry" + (".conv" if graph.layers[name].class_name == "Conv2DTranspose" else "")] = name
    return name, len(blocks)


def _match_upsample(graph: KerasGraph, name: str) -> str:
    graph.get(name, "Conv2DTranspose", kernel_size=(3, 3), strides=(2, 2), padding="same", activation="linear")
    return graph.single_input(name)


def _match_concat(graph: KerasGraph, name: str, count: int) -> tuple[str, ...]:
    layer = graph.get(name, "Concatenate")
    if layer.config.get("axis") not in (-1, 3) or len(layer.inputs) != count:
        raise KerasImportError(f"layer {name!r}: expected a channel concatenation of {count} tensors")
    return layer.inputs


def _match_unet(graph: KerasGraph, head: str, coords: str, found: LayerMap) -> dict:
    """The U-net branch ending at the conv ``head``; returns RDAB counts per stage and the dropout rate."""
    found["unet.head"] = head
    dec1_out, enc1_out = _match_concat(graph, graph.single_input(head), 2)
    entry, n_dec1 = _match_stage(graph, dec1_out, "unet.dec1", found)
    skip_dropout = graph.get(_match_upsample(graph, entry), "Dropout")
    dec2_out, enc2_out = _match_concat(graph, graph.single_input(skip_dropout.name), 2)
    entry, n_dec2 = _match_stage(graph, dec2_out, "unet.dec2", found)
    bottleneck_out = _match_upsample(graph, entry)
    entry, n_bottleneck = _match_stage(graph, bottleneck_out, "unet.bottleneck", found)
    graph.conv(entry, kernel=3)
    pool_dropout, pool, enc2_seen = graph.chain(graph.single_input(entry), "Dropout", "MaxPooling2D")
    _check_pool(graph, pool)
    _check_same(enc2_seen, enc2_out, pool)
    entry, n_enc2 = _match_stage(graph, enc2_out, "unet.enc2", found)
    graph.conv(entry, kernel=3)
    pool, enc1_seen = graph.chain(graph.single_input(entry), "MaxPooling2D")
    _check_pool(graph, pool)
    _check_same(enc1_seen, enc1_out, pool)
    entry, n_enc1 = _match_stage(graph, enc1_out, "unet.enc1", found)
    graph.conv(entry, kernel=3)
    _check_same(graph.single_input(entry), coords, entry)
    rates = {graph.layers[name].config["rate"] for name in (skip_dropout.name, pool_dropout)}
    if len(rates) != 1:
        raise KerasImportError(f"the U-net's two Dropout layers differ in rate: {sorted(rates)}")
    return {"blocks": (n_enc1, n_enc2, n_bottleneck, n_dec2, n_dec1), "dropout": float(rates.pop())}


def _check_pool(graph: KerasGraph, name: str) -> None:
    graph.get(name, "MaxPooling2D", pool_size=(2, 2), strides=(2, 2), padding="valid")


def _check_same(actual: str, expected: str, where: str) -> None:
    if actual != expected:
        raise KerasImportError(f"layer {where!r}: expected input {expected!r} (skip connection), found {actual!r}")


def _match_dense(graph: KerasGraph, head: str, coords: str, found: LayerMap) -> None:
    """The dense branch: c1 (1×1) → c2 (3×3) → c3 (5×5, [c1,c2]) → c4 (7×7, [c2,c3]) → head ([c1..c4])."""
    found["dense.head"] = head
    c1, c2, c3, c4 = _match_concat(graph, graph.single_input(head), 4)
    for name, kernel in ((c1, 1), (c2, 3), (c3, 5), (c4, 7)):
        graph.conv(name, kernel=kernel, activation="relu")
    _check_same(tuple(_match_concat(graph, graph.single_input(c4), 2)), (c2, c3), c4)
    _check_same(tuple(_match_concat(graph, graph.single_input(c3), 2)), (c1, c2), c3)
    _check_same(graph.single_input(c2), c1, c2)
    _check_same(graph.single_input(c1), coords, c1)
    found.update({"dense.conv1": c1, "dense.conv2": c2, "dense.conv3": c3, "dense.conv4": c4})


def _coordinate_layer(graph: KerasGraph) -> str:
    names = [layer.name for layer in graph.layers.values() if layer.class_name == "CoordinateChannel2D"]
    if len(names) != 1:
        raise KerasImportError(f"expected one CoordinateChannel2D layer, found {len(names)}")
    input_layer = graph.get(graph.single_input(names[0]), "InputLayer")
    shape = input_layer.config.get("batch_input_shape") or [None, None, None, None]
    if shape[-1] != 3:
        raise KerasImportError(f"layer {input_layer.name!r}: expected 3 input channels, found {shape[-1]}")
    return names[0]


def map_keras_layers(graph: KerasGraph) -> tuple[LayerMap, dict]:
    """Walk the graph from its output; return {PyTorch module path: Keras layer} and the config's shape facts."""
    found: LayerMap = {}
    coords = _coordinate_layer(graph)
    fusion = graph.conv(graph.output, kernel=5)
    found["fusion"] = fusion.name
    branches = graph.get(graph.single_input(fusion.name), "Add").inputs
    if len(branches) != 2:
        raise KerasImportError(f"layer {fusion.name!r}: expected the sum of two branches")
    heads = {}
    for head in branches:
        graph.conv(head, kernel=int(fusion.config["kernel_size"][0]))
        heads[len(graph.get(graph.single_input(head), "Concatenate").inputs)] = head
    if set(heads) != {2, 4}:
        raise KerasImportError(f"layers {branches}: expected a U-net head (2 inputs) and a dense head (4 inputs)")
    _match_dense(graph, heads[4], coords, found)
    return found, _match_unet(graph, heads[2], coords, found)


def _read_layer_weights(model_weights: h5py.Group, layer: str) -> dict[str, np.ndarray]:
    """{'kernel': …, 'bias': …} for one layer, by the names Keras recorded in ``weight_names``."""
    if layer not in model_weights:
        raise KerasImportError(f"layer {layer!r} has no weights in the file")
    group = model_weights[layer]
    arrays = {}
    for raw in group.attrs.get("weight_names", []):
        name = raw.decode() if isinstance(raw, bytes) else str(raw)
        short = name.split("/")[-1].split(":")[0]
        arrays[short] = _read_weight_array(group, name, layer)
    return arrays


def _read_weight_array(group: h5py.Group, name: str, layer: str) -> np.ndarray:
    """One weight array, read only if it is a plain numeric dataset of this file and of a sane size.

    The size is the file's claim, not its content (a sparse dataset costs nothing on disk), so it is
    checked before reading; links to other files and external or virtual storage are refused, so an
    import reads nothing but the file it was given.
    """
    dataset = group.get(name)
    if not isinstance(dataset, h5py.Dataset):
        raise KerasImportError(f"layer {layer!r}: weight {name!r} is not a dataset in the file")
    if dataset.file.filename != group.file.filename or dataset.is_virtual or dataset.external:
        raise KerasImportError(f"layer {layer!r}: weight {name!r} points outside the file")
    if dataset.dtype.kind not in "fiu":
        raise KerasImportError(f"layer {layer!r}: weight {name!r} has the non-numeric type {dataset.dtype}")
    if dataset.size > MAX_WEIGHT_VALUES:
        raise KerasImportError(f"layer {layer!r}: weight {name!r} declares {dataset.size:,} values")
    return np.asarray(dataset[()], dtype=np.float32)


def _keras_tensors_to_torch(kind: type[torch.nn.Module], arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Convert one Keras layer's arrays to PyTorch's names and layouts."""
    if kind is torch.nn.BatchNorm2d:
        return {
            "weight": arrays["gamma"],
            "bias": arrays["beta"],
            "running_mean": arrays["moving_mean"],
            "running_var": arrays["moving_variance"],
        }
    if kind is torch.nn.Linear:  # Keras (in, out) → PyTorch (out, in)
        converted = {"weight": arrays["kernel"].T}
    else:
        # Conv2D HWIO → OIHW. Conv2DTranspose stores (kh, kw, out, in); PyTorch wants (in, out, kh, kw):
        # the same axis permutation. Both frameworks' transposed convolution is the adjoint of their
        # (cross-correlation) convolution, so no spatial flip.
        converted = {"weight": arrays["kernel"].transpose(3, 2, 0, 1)}
    if "bias" in arrays:
        converted["bias"] = arrays["bias"]
    return converted


def _config_from_file(graph: KerasGraph, found: LayerMap, facts: dict, weights: h5py.Group) -> LWRDANConfig:
    """Read every width off the file's tensors, so a differently sized LWRDAN imports too."""

    def out_channels(module_path: str) -> int:
        return int(_read_layer_weights(weights, found[module_path])["kernel"].shape[-1])

    def first(key_suffix: str) -> str:
        return next(key for key in found if key.endswith(key_suffix))

    widths = tuple(out_channels(f"unet.{stage}.blocks.0.body.0.conv") for stage in ("enc1", "enc2", "bottleneck"))
    hidden = out_channels(first("channel_attention.mlp.fc1"))
    eps_values = {graph.layers[name].config.get("epsilon") for key, name in found.items() if key.endswith("norm")}
    if len(eps_values) != 1:
        raise KerasImportError(f"BatchNormalization layers use different epsilons: {sorted(eps_values)}")
    spatial = _read_layer_weights(weights, found[first("spatial_attention.conv")])["kernel"].shape[0]
    return LWRDANConfig(
        in_channels=3,
        out_bands=out_channels("fusion"),
        widths=widths,  # type: ignore[arg-type]
        blocks=tuple(facts["blocks"]),  # type: ignore[arg-type]
        dense_width=out_channels("dense.conv1"),
        reduction=widths[0] // hidden,
        spatial_kernel=int(spatial),
        head_kernel=int(_read_layer_weights(weights, found["fusion"])["kernel"].shape[0]),
        dropout=facts["dropout"],
        bn_eps=float(eps_values.pop()),
    )


def read_keras_state_dict(path: str | Path) -> tuple[LWRDANConfig, dict[str, torch.Tensor], dict]:
    """Read a Keras HDF5 of the LWRDAN architecture: (config, PyTorch state dict, Keras file facts).

    Raises :class:`KerasImportError` (one sentence) if the file is not such a model.
    """
    path = Path(path)
    try:
        handle = h5py.File(path, "r")
    except OSError as error:
        raise KerasImportError(f"{path}: not an HDF5 file ({error})") from None
    try:
        with handle:
            return _read_open_file(handle)
    except KerasImportError as error:
        raise KerasImportError(f"{path}: {error}") from None
    except (KeyError, IndexError, TypeError, AttributeError, ValueError, OSError, RecursionError) as error:
        # A file that passes the structural checks and still trips the walk: say so, never a traceback.
        problem = " ".join(str(error).split()) or type(error).__name__
        raise KerasImportError(f"{path}: not a usable Keras LWRDAN ({type(error).__name__}: {problem})") from None


def _read_open_file(handle: h5py.File) -> tuple[LWRDANConfig, dict[str, torch.Tensor], dict]:
    if "model_config" not in handle.attrs or not isinstance(handle.get("model_weights"), h5py.Group):
        raise KerasImportError("not a Keras whole-model HDF5 (no model_config or model_weights)")
    graph = KerasGraph(parse_model_config(handle.attrs["model_config"]))
    found, facts = map_keras_layers(graph)
    weights = handle["model_weights"]
    config = _config_from_file(graph, found, facts, weights)
    try:  # the widths come from the file's arrays: bounded before a network of them is built
        check_config(config.to_dict())
        check_parameter_budget(config)
    except ValueError as error:
        raise KerasImportError(f"the network it describes is out of range ({error})") from None
    state = _build_state(config, found, weights)
    _check_all_weights_claimed(found, weights)
    keras_facts = {
        "keras_version": _attr(handle, "keras_version"),
        "backend": _attr(handle, "backend"),
        "layers_mapped": len(found),
    }
    return config, state, keras_facts


def parse_model_config(raw: object) -> dict:
    """The ``model_config`` attribute as a checked dict: JSON text of a functional model whose ``config``
    has a list of ``layers`` (each with a name, a class, a config and inbound nodes) and ``output_layers``.

    Only the structure the graph walk relies on is checked here; what the layers are is the walk's job.
    """
    if isinstance(raw, bytes | np.bytes_):
        raw = bytes(raw).decode("utf-8", errors="replace")
    if not isinstance(raw, str):
        raise KerasImportError(f"model_config is not text but {type(raw).__name__}")
    try:
        model = json.loads(raw)
    except (json.JSONDecodeError, RecursionError):
        raise KerasImportError("model_config is not JSON") from None
    if not isinstance(model, dict):
        raise KerasImportError(f"model_config is not a JSON object but {type(model).__name__}")
    config = model.get("config")
    if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
        raise KerasImportError("model_config has no config.layers list (not a functional Keras model)")
    for index, entry in enumerate(config["layers"]):
        _check_layer_entry(index, entry)
    outputs = config.get("output_layers")
    if not isinstance(outputs, list) or not all(_is_node(node) for node in outputs):
        raise KerasImportError("model_config has no valid config.output_layers")
    return model


def _is_node(node: object) -> bool:
    """A Keras node reference: ``[layer name, node index, tensor index, ...]``."""
    return isinstance(node, list) and len(node) >= 1 and isinstance(node[0], str)


def _check_layer_entry(index: int, entry: object) -> None:
    if not isinstance(entry, dict):
        raise KerasImportError(f"model_config layer {index} is not an object")
    for key, kind in (("name", str), ("class_name", str), ("config", dict)):
        if not isinstance(entry.get(key), kind):
            raise KerasImportError(f"model_config layer {index}: {key!r} missing or not a {kind.__name__}")
    calls = entry.get("inbound_nodes", [])
    if not isinstance(calls, list) or not all(
        isinstance(call, list) and all(_is_node(node) for node in call) for call in calls
    ):
        raise KerasImportError(f"layer {entry['name']!r}: malformed inbound_nodes")


def _attr(handle: h5py.File, key: str) -> str:
    value = handle.attrs.get(key, "")
    return value.decode() if isinstance(value, bytes) else str(value)


def _build_state(config: LWRDANConfig, found: LayerMap, weights: h5py.Group) -> dict[str, torch.Tensor]:
    """Fill a fresh model's state dict from the mapped Keras layers, checking every shape."""
    model = LWRDAN(config)
    modules = dict(model.named_modules())
    reference = model.state_dict()
    state: dict[str, torch.Tensor] = {}
    for module_path, layer in found.items():
        module = modules.get(module_path)
        if module is None:
            raise KerasImportError(f"layer {layer!r} maps to {module_path!r}, which the PyTorch model lacks")
        converted = _keras_tensors_to_torch(type(module), _read_layer_weights(weights, layer))
        for name, array in converted.items():
            key = f"{module_path}.{name}"
            if key not in reference or tuple(reference[key].shape) != array.shape:
                expected = tuple(reference[key].shape) if key in reference else "nothing"
                raise KerasImportError(f"layer {layer!r}: {name} has shape {array.shape}, expected {expected}")
            state[key] = torch.from_numpy(np.ascontiguousarray(array))
    for key, tensor in reference.items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.zeros_like(tensor)
    missing = sorted(set(reference) - set(state))
    if missing:
        raise KerasImportError(f"no Keras weights found for {len(missing)} tensors, e.g. {missing[:3]}")
    return state


def _check_all_weights_claimed(found: LayerMap, weights: h5py.Group) -> None:
    claimed = set(found.values())
    with_weights = [name for name in weights if len(weights[name].attrs.get("weight_names", [])) > 0]
    unclaimed = sorted(set(with_weights) - claimed)
    if unclaimed:
        raise KerasImportError(f"layers with weights outside the LWRDAN graph: {unclaimed[:5]}")


def import_keras_model(path: str | Path) -> LWRDAN:
    """A ready LWRDAN (eval mode) with the weights of a Keras HDF5 file."""
    config, state, _ = read_keras_state_dict(path)
    model = LWRDAN(config)
    model.load_state_dict(state, strict=True)
    return model.eval()


# Files whose origin is known, by SHA-256: their provenance is written into the converted weights.
KNOWN_SOURCES: dict[str, dict] = {
    "c1fcfaea27cf30652161266dc7ce1c200164f901427532983f6dbdddf4fb5cb5": {
        "weights_version": "ntire2020-clean-1",
        "input_space": "ntire2020-clean",
        "window_size": 64,
        "provenance": {
            "source": "dsabarinathan/LightWeightModel (GitHub)",
            "commit": "0de84ebed542c030701b704b7102c074bd7c223c",
            "file": "model/model-221.74-val_mse-0.0004--val_ssim--0.9827.hdf5",
            "license": "MIT, Copyright (c) 2022 Sabarinathan (notice in weights/LICENSE-LightWeightModel)",
        },
        "training": {
            "data": "NTIRE 2020 spectral reconstruction challenge, clean track (ARAD_HS)",
            "windows": "64x64",
            "loss": "L2 + (1 - SSIM)",
        },
        "metrics": {
            "authors_reported_mrae": {"train_400": 0.02372, "valid_50": 0.04497, "test_a": 0.05478, "test_b": 0.04577},
            "authors_reported_ssim": {"train_400": 0.9899, "valid_50": 0.9827},
        },
    },
}


def convert_keras_file(
    source: str | Path,
    destination: str | Path,
    *,
    input_space: str | None = None,
    window_size: int | None = None,
) -> Path:
    """Convert a Keras HDF5 LWRDAN to an hsrecon safetensors file, deterministically (same bytes each run).

    Provenance comes from :data:`KNOWN_SOURCES` when the source's SHA-256 is known; otherwise the file
    name and digest are recorded and ``input_space`` / ``window_size`` default to the NTIRE 2020 clean
    rendering and 64.
    """
    from hsrecon.weights import make_meta, save_weights, sha256_of

    source = Path(source)
    config, state, facts = read_keras_state_dict(source)
    digest = sha256_of(source)
    known = KNOWN_SOURCES.get(digest, {})
    provenance = dict(known.get("provenance", {"file": source.name}))
    provenance.update(
        sha256=digest,
        keras_version=facts["keras_version"],
        converter=f"hsrecon import-keras ({facts['layers_mapped']} layers)",
    )
    model = LWRDAN(config)
    model.load_state_dict(state, strict=True)
    meta = make_meta(
        model,
        window_size=window_size or known.get("window_size", 64),
        input_space=input_space or known.get("input_space", "ntire2020-clean"),
        weights_version=known.get("weights_version", f"keras-import-{digest[:12]}"),
        provenance=provenance,
        training=known.get("training", {}),
        metrics=known.get("metrics", {}),
    )
    return save_weights(destination, state, meta)
