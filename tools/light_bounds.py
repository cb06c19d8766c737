"""How much knowing the light is worth, and how much of it an image gives away (issue 24).

Why: on recipe 3, one root-polynomial map per kind of light (daylight, incandescent, fluorescent, LED), applied
with the scene's true kind, halves MRAE and cuts SAM by a third against one map for every light. A per-pixel
method cannot know the light; a model that sees the whole image might. This measures the bound and two honest
routes to it, all fitted on the training split only:

- ``one map``: rpr2 fitted on every training scene (what ``hsrecon eval --baseline rpr2`` scores);
- ``true kind``: the map of the scene's own kind of light, read from ``synth.json`` (the bound);
- ``features, hard/soft``: the kind predicted by a small MLP on whole-image log-chroma statistics (grey world,
  bright pixels, percentiles, a luminance-weighted log-chroma histogram), applied as the one most likely map
  (hard) or as the posterior-weighted mean of the four maps' spectra (soft);
- ``CNN, hard/soft``: the same from a small convolutional network over the whole log image (four stride-2
  convolutions, mean and max pooled), trained with random crops and flips;
- ``pixels, hard/soft``: the same from evidence pooled over every pixel: an MLP gives each pixel's kind from its
  log-chroma and relative brightness alone (so no layout can be learned), and the image's posterior is the
  prior plus a tempered sum of the pixels' log-likelihoods, the temperature chosen on a fifth of the training
  scenes the MLP did not see;
- ``NAME, sure ≥ τ``: a reject option: the most likely kind's map where the estimator's posterior reaches τ,
  one map elsewhere (a wrong lamp's map costs far more than one map does);
- ``wrong kind``: the mean score of the three other kinds' maps, so that ``a × true kind + (1 − a) × wrong kind``
  is what an estimator right on a share ``a`` of scenes can expect, and ``a × true kind + (1 − a) × one map``
  what one that knows when it is unsure can.

Every map is fitted as ``hsrecon train --model rpr2`` fits one (:func:`hsrecon.pixelmap.fit_with_validation`,
on a 4-px grid of each training scene), in the clean input space. Scores are hsrecon's MRAE and SAM, means over
the validation scenes of each set; ``accuracy`` is the share of scenes whose kind the estimator gets right.
Run from the repository root (about 12 minutes on 2 CPU cores; the sets as in ``docs/training.md``)::

    python -m tools.light_bounds v3train dev_fam dev_gen r1dev

and paste the printed markdown.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from hsrecon.data import discover
from hsrecon.data.spectra import LIGHT_FAMILIES
from hsrecon.groups import main_lights
from hsrecon.inputs import make_input_transform
from hsrecon.io import read_cube
from hsrecon.io.rgb import read_rgb
from hsrecon.metrics import mrae, sam
from hsrecon.pixelmap import apply_map, fit_with_validation

SPACE = "ntire2020-clean"
Posterior = Callable[[np.ndarray], np.ndarray]  # n×h×w×3 images → n×kinds probabilities


@dataclass
class Scenes:
    """The clean input (n×h×w×3), the truth (n×h×w×B) and the kind of main light of each scene of a split."""

    rgb: np.ndarray
    cube: np.ndarray
    kind: np.ndarray


def load_scenes(root: Path, split: str) -> Scenes:
    """Every scene of ``root``'s ``split``, with its light kind from synth.json (same-size scenes only)."""
    lights = main_lights(root)
    rgbs, cubes, kinds = [], [], []
    for pair in discover(root, split, "clean"):
        image = read_rgb(pair.rgb)
        cube, _, _ = read_cube(pair.cube, image_shape=image.pixels.shape[:2])
        rgbs.append(np.asarray(make_input_transform(image, SPACE)(image.pixels), dtype=np.float32))
        cubes.append(np.asarray(cube, dtype=np.float32))
        kinds.append(LIGHT_FAMILIES.index(lights[pair.name]))
    return Scenes(np.stack(rgbs), np.stack(cubes), np.array(kinds))


def fit_map(scenes: Scenes, step: int = 4) -> np.ndarray:
    """The rpr2 matrix fitted on a ``step``-px grid of every scene."""
    inputs = [rgb[::step, ::step].reshape(-1, 3).astype(np.float64) for rgb in scenes.rgb]
    targets = [cube[::step, ::step].reshape(-1, cube.shape[-1]).astype(np.float64) for cube in scenes.cube]
    return fit_with_validation(inputs, targets, degree=2).matrix


def subset(scenes: Scenes, mask: np.ndarray) -> Scenes:
    return Scenes(scenes.rgb[mask], scenes.cube[mask], scenes.kind[mask])


def chroma_features(images: np.ndarray) -> np.ndarray:
    """Per image: log-chroma of the mean of all, the brightest 10% and 2% of pixels, their 10/50/90th
    percentiles, of the per-channel maximum, and a 12×12 luminance-weighted log-chroma histogram."""
    rows = []
    for image in images:
        pixels = image.reshape(-1, 3).astype(np.float64) + 1e-4
        luminance = pixels.sum(1)
        u, v = np.log(pixels[:, 0] / pixels[:, 1]), np.log(pixels[:, 2] / pixels[:, 1])
        row: list[float] = []
        for share in (1.0, 0.1, 0.02):
            bright = luminance >= np.quantile(luminance, 1 - share)
            mean = pixels[bright].mean(0)
            row += [np.log(mean[0] / mean[1]), np.log(mean[2] / mean[1])]
            row += [*np.quantile(u[bright], [0.1, 0.5, 0.9]), *np.quantile(v[bright], [0.1, 0.5, 0.9])]
        peak = pixels.max(0)
        row += [np.log(peak[0] / peak[1]), np.log(peak[2] / peak[1])]
        histogram, _, _ = np.histogram2d(u, v, bins=12, range=[[-2.5, 2.5], [-2.5, 2.5]], weights=luminance)
        rows.append(np.concatenate([row, np.sqrt(histogram / histogram.sum()).ravel()]))
    return np.array(rows)


def train_feature_classifier(train: Scenes, epochs: int = 600) -> Posterior:
    """An MLP (one hidden layer of 64) on :func:`chroma_features`, full-batch Adam with weight decay."""
    torch.manual_seed(0)
    features = chroma_features(train.rgb)
    mean, std = features.mean(0), features.std(0) + 1e-6
    net = nn.Sequential(nn.Linear(features.shape[1], 64), nn.ReLU(), nn.Linear(64, len(LIGHT_FAMILIES)))
    optimiser = torch.optim.Adam(net.parameters(), lr=3e-3, weight_decay=1e-3)
    inputs, labels = torch.tensor((features - mean) / std, dtype=torch.float32), torch.tensor(train.kind)
    for _ in range(epochs):
        optimiser.zero_grad()
        nn.functional.cross_entropy(net(inputs), labels).backward()
        optimiser.step()

    def posterior(images: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            scaled = torch.tensor((chroma_features(images) - mean) / std, dtype=torch.float32)
            return torch.softmax(net(scaled), 1).numpy()

    return posterior


class LightNet(nn.Module):
    """Four stride-2 3×3 convolutions, then mean and max pooled over the whole image: a light-kind classifier
    that sees every pixel of the scene."""

    def __init__(self, channels: int = 32) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        previous = 3
        for width in (channels, channels, 2 * channels, 2 * channels):
            layers += [nn.Conv2d(previous, width, 3, stride=2, padding=1), nn.ReLU()]
            previous = width
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(2 * previous, len(LIGHT_FAMILIES))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.body(images)
        return self.head(torch.cat([features.mean((2, 3)), features.amax((2, 3))], 1))


def log_images(images: np.ndarray) -> torch.Tensor:
    """n×3×h×w log input, each image divided by its maximum first (the kind of light does not depend on exposure)."""
    tensor = torch.tensor(images).permute(0, 3, 1, 2).float()
    return torch.log(tensor / tensor.flatten(1).amax(1).clamp_min(1e-6)[:, None, None, None] + 1e-3)


def train_cnn_classifier(train: Scenes, epochs: int = 40, crop: int = 96) -> Posterior:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    net = LightNet()
    optimiser = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-2)
    inputs, labels = log_images(train.rgb), torch.tensor(train.kind)
    for _ in range(epochs):
        order = torch.randperm(len(inputs))
        for start in range(0, len(inputs), 64):
            batch = order[start : start + 64]
            top, left = rng.integers(0, inputs.shape[2] - crop + 1, 2)
            images = inputs[batch, :, top : top + crop, left : left + crop]
            images = images.flip(3) if rng.random() < 0.5 else images
            optimiser.zero_grad()
            nn.functional.cross_entropy(net(images), labels[batch]).backward()
            optimiser.step()
    net.eval()

    def posterior(images: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return torch.softmax(net(log_images(images)), 1).numpy()

    return posterior


def pixel_features(image: np.ndarray) -> np.ndarray:
    """Per pixel: log(R/G), log(B/G) and log of its brightness over the image's 95th percentile (n×3, float32)."""
    pixels = image.reshape(-1, 3).astype(np.float64) + 1e-4
    brightness = pixels.sum(1)
    reference = np.quantile(brightness, 0.95)
    logs = [np.log(pixels[:, 0] / pixels[:, 1]), np.log(pixels[:, 2] / pixels[:, 1]), np.log(brightness / reference)]
    return np.stack(logs, 1).astype(np.float32)


def train_pixel_classifier(train: Scenes, per_image: int = 512, epochs: int = 6) -> Posterior:
    """A per-pixel kind classifier (MLP 3→128→128→kinds, classes weighted to balance) whose pixels' mean
    log-probabilities, tempered and added to the log prior, give each image's posterior."""
    torch.manual_seed(0)
    rng = np.random.default_rng(1)
    calibrate = np.zeros(len(train.kind), bool)
    calibrate[rng.permutation(len(train.kind))[: len(train.kind) // 5]] = True
    fit = subset(train, ~calibrate)
    samples = [pixel_features(image)[rng.choice(image.shape[0] * image.shape[1], per_image)] for image in fit.rgb]
    features, labels = np.concatenate(samples), np.repeat(fit.kind, per_image)
    mean, std = features.mean(0), features.std(0)
    kinds = len(LIGHT_FAMILIES)
    net = nn.Sequential(nn.Linear(3, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, kinds))
    counts = np.bincount(labels, minlength=kinds)
    balance = torch.tensor(len(labels) / (len(counts) * np.maximum(counts, 1)), dtype=torch.float32)
    optimiser = torch.optim.Adam(net.parameters(), lr=2e-3)
    inputs, targets = torch.tensor((features - mean) / std), torch.tensor(labels)
    for _ in range(epochs):
        order = torch.randperm(len(targets))
        for start in range(0, len(order), 4096):
            batch = order[start : start + 4096]
            optimiser.zero_grad()
            nn.functional.cross_entropy(net(inputs[batch]), targets[batch], weight=balance).backward()
            optimiser.step()
    net.eval()

    def evidence(images: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return np.array(
                [
                    torch.log_softmax(net(torch.tensor((pixel_features(image) - mean) / std)), 1).mean(0).numpy()
                    for image in images
                ]
            )

    log_prior = np.log(np.maximum(counts, 1) / counts.sum())

    def tempered(pooled: np.ndarray, temperature: float) -> np.ndarray:
        logits = log_prior + temperature * pooled
        weights = np.exp(logits - logits.max(1, keepdims=True))
        return weights / weights.sum(1, keepdims=True)

    held = subset(train, calibrate)
    pooled = evidence(held.rgb)

    def loss(temperature: float) -> float:
        return float(-np.log(tempered(pooled, temperature)[np.arange(len(held.kind)), held.kind] + 1e-12).mean())

    best = min((1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0), key=loss)
    return lambda images: tempered(evidence(images), best)


SURE = (0.7, 0.9)


def score_routes(scenes: Scenes, one_map: np.ndarray, kind_maps: list[np.ndarray], posteriors: dict) -> dict:
    """Mean (MRAE, SAM) per route over the scenes, and each estimator's accuracy."""
    scores: dict[str, list[tuple[float, float]]] = {}

    def add(route: str, prediction: np.ndarray, truth: np.ndarray) -> None:
        scores.setdefault(route, []).append((mrae(prediction, truth), sam(prediction, truth)))

    for index, kind in enumerate(scenes.kind):
        rgb, truth = scenes.rgb[index].astype(np.float64), scenes.cube[index].astype(np.float64)
        by_kind = [apply_map(rgb, matrix, 2) for matrix in kind_maps]
        one = apply_map(rgb, one_map, 2)
        add("one map", one, truth)
        add("true kind", by_kind[kind], truth)
        wrong = [(mrae(spectra, truth), sam(spectra, truth)) for k, spectra in enumerate(by_kind) if k != kind]
        scores.setdefault("wrong kind", []).append(tuple(np.mean(wrong, axis=0)))
        for name, probabilities in posteriors.items():
            add(f"{name}, hard", by_kind[int(probabilities[index].argmax())], truth)
            mixed = sum(p * spectra for p, spectra in zip(probabilities[index], by_kind, strict=True))
            add(f"{name}, soft", mixed, truth)
            for level in SURE:
                sure = probabilities[index].max() >= level
                add(f"{name}, sure ≥ {level}", by_kind[int(probabilities[index].argmax())] if sure else one, truth)
    result = {route: tuple(np.mean(values, axis=0)) for route, values in scores.items()}
    accuracy = {name: float((p.argmax(1) == scenes.kind).mean()) for name, p in posteriors.items()}
    return {"scores": result, "accuracy": accuracy}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("train", type=Path, help="a recipe-3 set; its training split is fitted on")
    parser.add_argument("sets", type=Path, nargs="+", help="sets scored on their validation split")
    args = parser.parse_args()
    train = load_scenes(args.train, "train")
    one_map = fit_map(train)
    kind_maps = [fit_map(subset(train, train.kind == kind)) for kind in range(len(LIGHT_FAMILIES))]
    estimators = {
        "features": train_feature_classifier(train),
        "CNN": train_cnn_classifier(train),
        "pixels": train_pixel_classifier(train),
    }
    results = {}
    for root in args.sets:
        scenes = load_scenes(root, "valid")
        results[root.name] = score_routes(scenes, one_map, kind_maps, {n: e(scenes.rgb) for n, e in estimators.items()})
    names = list(results)
    print("| route | " + " | ".join(f"{name} MRAE / SAM" for name in names) + " |")
    print("|---|" + "---:|" * len(names))
    for route in results[names[0]]["scores"]:
        cells = [f"{results[n]['scores'][route][0]:.3f} / {results[n]['scores'][route][1]:.1f}°" for n in names]
        print(f"| {route} | " + " | ".join(cells) + " |")
    for estimator in estimators:
        print(f"| {estimator}: kind right | " + " | ".join(f"{results[n]['accuracy'][estimator]:.0%}" for n in names))


if __name__ == "__main__":
    main()
