"""What every command shares: exit codes, the one-line error, the consoles, and the option types.

An option's type says what it accepts: a choice is an :class:`~enum.Enum` whose values are the library's
names (``tests/test_cli.py`` holds each to the library's own list), parsed so that anything else is the
documented one line, ``hsrecon: error: --flag 'value': choose from …``, and exit code 2, before any work.
Nothing here imports torch, so ``hsrecon --help`` answers at once.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from enum import Enum, IntEnum
from typing import TYPE_CHECKING, Annotated, Optional, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from hsrecon.interrupts import INTERRUPTS, exit_code_of
from hsrecon.printable import printable

if TYPE_CHECKING:
    import torch

    from hsrecon.weights import Weights
    from hsrecon.windows import Windowing

__all__ = [
    "INTERRUPTS",
    "Ablation",
    "Baseline",
    "BatchSizeOption",
    "CubeDtype",
    "CubeFormat",
    "DeviceOption",
    "ExitCode",
    "Interleave",
    "Model",
    "PadOption",
    "Precision",
    "Split",
    "StrideOption",
    "Track",
    "WeightsOption",
    "WindowOption",
    "device_or_exit",
    "exposure",
    "fail",
    "input_space",
    "interrupted",
    "one_of",
    "out_of_memory_line",
    "safe",
    "say",
    "stderr",
    "stdout",
    "weights_or_exit",
    "windowing_or_exit",
]

stdout = Console(soft_wrap=True)  # one message, one line: never folded to the terminal width
stderr = Console(stderr=True, soft_wrap=True)


class ExitCode(IntEnum):
    """Exit codes, documented in docs/cli.md."""

    OK = 0
    FAILED = 1  # some inputs failed; the others were processed
    USAGE = 2  # bad command line (Typer's own code)
    WEIGHTS = 3  # weights file missing, damaged, or of another model
    INPUT = 4  # unreadable or unsupported input
    OUTPUT = 5  # output cannot be written
    DEVICE = 6  # requested device unavailable
    INTERRUPTED = 130  # Ctrl-C (SIGINT); SIGHUP gives 129 and SIGTERM 143: 128 + the signal's number


_LABELS = {"error": "[bold red]hsrecon: error:[/]", "warning": "hsrecon: warning:", "note": "hsrecon: note:"}


def safe(text: object) -> str:
    """``text`` (a file name, or a message quoting one) ready for ``console.print``: control characters
    escaped so it stays the one line it is (:func:`hsrecon.printable.printable`), and rich's markup
    escaped so a name like ``[red]x[/].png`` prints as written instead of restyling, or breaking, the line."""
    return escape(printable(text))


def say(kind: str, message: object, console: Console | None = None) -> None:
    """One ``hsrecon: error:`` / ``warning:`` / ``note:`` line, its text made :func:`safe`."""
    (console or stderr).print(f"{_LABELS[kind]} {safe(message)}", highlight=False, soft_wrap=True)


def fail(message: str, code: ExitCode) -> typer.Exit:
    """Print ``hsrecon: error: message`` on stderr and return the Exit to raise."""
    say("error", message)
    return typer.Exit(code=int(code))


def interrupted(error: BaseException, consequence: str) -> typer.Exit:
    """The one line for a run stopped by Ctrl-C, SIGTERM or SIGHUP (:mod:`hsrecon.interrupts`), and its
    exit code, 128 + the signal's number (130 for Ctrl-C)."""
    code = exit_code_of(error)
    name = getattr(error, "signal_name", "SIGINT")
    say("error", f"interrupted ({name}): {consequence}")
    return typer.Exit(code=code)


# --- choices ------------------------------------------------------------------------------------------


class CubeFormat(str, Enum):
    """Cube file formats (``hsrecon.io.FORMATS``)."""

    ENVI = "envi"
    MAT = "mat"
    H5 = "h5"


class CubeDtype(str, Enum):
    """Cube value types (``hsrecon.io.base.DTYPES``; float16 for .h5 and .mat only)."""

    FLOAT32 = "float32"
    FLOAT16 = "float16"


class Interleave(str, Enum):
    """ENVI interleaves (``hsrecon.io.envi``)."""

    BSQ = "bsq"
    BIL = "bil"
    BIP = "bip"


class Precision(str, Enum):
    """Network precisions (``hsrecon.inference.PRECISIONS``)."""

    FP32 = "fp32"
    FP16 = "fp16"
    BF16 = "bf16"


class Split(str, Enum):
    """Dataset splits (``hsrecon.data.SPLITS``)."""

    VALID = "valid"
    TRAIN = "train"


class Pool(str, Enum):
    """Synthetic recipe 2's pools of cameras and lamps (``hsrecon.data.photo``, ``hsrecon.data.scenes``)."""

    TRAIN = "train"
    HELDOUT = "heldout"


class Grouping(str, Enum):
    """Ways ``eval --group-by`` pools scores by a dataset's labels (``hsrecon.groups.GROUPINGS``)."""

    FAMILY = "family"
    LIGHT = "light"
    FAMILY_LIGHT = "family-light"


class Prior(str, Enum):
    """Per-pixel priors a network can be trained over (``hsrecon.pixelmap``): root-polynomial maps by degree."""

    RPR2 = "rpr2"
    RPR3 = "rpr3"

    @property
    def degree(self) -> int:
        return int(self.value[-1])


class Light(str, Enum):
    """``train --light`` kinds of main light (``hsrecon.data.spectra.LIGHT_FAMILIES``), or ``auto``: a map per
    kind an image shows, chosen by the image's colours (``hsrecon.pixelfit.fit_routed_map``)."""

    DAYLIGHT = "daylight"
    INCANDESCENT = "incandescent"
    FLUORESCENT = "fluorescent"
    LED = "LED"
    AUTO = "auto"


class Track(str, Enum):
    """NTIRE 2020 RGB sets (``hsrecon.data.TRACKS``)."""

    CLEAN = "clean"
    REALWORLD = "realworld"


class Baseline(str, Enum):
    """``eval --baseline`` maps (``hsrecon.evaluate.BASELINES``)."""

    LINEAR = "linear"
    LINEAR_STORED = "linear-stored"
    LINEAR_DECODED = "linear-decoded"
    LINEAR_MRAE = "linear-mrae"
    OTSU2018 = "otsu2018"
    RPR2 = "rpr2"
    RPR3 = "rpr3"


class Model(str, Enum):
    """``train --model`` names: the network, or a per-pixel map (``hsrecon.pixelfit.MODELS``)."""

    LWRDAN = "lwrdan"
    RPR2 = "rpr2"
    RPR3 = "rpr3"


class Ablation(str, Enum):
    """``train --ablate`` names: the paper's ablations, each the model-config switch it turns off."""

    COORDCONV = "coordconv"
    CBAM = "cbam"

    @property
    def switch(self) -> str:
        return {"coordconv": "coord_conv", "cbam": "attention"}[self.value]


Choice = TypeVar("Choice", bound=Enum)


def one_of(kind: type[Choice], flag: str) -> Callable[[str], Choice]:
    """A Typer ``parser`` for an Enum option: its member, or the one-line usage error naming ``flag``."""
    choices = [member.value for member in kind]

    def parse(text: str | Choice) -> Choice:
        if isinstance(text, kind):
            return text
        if text in choices:
            return kind(text)
        raise fail(f"{flag} {text!r}: choose from {', '.join(choices)}", ExitCode.USAGE)

    return parse


def input_space(text: str) -> str:
    """``--input-space``: the canonical name of an input space (aliases and case accepted)."""
    from hsrecon.inputs import canonical_space

    try:
        return canonical_space(text)
    except ValueError as error:
        raise fail(f"--input-space: {error}", ExitCode.USAGE) from None


# --- weights and devices ------------------------------------------------------------------------------

WeightsOption = Annotated[
    Optional[str],
    typer.Option("--weights", "-w", help="Bundled weights name or a .safetensors path (default: ntire2020-clean)."),
]
DeviceOption = Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:N or mps.")]
_BATCH_HELP = (
    "Windows per forward pass (default: about 65,000 pixels, 16 of 64 px or 2 of 192; at most 2^20 pixels); "
    "lower it if memory runs out."
)
BatchSizeOption = Annotated[Optional[int], typer.Option(help=_BATCH_HELP)]
WindowOption = Annotated[
    Optional[int], typer.Option(help="Window size (default: the weights' own, measured: hsrecon info).")
]
StrideOption = Annotated[
    Optional[int],
    typer.Option(
        help="Step between windows (default: the weights' own, or half another window); = window: no overlap."
    ),
]
PadOption = Annotated[
    Optional[int],
    typer.Option(
        help="Pixels of reflection around the image, cropped off (default: the weights' own; convert with the "
        "default weights fits it per image, 8 to 16, to need the fewest windows)."
    ),
]


def weights_or_exit(spec: Optional[str]) -> Weights:
    """The weights ``--weights`` names (exit code 3, one line, when they cannot be used)."""
    from hsrecon.weights import WeightsError, load_weights

    try:
        return load_weights(spec)
    except WeightsError as error:
        raise fail(str(error), ExitCode.WEIGHTS) from None


PlausibleOption = Annotated[
    Optional[bool],
    typer.Option(
        "--plausible/--no-plausible",
        help="Project every spectrum onto those that render exactly to its pixel (docs/input-spaces.md). "
        "Default: on for weights taking clean-space input (their output's rendering is known), off otherwise; "
        "--no-plausible gives the network's raw output (the authors' published numbers).",
        show_default=False,
    ),
]


def plausible_or_exit(loaded: Weights, requested: Optional[bool], file_space: Optional[str] = None) -> bool:
    """Whether to project (``--plausible/--no-plausible``): as asked, else when the files are clean renderings
    fed to weights that take them and whose file gains from it (``projects_by_default``, measured per file:
    the authors' weights, MRAE −3 to −9% on held-out synthetic sets; photos gain consistency, not accuracy,
    so they stay raw by default). Asking for it where the rendering is unknown is one line and exit code 2."""
    from hsrecon.plausible import check_weights_space, rendering_is_known

    if requested is None:
        fed, _ = loaded.feed_space(file_space)
        return loaded.projects_by_default and rendering_is_known(loaded.input_space) and fed == "ntire2020-clean"
    if requested:
        try:
            check_weights_space(loaded.input_space, loaded.name)
        except ValueError as error:
            raise fail(str(error), ExitCode.USAGE) from None
    return requested


def device_or_exit(requested: str) -> torch.device:
    """The device ``--device`` names (exit code 6, one line, when this machine has none such)."""
    from hsrecon.devices import DeviceError, pick_device

    try:
        return pick_device(requested)
    except DeviceError as error:
        raise fail(str(error), ExitCode.DEVICE) from None


def windowing_or_exit(
    weights: Weights, window: int | None, stride: int | None, pad: int | None, batch_size: int | None
) -> tuple[Windowing, int]:
    """``--window``, ``--stride``, ``--pad`` and ``--batch-size`` checked against the weights, their
    measured defaults filled in: (windowing, windows per forward pass)."""
    try:
        windowing = weights.windowing(window, stride, pad)
    except ValueError as error:  # the library names the parameter first: "window 30: must be …"
        raise fail(f"--{error}", ExitCode.USAGE) from None
    if batch_size is not None and batch_size < 1:
        raise fail(f"--batch-size {batch_size}: must be at least 1", ExitCode.USAGE)
    from hsrecon.windows import MAX_BATCH_PIXELS

    most = max(1, MAX_BATCH_PIXELS // windowing.window**2)
    if batch_size is not None and batch_size > most:
        raise fail(
            f"--batch-size {batch_size}: at most {most} windows of {windowing.window} px (2^20 pixels per pass)",
            ExitCode.USAGE,
        )
    return windowing, batch_size or windowing.batch_size


def exposure(text: str | float | None) -> float | None:
    """``--exposure``: ``auto`` (None: chosen from each image) or a finite positive scale."""
    if text is None or text == "auto":
        return None
    if isinstance(text, float):
        return text
    try:
        value = float(text)
    except ValueError:
        raise fail(f"--exposure {text!r}: expected 'auto' or a positive number", ExitCode.USAGE) from None
    if not (value > 0 and math.isfinite(value)):
        raise fail(f"--exposure {text!r}: must be a positive finite number", ExitCode.USAGE)
    return value


def out_of_memory_line(error: Exception, batch_size: int) -> str:
    """The one-line error for a device out of memory at one window per pass (convert and eval alike)."""
    # The window itself does not fit (or the device is shared): say what the user can change.
    hint = "free memory on the device, use a smaller --window, or --device cpu"
    return f"{error} (--batch-size {batch_size} was halved down to 1); {hint}"
