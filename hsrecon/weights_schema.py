"""What a weights file may say about itself: the safetensors header's shape and the metadata's schema.

A weights file comes from anywhere, so everything in it is checked before anything is built from it:

- :func:`check_safetensors_header`: the JSON header is an object whose tensor entries each have a known
  ``dtype``, a ``shape`` of non-negative integers and ``data_offsets`` that hold exactly that many bytes,
  all inside the file; ``__metadata__`` maps strings to strings.
- :func:`check_meta_fields`: every metadata field has its type and lies in its range (:data:`LIMITS`),
  before any :class:`~hsrecon.model.LWRDANConfig` exists.
- :func:`check_parameter_budget`: the network the config describes has at most
  :data:`MAX_PARAMETERS` values, counted on PyTorch's ``meta`` device, where modules hold shapes but no
  memory. A config asking for terabytes is refused in milliseconds instead of being allocated.

Each check raises ``ValueError`` with one line naming the field (``config.widths[1]: …``); the loader
(:mod:`hsrecon.weights`) adds the file's name.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from itertools import pairwise

from hsrecon.inputs import canonical_space

__all__ = [
    "LIMITS",
    "MAX_PARAMETERS",
    "MAX_WINDOW",
    "SAFETENSORS_ITEMSIZE",
    "check_config",
    "check_meta_fields",
    "check_parameter_budget",
    "check_pixel_map_fields",
    "check_routing",
    "check_safetensors_header",
]

MAX_WINDOW = 1024
"""The largest window a network is run on: 16× the training window, ~1 GB of activations per window."""

MAX_PARAMETERS = 50_000_000
"""The largest network a weights file may describe: 200 MB of float32, 215× the published LWRDAN."""

SAFETENSORS_ITEMSIZE: dict[str, int] = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1,
    "U16": 2, "I16": 2, "F16": 2, "BF16": 2,
    "U32": 4, "I32": 4, "F32": 4,
    "U64": 8, "I64": 8, "F64": 8,
}  # fmt: skip

# Ranges of the model config: generous around the published network (widths 8/16/32, 2 blocks per stage),
# tight enough that even the largest config is counted on the meta device in well under a second.
LIMITS: dict[str, tuple[int, int]] = {
    "in_channels": (3, 3),  # the pipeline feeds RGB
    "out_bands": (1, 1024),
    "widths": (1, 512),
    "blocks": (0, 8),
    "dense_width": (1, 512),
    "reduction": (1, 512),
    "spatial_kernel": (1, 15),
    "head_kernel": (1, 15),
    "prior_degree": (0, 3),
    "window_size": (4, MAX_WINDOW),
    "format_version": (1, 1_000),
}
_ODD = ("spatial_kernel", "head_kernel")  # "same" padding of k // 2 keeps the size only for odd k
_TUPLE_LENGTHS = {"widths": 3, "blocks": 5}


def _describe(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _int_in(name: str, value: object, low: int, high: int, *, odd: bool = False) -> int:
    kind = "an odd integer" if odd else "an integer"
    if not _is_int(value) or not low <= value <= high or (odd and value % 2 == 0):
        raise ValueError(f"{name}: expected {kind} from {low} to {high}, found {_describe(value)}")
    return value


def _number_in(name: str, value: object, low: float, high: float, *, open_low: bool = False) -> float:
    fits = _is_number(value) and (low < value if open_low else low <= value) and value <= high
    if not fits:
        interval = f"{'(' if open_low else '['}{low:g}, {high:g}]"
        raise ValueError(f"{name}: expected a number in {interval}, found {_describe(value)}")
    return float(value)


def check_config(config: object) -> None:
    """Types and ranges of a model config (a dict, as stored in metadata); ValueError naming the field."""
    if not isinstance(config, Mapping):
        raise ValueError(f"config: expected an object, found {_describe(config)}")
    for key, value in config.items():
        name = f"config.{key}"
        if key in _TUPLE_LENGTHS:
            if not isinstance(value, list | tuple) or len(value) != _TUPLE_LENGTHS[key]:
                raise ValueError(f"{name}: expected a list of {_TUPLE_LENGTHS[key]} integers, found {_describe(value)}")
            for index, item in enumerate(value):
                _int_in(f"{name}[{index}]", item, *LIMITS[key])
        elif key in LIMITS:
            _int_in(name, value, *LIMITS[key], odd=key in _ODD)
        elif key == "dropout":
            _number_in(name, value, 0.0, 0.99)
        elif key == "bn_eps":
            _number_in(name, value, 0.0, 1.0, open_low=True)
        elif key == "bn_momentum":
            _number_in(name, value, 0.0, 1.0)
        elif key in ("coord_conv", "attention") and not isinstance(value, bool):
            raise ValueError(f"{name}: expected true or false, found {_describe(value)}")
        # unknown keys are refused by LWRDANConfig.from_dict, naming them


def _check_wavelengths(value: object) -> None:
    if not isinstance(value, list | tuple) or not 1 <= len(value) <= LIMITS["out_bands"][1]:
        raise ValueError(f"wavelengths_nm: expected a list of 1 to 1024 numbers, found {_describe(value)}")
    for index, item in enumerate(value):
        _number_in(f"wavelengths_nm[{index}]", item, 1.0, 100_000.0)
    if any(b <= a for a, b in pairwise(value)):
        raise ValueError("wavelengths_nm: expected strictly increasing values")


def check_meta_fields(data: object) -> None:
    """Types and ranges of the ``hsrecon`` metadata object, before any dataclass or module is made."""
    if not isinstance(data, Mapping):
        raise ValueError(f"expected a JSON object, found {_describe(data)}")
    for key in ("config", "window_size", "input_space", "weights_version"):
        if key not in data:
            raise ValueError(f"missing key {key!r}")
    check_config(data["config"])
    _int_in("window_size", data["window_size"], *LIMITS["window_size"])
    if data["window_size"] % 4:
        raise ValueError(f"window_size: expected a multiple of 4, found {data['window_size']}")
    _check_common_fields(data)
    for key in ("num_params", "trainable_params"):
        if key in data:
            _int_in(key, data[key], 0, MAX_PARAMETERS)
    if data.get("routing"):  # a network whose per-pixel prior is chosen per image (hsrecon.lightroute)
        if not data["config"].get("prior_degree"):
            raise ValueError("routing: only a network with a per-pixel prior (config.prior_degree) can be routed")
        check_routing(data["routing"])


def _check_common_fields(data: Mapping) -> None:
    """The fields every kind of weights file shares: strings, wavelengths, format version, the free-form
    objects."""
    for key in ("input_space", "weights_version", "format"):
        if key in data and (not isinstance(data[key], str) or not 0 < len(data[key]) <= 200):
            raise ValueError(f"{key}: expected a string of 1 to 200 characters, found {_describe(data[key])}")
    try:
        canonical_space(data["input_space"])
    except ValueError as error:
        raise ValueError(f"input_space: {error}") from None
    if "wavelengths_nm" in data:
        _check_wavelengths(data["wavelengths_nm"])
    if "format_version" in data:
        _int_in("format_version", data["format_version"], *LIMITS["format_version"])
    for key in ("provenance", "training", "metrics"):
        if key in data and not isinstance(data[key], Mapping):
            raise ValueError(f"{key}: expected an object, found {_describe(data[key])}")


PIXEL_MAP_KIND = "root-polynomial"
PIXEL_MAP_DEGREES = (1, 2, 3)
MAX_RIDGE = 1e6


def check_pixel_map_fields(data: object) -> None:
    """Types and ranges of a per-pixel root-polynomial map's metadata (``kind`` ``root-polynomial``):
    ``degree`` 1–3, ``input_space`` ``ntire2020-clean`` (the map acts on clean-space values; photos reach
    it through the input transform), ``ridge`` a number ≥ 0, ``weights_version`` and ``wavelengths_nm``
    as for any weights; no key of a network's (``config``, ``window_size``)."""
    if not isinstance(data, Mapping):
        raise ValueError(f"expected a JSON object, found {_describe(data)}")
    if data.get("kind") != PIXEL_MAP_KIND:
        raise ValueError(f"kind: expected {PIXEL_MAP_KIND!r}, found {_describe(data.get('kind'))}")
    for key in ("degree", "input_space", "weights_version", "wavelengths_nm", "ridge"):
        if key not in data:
            raise ValueError(f"missing key {key!r}")
    _int_in("degree", data["degree"], PIXEL_MAP_DEGREES[0], PIXEL_MAP_DEGREES[-1])
    _number_in("ridge", data["ridge"], 0.0, MAX_RIDGE)
    _check_common_fields(data)
    if canonical_space(data["input_space"]) != "ntire2020-clean":
        raise ValueError(
            f"input_space: a root-polynomial map takes ntire2020-clean values, found {data['input_space']!r}"
        )
    if data.get("routing"):
        check_routing(data["routing"])


ROUTING_KEYS = ("routes", "features", "mean", "scale", "coef", "intercept")
MAX_ROUTES = 8
MAX_ROUTING_FEATURES = 64


def check_routing(routing: object) -> tuple[int, int]:
    """A routed map's ``routing`` (:mod:`hsrecon.lightroute`): 2–8 distinct route names, feature names, and
    the logistic regression's finite numbers in matching shapes, ``scale`` positive. Returns (routes,
    features); ValueError naming the field."""
    if not isinstance(routing, Mapping) or set(routing) != set(ROUTING_KEYS):
        raise ValueError(f"routing: expected an object with keys {', '.join(ROUTING_KEYS)}")
    routes, features = routing["routes"], routing["features"]
    for name, names, high in (("routes", routes, MAX_ROUTES), ("features", features, MAX_ROUTING_FEATURES)):
        valid = isinstance(names, list) and 2 <= len(names) <= high and len(set(map(str, names))) == len(names)
        if not valid or not all(isinstance(item, str) and 0 < len(item) <= 64 for item in names):
            raise ValueError(f"routing.{name}: expected 2 to {high} distinct names, found {_describe(names)}")
    for key, length in (("mean", len(features)), ("scale", len(features)), ("intercept", len(routes))):
        _numbers(f"routing.{key}", routing[key], length, positive=key == "scale")
    if not isinstance(routing["coef"], list) or len(routing["coef"]) != len(routes):
        raise ValueError(f"routing.coef: expected {len(routes)} rows, one per route")
    for row in routing["coef"]:
        _numbers("routing.coef", row, len(features))
    return len(routes), len(features)


MAX_ROUTING_VALUE = 1e6
"""The largest magnitude a router's number may have: a fitted one is within ±100; beyond this, exp() of a
logit could overflow and turn an image's matrix into NaN."""


def _numbers(name: str, values: object, length: int, *, positive: bool = False) -> None:
    valid = isinstance(values, list) and len(values) == length
    valid = valid and all(_is_number(value) and abs(value) <= MAX_ROUTING_VALUE for value in values)  # type: ignore[union-attr]
    if not valid or (positive and not all(value >= 1e-9 for value in values)):  # type: ignore[union-attr]
        kind = "positive numbers" if positive else "numbers"
        raise ValueError(
            f"{name}: expected {length} {kind} of magnitude at most {MAX_ROUTING_VALUE:g}, found {_describe(values)}"
        )


def check_parameter_budget(config: object) -> int:
    """The number of values of the network ``config`` describes; ValueError above :data:`MAX_PARAMETERS`.

    Counted on the ``meta`` device: the modules get shapes but no storage, so nothing is allocated.
    """
    import torch

    from hsrecon.model import LWRDAN, count_parameters

    with torch.device("meta"):
        count = count_parameters(LWRDAN(config))  # type: ignore[arg-type]
    if count > MAX_PARAMETERS:
        raise ValueError(f"config describes a network of {count:,} values, over the limit of {MAX_PARAMETERS:,}")
    return count


def _check_entry(name: str, entry: object) -> tuple[int, int]:
    """One tensor entry of the header; returns its (begin, end) byte offsets in the data section."""
    if not isinstance(entry, Mapping):
        raise ValueError(f"tensor {name!r}: expected an object, found {_describe(entry)}")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if dtype not in SAFETENSORS_ITEMSIZE:
        raise ValueError(f"tensor {name!r}: unknown dtype {_describe(dtype)}")
    if not isinstance(shape, list) or len(shape) > 8 or not all(_is_int(n) and n >= 0 for n in shape):
        raise ValueError(f"tensor {name!r}: shape must be a list of non-negative integers, found {_describe(shape)}")
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(_is_int(n) and n >= 0 for n in offsets):
        raise ValueError(f"tensor {name!r}: data_offsets must be two non-negative integers, found {_describe(offsets)}")
    begin, end = offsets
    expected = math.prod(shape) * SAFETENSORS_ITEMSIZE[dtype]
    if end - begin != expected:
        raise ValueError(f"tensor {name!r}: data_offsets hold {end - begin} bytes, its shape needs {expected}")
    return begin, end


def check_safetensors_header(header: object) -> int:
    """The structure of a parsed safetensors header; returns the size its tensors' data needs."""
    if not isinstance(header, Mapping):
        raise ValueError(f"header is not a JSON object but {type(header).__name__}")
    metadata = header.get("__metadata__", {})
    if metadata is not None and (
        not isinstance(metadata, Mapping) or not all(isinstance(v, str) for v in metadata.values())
    ):
        raise ValueError("__metadata__ must map names to strings")
    spans = sorted(_check_entry(name, entry) for name, entry in header.items() if name != "__metadata__")
    for (_, end), (begin, _) in pairwise(spans):
        if begin < end:
            raise ValueError("tensors' data_offsets overlap")
    return max((end for _, end in spans), default=0)
