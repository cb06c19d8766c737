"""hsrecon: RGB photos → 31-band hyperspectral cubes (400–700 nm) with a small neural network.

The library is the product; the ``hsrecon`` command is one user of it. Heavy modules (torch) load on
first use, so ``import hsrecon`` and ``hsrecon --version`` stay instant::

    from hsrecon import load_model
    model = load_model()            # the bundled NTIRE 2020 clean-track weights, eval mode
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "LWRDAN": "hsrecon.model",
    "LWRDANConfig": "hsrecon.model",
    "build_model": "hsrecon.model",
    "count_parameters": "hsrecon.model",
    "flops_per_pixel": "hsrecon.model",
    "fold_batchnorm": "hsrecon.model",
    "WeightsError": "hsrecon.weights",
    "WeightsMeta": "hsrecon.weights",
    "Weights": "hsrecon.weights",
    "DEFAULT_WEIGHTS": "hsrecon.weights",
    "WAVELENGTHS_NM": "hsrecon.weights",
    "load_weights": "hsrecon.weights",
    "load_model": "hsrecon.weights",
    "save_weights": "hsrecon.weights",
    "KerasImportError": "hsrecon.keras_import",
    "convert_keras_file": "hsrecon.keras_import",
    "import_keras_model": "hsrecon.keras_import",
    "pick_device": "hsrecon.devices",
    "reconstruct": "hsrecon.pipeline",
    "convert_file": "hsrecon.pipeline",
    "TorchPredictor": "hsrecon.inference",
    "read_rgb": "hsrecon.io.rgb",
    "read_cube": "hsrecon.io",
    "open_cube_writer": "hsrecon.io",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> object:
    """Import the module that defines ``name`` on first access (PEP 562)."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'hsrecon' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value
