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

import numpy as np

from hsrecon import __version__
from hsrecon.data import Pair, Scan, scan, track_space
from hsrecon.data.spectra import LIGHT_FAMILIES
from hsrecon.evaluate import BASELINE_SAMPLES, fit_root_polynomial_baseline
from hsrecon.groups import GroupingError, main_lights
from hsrecon.inputs import make_input_transform, network_space
from hsrecon.io.rgb import read_rgb
from hsrecon.lightroute import fit_router, image_sample, light_features
from hsrecon.physics import WAVELENGTHS_NM
from hsrecon.pixelmap import term_names
from hsrecon.pixelweights import PixelMapWeights

__all__ = [
    "AUTO_LIGHT",
    "LIGHT_CHOICES",
    "MODELS",
    "ROUTED_LIGHTS",
    "fit_pixel_map",
    "fit_routed_map",
    "model_degree",
    "pairs_lit_by",
]

MODELS = {"rpr2": 2, "rpr3": 3}
"""``hsrecon train --model`` names of per-pixel maps and their degree."""
METHOD = "root-polynomial regression (Finlayson, Mackiewicz & Hurlbert 2015), colour-science's terms"
AUTO_LIGHT = "auto"
"""``--light auto``: a routed map (:func:`fit_routed_map`) instead of a map for one kind of light."""
LIGHT_CHOICES = (*LIGHT_FAMILIES, AUTO_LIGHT)
"""What ``hsrecon train --light`` takes."""
ROUTED_LIGHTS = ("daylight", "incandescent")
"""The kinds of light ``--light auto`` routes between: those an image shows. A fluorescent tube or an LED gives
nearly the image a smooth light of its colour gives (``tools/light_twins``), so their maps, wrong on a
daylight scene by far more than one map is, are left out (``docs/training.md`` has the three-way router that
sends such scenes to the map for every light, measured and not kept: it loses the warm scenes' gain)."""


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


def _fit_space(track: str) -> str:
    """The values a map is fitted on for ``track``: clean space (photos decoded), as the baselines see them."""
    return network_space("ntire2020-clean", track_space(track))[0]


def _training_pairs(data: Path, track: str) -> Scan:
    """``data``'s training split for ``track``; ValueError (one line) when it has no complete pair."""
    found = scan(data, "train", track)
    if not found.pairs:
        raise ValueError(f"{data}: no complete training pairs for the {track} track ({len(found.unpaired)} unpaired)")
    return found


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
    found = _training_pairs(data, track)
    if light is not None:
        found.pairs = pairs_lit_by(data, found.pairs, light)
    space = _fit_space(track)
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


def fit_routed_map(
    data: Path,
    degree: int,
    *,
    track: str = "clean",
    samples: int = BASELINE_SAMPLES,
    version: str | None = None,
    on_start: Callable[[int], None] | None = None,
    on_image: Callable[[Pair], None] | None = None,
    on_skip: Callable[[str], None] | None = None,
) -> PixelMapWeights:
    """A routed map (``hsrecon train --model rpr2 --light auto``): one map per kind of :data:`ROUTED_LIGHTS`,
    each fitted as :func:`fit_pixel_map` fits it on that kind's training scenes, a
    :class:`~hsrecon.lightroute.LightRouter` fitted on those scenes' colours to tell the kinds apart, and the
    map for every light as the ``matrix`` that runs where no image is read (``PixelMapWeights.build``). ``on_start``
    hears the number of images read in all. ValueError (one line) as :func:`fit_pixel_map`, and for a set
    without training scenes of every routed kind."""
    data = Path(data)
    found = _training_pairs(data, track)
    lit = [pairs_lit_by(data, found.pairs, light) for light in ROUTED_LIGHTS]
    if on_start is not None:
        on_start(len(found.pairs) + 2 * sum(len(pairs) for pairs in lit))
    fit = {"track": track, "samples": samples, "on_image": on_image, "on_skip": on_skip}
    general = fit_pixel_map(data, degree, **fit)  # type: ignore[arg-type]
    by_light = [fit_pixel_map(data, degree, light=light, **fit) for light in ROUTED_LIGHTS]  # type: ignore[arg-type]
    features, labels = _router_samples(lit, _fit_space(track), on_image)
    router = fit_router(features, labels, ROUTED_LIGHTS)
    right = [int(router.posterior(row).argmax()) == label for row, label in zip(features, labels, strict=True)]
    training = {
        **general.meta.training,
        "light": AUTO_LIGHT,
        "routes": {light: _route_facts(weights) for light, weights in zip(ROUTED_LIGHTS, by_light, strict=True)},
        "router_images": len(labels),
        "router_training_accuracy": round(float(np.mean(right)), 4),
    }
    return PixelMapWeights.from_matrix(
        general.matrix, degree, routes=np.stack([weights.matrix.numpy() for weights in by_light]),
        weights_version=version or f"rpr{degree}-auto", ridge=general.meta.ridge,
        provenance=general.meta.provenance, training=training, routing=router.to_json(),
    )  # fmt: skip


def _router_samples(
    groups: list[list[Pair]], space: str, on_image: Callable[[Pair], None] | None
) -> tuple[np.ndarray, list[int]]:
    """Each pair's :func:`~hsrecon.lightroute.light_features` in ``space``, labelled with its group's index."""
    features, labels = [], []
    for index, pairs in enumerate(groups):
        for pair in pairs:
            image = read_rgb(pair.rgb)
            features.append(light_features(image_sample(image.pixels, make_input_transform(image, space))))
            labels.append(index)
            if on_image is not None:
                on_image(pair)
    return np.array(features), labels


def _route_facts(weights: PixelMapWeights) -> dict:
    facts = weights.meta.training
    return {"ridge": weights.meta.ridge, "fit_images": facts["fit_images"], "valid_mrae": facts["valid_mrae"]}
