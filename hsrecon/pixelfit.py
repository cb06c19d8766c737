"""Fitting a per-pixel root-polynomial map on a dataset, into weights that ship (``hsrecon train --model rpr2``).

The fit is the ``eval --baseline rpr2`` fit, the same function
(:func:`hsrecon.evaluate.fit_root_polynomial_baseline`): a regular grid of about 2¹⁸ pixels from the
training split's images (:func:`hsrecon.evaluate.training_samples`), in clean space (photos decoded, as the
``linear-decoded`` baseline sees them), every 5th image set aside to choose the ridge by MRAE, then the
matrix refitted on every sample with it (:func:`hsrecon.pixelmap.fit_with_validation`). The result is a
:class:`~hsrecon.pixelweights.PixelMapWeights` whose metadata records the data, the track, the ridge and
the validation score of every ridge tried. Closed form: seconds for a few hundred small images, and the
same data always gives the same bytes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

from hsrecon import __version__
from hsrecon.data import Pair, scan, track_space
from hsrecon.data.spectra import LIGHT_FAMILIES
from hsrecon.evaluate import BASELINE_SAMPLES, fit_root_polynomial_baseline
from hsrecon.groups import GroupingError, main_lights
from hsrecon.inputs import network_space
from hsrecon.physics import WAVELENGTHS_NM
from hsrecon.pixelmap import term_names
from hsrecon.pixelweights import PixelMapWeights

__all__ = ["MODELS", "fit_pixel_map", "model_degree", "pairs_lit_by"]

MODELS = {"rpr2": 2, "rpr3": 3}
"""``hsrecon train --model`` names of per-pixel maps and their degree."""
METHOD = "root-polynomial regression (Finlayson, Mackiewicz & Hurlbert 2015), colour-science's terms"


def model_degree(name: str) -> int:
    """The degree of the per-pixel model ``name`` (``rpr2`` → 2); ValueError listing the names."""
    if name not in MODELS:
        raise ValueError(f"per-pixel model {name!r}: choose from {', '.join(MODELS)}")
    return MODELS[name]


def pairs_lit_by(data: Path, pairs: list[Pair], light: str) -> list[Pair]:
    """The pairs whose scene's main light is of kind ``light``; ValueError (one line) for an unknown kind, a
    dataset that does not record its lights, or none of that kind (with the kinds it has)."""
    if light not in LIGHT_FAMILIES:
        raise ValueError(f"unknown kind of light {light!r}: choose from {', '.join(LIGHT_FAMILIES)}")
    try:
        kinds = main_lights(data)
    except GroupingError as error:
        raise ValueError(str(error)) from None
    if not kinds:
        raise ValueError(f"{data}: fitting for one light needs each scene's light (hsrecon synth's synth.json)")
    chosen = [pair for pair in pairs if kinds.get(pair.name) == light]
    if not chosen:
        found = Counter(kinds.get(pair.name, "unrecorded") for pair in pairs)
        have = ", ".join(f"{kind} {count}" for kind, count in sorted(found.items()))
        raise ValueError(f"{data}: no training scene lit by {light} light (it has: {have})")
    return chosen


def fit_pixel_map(
    data: Path,
    degree: int,
    *,
    track: str = "clean",
    samples: int = BASELINE_SAMPLES,
    light: str | None = None,
    version: str | None = None,
    on_start: Callable[[int], None] | None = None,
    on_image: Callable[[Pair], None] | None = None,
    on_skip: Callable[[str], None] | None = None,
) -> PixelMapWeights:
    """A degree-``degree`` map fitted on ``data``'s training split for ``track``, as weights in memory.

    ``on_start(images)`` hears how many training pairs there are, ``on_image`` each one read, ``on_skip``
    one line per pair left out. ``light`` (a kind of :data:`~hsrecon.data.spectra.LIGHT_FAMILIES`) fits on
    the scenes whose main light is of that kind only, as ``synth.json`` records it: what a map gains when the
    light is known (``docs/training.md``, "How much the light is worth"). ValueError (one line) for a folder of
    neither layout, no training pairs (of that light), no usable pair, or cubes of other than 31 bands.
    """
    data = Path(data)
    found = scan(data, "train", track)
    if not found.pairs:
        raise ValueError(f"{data}: no complete training pairs for the {track} track ({len(found.unpaired)} unpaired)")
    if light is not None:
        found.pairs = pairs_lit_by(data, found.pairs, light)
    space = network_space("ntire2020-clean", track_space(track))[0]
    if on_start is not None:
        on_start(len(found.pairs))
    try:
        fitted = fit_root_polynomial_baseline(
            found.pairs, degree=degree, input_space=space, samples=samples, on_image=on_image
        )
    except ValueError as error:
        raise ValueError(f"{data}: {error}") from None
    skipped, fit = fitted.skipped, fitted.fit
    for line in skipped:
        if on_skip is not None:
            on_skip(line)
    if fit.matrix.shape[1] != len(WAVELENGTHS_NM):
        raise ValueError(f"{data}: cubes of {fit.matrix.shape[1]} bands; a map is fitted for 31 (400–700 nm)")
    training = {
        "data": str(data),
        "layout": found.layout,
        "split": "train",
        "track": track,
        "file_space": track_space(track),
        "fit_space": space,
        "terms": ", ".join(term_names(degree)),
        "skipped": len(skipped),
        **({"light": light} if light is not None else {}),
        **fit.facts(),
        "valid_mrae": fit.scores[fit.ridge],
    }
    provenance = {"trainer": f"hsrecon {__version__}", "method": METHOD, "data": str(data)}
    return PixelMapWeights.from_matrix(
        fit.matrix, degree, weights_version=version or f"rpr{degree}-fitted", ridge=fit.ridge,
        provenance=provenance, training=training,
    )  # fmt: skip
