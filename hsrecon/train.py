"""Training: the paper's recipe as defaults, resumable bit for bit, on one device or many (torchrun).

Recipe (section 3 of the paper; ``docs/training.md``): random 64×64 windows (with flips/rotations), batch 8,
loss ``L2 + (1 − SSIM)`` (SSIM per band, Gaussian window 11, σ 1.5, differentiable), optional MRAE term,
Adam with the learning rate decaying exponentially from 1e-3 to 1e-5 over the run.

Reproducibility: the training data is a pure function of (seed, sample number) (:class:`PatchDataset`),
and a checkpoint holds the weights, the optimiser state, the step and the RNG states, all as safetensors
plus JSON (never pickles). ``resume=True`` continues from ``OUT/last`` and ends with the weights an
uninterrupted run would have.

Distributed: under ``torchrun`` (``WORLD_SIZE`` > 1) each rank trains on its own samples with
DistributedDataParallel (gloo on CPU, NCCL on GPU); rank 0 writes checkpoints and logs.
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save as safetensors_bytes
from torch import nn

from hsrecon import __version__
from hsrecon.data import Pair, discover, track_space
from hsrecon.data.patches import PatchDataset, check_pairs, load_pair
from hsrecon.lightroute import LightRouter, image_sample, light_features
from hsrecon.model import LWRDAN, LWRDANConfig, over_prior
from hsrecon.pixelmap import RootPolynomialMap, term_count
from hsrecon.temps import write_atomic
from hsrecon.weights import PRIOR_ROUTES_KEY, Weights, WeightsError, load_weights, make_meta, save_weights

__all__ = [
    "CheckpointWriteError", "DivergedError", "ResumeError", "RunExistsError", "TrainConfig", "TrainResult",
    "learning_rate", "recipe_loss", "relative_gain", "sam_loss", "ssim_loss", "train",
]  # fmt: skip


class ResumeError(ValueError):
    """``resume`` cannot continue this run folder as asked: no checkpoint there, or settings that change
    what is trained differ from the checkpoint's (each named). One line; the command line's fault."""


class RunExistsError(FileExistsError):
    """A new run (no ``resume``) into a folder that holds a run already: its checkpoints and log would be
    overwritten and mixed with the new run's."""


class CheckpointWriteError(OSError):
    """A checkpoint or the log cannot be written (disk full, read-only, quota); the files already there are
    whole (each is written to a temporary and renamed), and no temporary is left."""


class DivergedError(RuntimeError):
    """The loss became NaN or infinite: every later step would be NaN too, so the run stops there."""


RESUME_SETTINGS = (
    "track", "input_space", "window", "steps", "batch_size", "lr_start", "lr_end", "ssim_weight", "mrae_weight",
    "sam_weight", "gain_invariant", "seed", "init", "samples_per_image", "valid_images", "model", "lights",
)  # fmt: skip
"""The settings that decide what a run trains and how its checkpoints are compared: a resumed run must
keep its checkpoint's (the device, the loader processes, the time limit and the validation interval may
change)."""


@dataclass
class TrainConfig:
    """Every training choice; the defaults are the paper's recipe."""

    data: Path
    output: Path
    track: str = "clean"
    steps: int = 100_000
    max_minutes: float | None = None
    batch_size: int = 8
    window: int = 64
    lr_start: float = 1e-3
    lr_end: float = 1e-5
    ssim_weight: float = 1.0
    mrae_weight: float = 0.0
    sam_weight: float = 0.0
    gain_invariant: bool = False
    seed: int = 0
    init: str | None = None
    resume: bool = False
    device: str = "cpu"
    amp: bool = False
    workers: int = 0
    validate_every: int = 1000
    checkpoint_every: int = 1000
    samples_per_image: int = 16
    cache_images: int = 8
    valid_images: int | None = None
    input_space: str | None = None
    model: dict = field(default_factory=dict)
    prior_fit: dict = field(default_factory=dict)  # what fit_prior found (a prior model's first run)
    lights: list[str] = field(default_factory=list)  # train and validate on scenes of these main lights only

    def __post_init__(self) -> None:
        self.data, self.output = Path(self.data), Path(self.output)
        self.lights = list(self.lights)
        # The network learns the data's own RGB (value/max): clean renderings, or camera sRGB JPEGs.
        self.input_space = self.input_space or track_space(self.track)


# --- loss ------------------------------------------------------------------------------------------------


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    return g[:, None] @ g[None, :]


def ssim_per_band(pred: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Mean SSIM of each band (N×B), Wang et al. 2004: Gaussian 11×11, σ 1.5, K1 0.01, K2 0.03, valid windows."""
    bands = pred.shape[1]
    window = _gaussian_window().to(pred).expand(bands, 1, 11, 11)

    def blur(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, window, groups=bands)

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_p, mu_t = blur(pred), blur(target)
    var_p = blur(pred * pred) - mu_p**2
    var_t = blur(target * target) - mu_t**2
    cov = blur(pred * target) - mu_p * mu_t
    ssim_map = ((2 * mu_p * mu_t + c1) * (2 * cov + c2)) / ((mu_p**2 + mu_t**2 + c1) * (var_p + var_t + c2))
    return ssim_map.mean(dim=(2, 3))


def ssim_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 − SSIM, averaged over bands and the batch."""
    return 1.0 - ssim_per_band(pred, target).mean()


MRAE_FLOOR = 1e-3  # the MRAE term's denominators are clamped here: a band holding no light has no relative error


def relative_gain(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per sample (N), the gain g minimising Σ ((g·pred − target) / target)², the relative least squares.

    A photo records no absolute radiance, so a photo model's loss may ignore one gain per image: multiplying
    each window's prediction by its g before the MRAE term makes the term blind to scale and leaves spectral
    shape and the relative values within the window to learn. Gradients flow through g.
    """
    ratio = pred / target.clamp_min(MRAE_FLOOR)
    dims = tuple(range(1, pred.dim()))
    return ratio.sum(dim=dims) / (ratio * ratio).sum(dim=dims).clamp_min(1e-12)


def sam_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean spectral angle in radians over the pixels of N×B×H×W cubes (Kahan's 2·atan2 form: stable near 0)."""
    u = pred / pred.norm(dim=1, keepdim=True).clamp_min(1e-8)
    v = target / target.norm(dim=1, keepdim=True).clamp_min(1e-8)
    difference = ((u - v) ** 2).sum(dim=1).add(1e-12).sqrt()
    total = ((u + v) ** 2).sum(dim=1).add(1e-12).sqrt()
    return (2.0 * torch.atan2(difference, total)).mean()


def recipe_loss(pred: torch.Tensor, target: torch.Tensor, config: TrainConfig) -> tuple[torch.Tensor, dict]:
    """``L2 + w_ssim (1 − SSIM) + w_mrae MRAE + w_sam SAM`` (eqs. 10–14 plus two options), with its parts.

    ``gain_invariant``: the MRAE term is taken after each window's :func:`relative_gain` (SAM needs none); the
    L2 term stays on the raw prediction, a weak anchor that keeps neighbouring windows at one scale.
    """
    l2 = F.mse_loss(pred, target)
    parts = {"l2": l2}
    total = l2
    if config.ssim_weight:
        parts["ssim"] = ssim_loss(pred, target)
        total = total + config.ssim_weight * parts["ssim"]
    if config.mrae_weight:
        scaled = pred * relative_gain(pred, target).view(-1, 1, 1, 1) if config.gain_invariant else pred
        parts["mrae"] = ((scaled - target).abs() / target.clamp_min(MRAE_FLOOR)).mean()
        total = total + config.mrae_weight * parts["mrae"]
    if config.sam_weight:
        parts["sam"] = sam_loss(pred, target)
        total = total + config.sam_weight * parts["sam"]
    return total, {k: float(v.detach()) for k, v in parts.items()}


def learning_rate(step: int, config: TrainConfig) -> float:
    """Exponential decay from ``lr_start`` at step 0 to ``lr_end`` at the last step."""
    fraction = min(step / max(config.steps - 1, 1), 1.0)
    return config.lr_start * (config.lr_end / config.lr_start) ** fraction


# --- distributed -----------------------------------------------------------------------------------------


def _distributed() -> tuple[int, int]:
    """(rank, world size); initialises the process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() and os.environ.get("HSRECON_DIST_BACKEND") != "gloo" else "gloo"
        dist.init_process_group(backend=backend)
    return (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)


# --- checkpoints -----------------------------------------------------------------------------------------


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Flatten Adam's state into named tensors (safetensors) and JSON scalars."""
    state = optimizer.state_dict()
    tensors, scalars = {}, {"param_groups": state["param_groups"], "state": {}}
    for index, entry in state["state"].items():
        scalars["state"][str(index)] = {}
        for key, value in entry.items():
            if torch.is_tensor(value):
                tensors[f"{index}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars["state"][str(index)][key] = value
    return tensors, scalars


def _restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict, scalars: dict) -> None:
    state = {}
    for index, extra in scalars["state"].items():
        entry = dict(extra)
        for name, tensor in tensors.items():
            owner, key = name.split(".", 1)
            if owner == index:
                entry[key] = tensor
        state[int(index)] = entry
    optimizer.load_state_dict({"state": state, "param_groups": scalars["param_groups"]})


def _save_checkpoint(
    path: Path, model: LWRDAN, optimizer, step: int, config: TrainConfig, metrics: dict, routing: Routing | None = None
) -> None:
    """``path.state.safetensors`` (everything ``--resume`` needs), then ``path.safetensors`` (hsrecon weights).

    The state file holds its own copy of the model tensors, so resuming reads that one file alone: each
    file is renamed into place atomically, and a run killed between the two renames resumes from a
    consistent state (the weights file, for users, is simply one checkpoint older until the next save).
    """
    tensors, scalars = _optimizer_tensors(optimizer)
    tensors |= {f"{_MODEL_PREFIX}{key}": value.detach().cpu().contiguous() for key, value in model.state_dict().items()}
    tensors["rng.torch"] = torch.get_rng_state()
    scalars.update(step=step, config=json.loads(json.dumps(asdict(config), default=str)), metrics=metrics)
    state = safetensors_bytes(tensors, metadata={"hsrecon_train": json.dumps(scalars)})
    _written(path.with_suffix(".state.safetensors"), step, lambda final: write_atomic(final, state))
    meta = make_meta(
        model,
        window_size=config.window,
        input_space=config.input_space,
        weights_version=f"trained-step{step}",
        provenance={"trainer": f"hsrecon {__version__}", "data": str(config.data), "init": config.init or "scratch"},
        training={k: str(v) for k, v in asdict(config).items() if k not in ("model",)} | {"step": step},
        metrics=metrics,
        routing=routing.router.to_json() if routing else {},
    )
    tensors = model.state_dict() | ({PRIOR_ROUTES_KEY: routing.routes} if routing else {})
    _written(path.with_suffix(".safetensors"), step, lambda final: save_weights(final, tensors, meta))


def _written(final: Path, step: int, write: Callable[[Path], object], what: str = "") -> None:
    """``write(final)``, its operating-system error (a full disk) made a :class:`CheckpointWriteError`."""
    try:
        write(final)
    except OSError as error:
        reason = error.strerror or str(error) or type(error).__name__
        failure = CheckpointWriteError(
            f"{final}: cannot write {what or f'the step-{step} checkpoint'} ({reason}); the files already in "
            f"{final.parent} are whole, and --resume continues from the last checkpoint"
        )
        failure.errno = error.errno
        raise failure from None


_MODEL_PREFIX = "model."


def _load_checkpoint(path: Path, model: LWRDAN, optimizer) -> tuple[int, dict]:
    """Restore model, optimiser and RNG from ``path.state.safetensors``; returns (step, metrics)."""
    state_path = path.with_suffix(".state.safetensors")
    try:
        with safe_open(str(state_path), framework="pt") as handle:
            scalars = json.loads(handle.metadata()["hsrecon_train"])
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 - not a dict
    except Exception as error:  # safetensors raises its own types for damaged files
        raise ValueError(f"{state_path}: not a readable hsrecon training state ({error})") from None
    step = int(scalars["step"])
    model_tensors = {k[len(_MODEL_PREFIX) :]: tensors.pop(k) for k in list(tensors) if k.startswith(_MODEL_PREFIX)}
    if not model_tensors:  # a state file from before the model travelled with it: use the weights file
        weights = load_weights(path.with_suffix(".safetensors"))
        if int(weights.meta.training.get("step", -1)) != step:
            raise ValueError(f"{state_path}: step {step}, but {path.with_suffix('.safetensors')} is another step")
        model_tensors = weights.state_dict
    try:
        model.load_state_dict(model_tensors)
    except RuntimeError as error:  # the settings matched (checked first), the tensors did not
        raise ValueError(f"{state_path}: the tensors of another network ({str(error).splitlines()[0]})") from None
    torch.set_rng_state(tensors.pop("rng.torch"))
    _restore_optimizer(optimizer, tensors, scalars)
    return step, scalars.get("metrics", {})


# --- validation ------------------------------------------------------------------------------------------


@torch.no_grad()
def validate(
    model: LWRDAN, pairs: list[Pair], window: int, device: torch.device, routing: Routing | None = None
) -> dict[str, float]:
    """Whole validation images reconstructed as convert does (blended windows; a routed prior read per image):
    mean MRAE, RMSE, PSNR, SAM, and MRAE after one MRAE-optimal gain per image (``mrae_gain``, the score a
    photo model is chosen by)."""
    from hsrecon.inference import TorchPredictor
    from hsrecon.metrics import score
    from hsrecon.pipeline import stream_reconstruct

    routes = {"router": routing.router, "routes": routing.routes} if routing else {}
    predict = TorchPredictor(copy.deepcopy(model).eval(), device=device, **routes)  # the training model stays
    results = []
    for pair in pairs:
        rgb, cube = load_pair(pair)
        out = np.empty_like(cube)
        stream_reconstruct(rgb, lambda r: r, predict, lambda y, r, out=out: out.__setitem__(slice(y, y + len(r)), r),
                           bands=cube.shape[-1], window=window)  # fmt: skip
        results.append(score(out, cube, with_ssim=False))
    names = {"mrae": "mrae", "rmse": "rmse", "psnr": "psnr", "sam": "sam", "mrae_gain": "mrae_gain_mrae"}
    return {key: float(np.mean([getattr(r, name) for r in results])) for key, name in names.items()}


# --- the loop --------------------------------------------------------------------------------------------


@dataclass
class TrainResult:
    model: LWRDAN
    step: int
    best_mrae: float
    log: Path


@dataclass(frozen=True)
class Routing:
    """A routed prior that training keeps as its ``--init`` weights had it (``hsrecon.lightroute``): the
    router and one prior matrix per route. Each training image's posterior is read once, on the whole image,
    as convert reads it."""

    router: LightRouter
    routes: torch.Tensor

    def posterior(self, rgb: np.ndarray) -> np.ndarray:
        """The router's posterior for one H×W×3 training image (the values the network sees), float32."""
        return self.router.posterior(light_features(image_sample(rgb, _unchanged))).astype(np.float32)

    def offset(self, prior: RootPolynomialMap, rgb: torch.Tensor, posterior: torch.Tensor) -> torch.Tensor:
        """What a batch's routed priors add to the model's own (its prior matrix, fixed in training): the
        root-polynomial terms of each window times (its image's blended routes − the model's matrix)."""
        routes = self.routes.to(rgb.device)
        change = torch.einsum("nk,ktb->ntb", posterior.to(rgb.device, torch.float32), routes) - prior.matrix
        return torch.einsum("nthw,ntb->nbhw", prior.terms(rgb.float()), change)


def _unchanged(pixels: np.ndarray) -> np.ndarray:
    return pixels


def _routing(config: TrainConfig) -> Routing | None:
    """The routed prior of the ``--init`` weights, None for weights without one (or none)."""
    if not config.init:
        return None
    loaded = load_weights(config.init)
    routes = getattr(loaded, "routes", None)
    return Routing(router=loaded.router, routes=routes) if routes is not None else None


def _lit_by(data: Path, pairs: list[Pair], lights: list[str], *, every: bool = True) -> list[Pair]:
    """``pairs`` whose scene's main light is one of ``lights`` (all of them for none), in their order.
    ValueError (one line) for a dataset that records no lights, and for a light with no scene among ``pairs``
    (with ``every`` False, only when no light has one: a small validation split may lack one)."""
    if not lights or not pairs:
        return pairs
    from hsrecon.pixelfit import pairs_lit_by

    chosen: set[str] = set()
    missing: list[ValueError] = []
    for light in lights:
        try:
            chosen |= {pair.name for pair in pairs_lit_by(data, pairs, light)}
        except ValueError as error:
            missing.append(error)
    if missing and (every or not chosen):
        raise missing[0]
    return [pair for pair in pairs if pair.name in chosen]


def _build_model(config: TrainConfig) -> tuple[LWRDAN, bool]:
    """(network, whether its prior still needs fitting): a new network from ``config.model``, or ``config.init``'s
    with ``config.model``'s settings over its config (settings that keep every tensor's shape, such as dropout;
    any other mismatch fails loading the tensors).

    One setting adds tensors: a prior (``prior_degree``) over weights that have none. Their network then learns
    the correction to the prior, from zero: its features start as they were, its last convolution at zero, so
    the untrained model is exactly its prior (design (b) of issue 24, fine-tuned from the authors' network).
    """
    if not config.init:
        model = LWRDAN(LWRDANConfig.from_dict(config.model) if config.model else None)
        return model, bool(model.config.prior_degree)
    loaded = load_weights(config.init)
    if not isinstance(loaded, Weights):
        raise WeightsError(f"{loaded.path}: a per-pixel {loaded.kind} map, not a network to start from")
    wanted = LWRDANConfig.from_dict(loaded.meta.config.to_dict() | config.model)
    adds_prior = bool(wanted.prior_degree) and not loaded.meta.config.prior_degree
    network = LWRDAN(replace(wanted, prior_degree=0) if adds_prior else wanted)
    network.load_state_dict(loaded.state_dict)
    if not adds_prior:
        return network, False
    unfitted = torch.zeros(term_count(wanted.prior_degree), wanted.out_bands)
    return over_prior(network, unfitted, wanted.prior_degree, network_share=0.0), True


def fit_prior(model: LWRDAN, train_pairs: list[Pair]) -> dict:
    """Fit the model's root-polynomial prior (``prior_degree``) as every per-pixel map is fitted
    (:func:`hsrecon.evaluate.fit_root_polynomial_baseline`: a grid of training pixels, the ridge chosen by MRAE
    on every 5th training image), on the values the network sees (value/max); returns what was fitted.
    The validation split stays for choosing checkpoints."""
    from hsrecon.evaluate import fit_root_polynomial_baseline

    fit = fit_root_polynomial_baseline(train_pairs, degree=model.config.prior_degree, input_space=STORED_SPACE).fit
    with torch.no_grad():
        model.prior.matrix.copy_(torch.from_numpy(fit.matrix))
    return {"degree": fit.degree, "ridge": fit.ridge, "valid_mrae": fit.scores[fit.ridge], "train_pixels": fit.pixels}


STORED_SPACE = "ntire2020-clean"
"""The input space whose transform is the files' values over their maximum, exposure 1: what training feeds."""


def train(
    config: TrainConfig,
    *,
    on_step: Callable[[int, float, float], None] | None = None,
    on_note: Callable[[str], None] | None = None,
) -> TrainResult:
    """Train as ``config`` says; returns the final model (rank 0 also writes OUT/last, OUT/best, OUT/log).

    Everything that can be checked is checked before the run folder is touched: the dataset (every
    pair's headers, :func:`~hsrecon.data.patches.check_pairs`; ``on_note`` hears about integer cubes) and,
    for ``resume``, the checkpoint's settings (:class:`ResumeError`); a new run refuses a folder holding
    another (:class:`RunExistsError`). A cube with NaN is refused when read, a loss that becomes NaN or
    infinite stops the run (:class:`DivergedError`), and a checkpoint that cannot be written stops it with
    the files already there whole (:class:`CheckpointWriteError`).
    """
    rank, world = _distributed()
    device = torch.device(config.device)
    train_pairs = _lit_by(config.data, discover(config.data, split="train", track=config.track), config.lights)
    valid_pairs = discover(config.data, split="valid", track=config.track)
    valid_pairs = _lit_by(config.data, valid_pairs, config.lights, every=False)[: config.valid_images]
    last = config.output / "last"
    _check_run_folder(config, last)
    torch.manual_seed(config.seed)
    model, unfitted_prior = _build_model(config)
    routing = _routing(config)
    bands = model.config.out_bands
    notes = check_pairs(train_pairs, bands=bands, window=config.window) + check_pairs(valid_pairs, bands=bands)
    for note in notes if on_note is not None and rank == 0 else ():
        on_note(note)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr_start)
    _make_run_folder(config.output)
    start, best_mrae = 0, math.inf
    if config.resume:
        start, metrics = _load_checkpoint(last, model, optimizer)
        best_mrae = float(metrics.get("best_mrae", math.inf))
    if rank == 0:
        _truncate_log(config.output / "log.jsonl", start)
    # Channels-last: faster for these small convolutions on CPU (docs/training.md has the measurement).
    model.to(device, memory_format=torch.channels_last).train()
    wrapped = nn.parallel.DistributedDataParallel(model) if world > 1 else model
    if unfitted_prior and start == 0:
        config.prior_fit = fit_prior(model, train_pairs)
    remaining = config.steps - start
    dataset = PatchDataset(
        train_pairs, window=config.window, seed=config.seed,
        length=max(remaining, 0) * config.batch_size, offset=(start * world + rank) * config.batch_size,
        samples_per_image=config.samples_per_image, cache_images=config.cache_images,
        label=routing.posterior if routing else None,
    )  # fmt: skip
    # Rank r takes samples (step·world + r)·batch …: ranks never share a window; order is fixed by the seed.
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=config.batch_size, num_workers=config.workers,
        sampler=_RankSampler(len(dataset), config.batch_size, world, rank),
        generator=torch.Generator().manual_seed(config.seed),  # keeps the global RNG (dropout) untouched
    )  # fmt: skip
    log = config.output / "log.jsonl"
    scaler = torch.amp.GradScaler(enabled=config.amp and device.type == "cuda")
    started = time.monotonic()
    step = saved = start
    for rgb, cube, *posterior in _batches(loader):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, config)
        rgb, cube = rgb.to(device, memory_format=torch.channels_last), cube.to(device)
        with torch.autocast(device.type, enabled=config.amp and device.type == "cuda"):
            pred = wrapped(rgb).float()
            if routing is not None:  # each window's prior is its image's routes, as convert runs it
                pred = pred + routing.offset(model.prior, rgb, posterior[0])
            loss, parts = recipe_loss(pred, cube, config)
        value = float(loss.detach())
        if not math.isfinite(value):
            terms = ", ".join(f"{name} {part:.4g}" for name, part in parts.items())
            raise DivergedError(_diverged(step + 1, f"the loss is {value} ({terms})", saved, config))
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        step += 1
        if on_step:
            on_step(step, value, optimizer.param_groups[0]["lr"])
        if rank == 0:
            _log(log, {"step": step, "loss": value, "lr": optimizer.param_groups[0]["lr"], **parts})
        if step % config.validate_every == 0 or step == config.steps:
            best_mrae = _validate_and_save(
                model, optimizer, step, config, valid_pairs, device, rank, best_mrae, saved, routing
            )
            saved = step
        elif step % config.checkpoint_every == 0 and rank == 0:
            _save_checkpoint(last, model, optimizer, step, config, {"best_mrae": best_mrae}, routing)
            saved = step
        # Checked after a step, so that every run that starts trains (and saves) at least one.
        out_of_time = config.max_minutes is not None and time.monotonic() - started > 60 * config.max_minutes
        if step >= config.steps or out_of_time:
            break
    if step > start and step % config.validate_every and step != config.steps:
        best_mrae = _validate_and_save(
            model, optimizer, step, config, valid_pairs, device, rank, best_mrae, saved, routing
        )
    return TrainResult(model=model, step=step, best_mrae=best_mrae, log=log)


def _diverged(step: int, what: str, saved: int, config: TrainConfig) -> str:
    """The one line for a loss, or a validation output, that is NaN or infinite: what is kept, what may help."""
    kept = f"the checkpoint of step {saved} is kept" if saved else "no checkpoint was written"
    return (
        f"step {step}: {what}; stopped, {kept}. The run diverged (a lower --lr-start than {config.lr_start:g} "
        "may help) or the cubes' values overflow (NTIRE's are within [0, 1])"
    )


def _check_run_folder(config: TrainConfig, last: Path) -> None:
    """Before anything is written: ``resume`` needs a checkpoint with this run's settings; a new run
    needs a folder without a checkpoint (it would be replaced, and the log continued). A log alone is a
    run that stopped before its first checkpoint: the new run starts it afresh."""
    state = last.with_suffix(".state.safetensors")
    if config.resume:
        if not state.is_file():
            raise ResumeError(
                f"{config.output}: no checkpoint to resume from ({state.name} is not there); "
                "leave out --resume to start a new run"
            )
        _check_resume_settings(state, config)
        return
    found = [path.name for path in (state, last.with_suffix(".safetensors")) if path.exists()]
    if found:
        raise RunExistsError(
            f"{config.output}: holds a training run already ({', '.join(found)}): --resume continues it, "
            "another --output starts a new one"
        )


def _check_resume_settings(state: Path, config: TrainConfig) -> None:
    """:class:`ResumeError` naming every setting of :data:`RESUME_SETTINGS` that differs from the
    checkpoint's (read from its header: nothing else of the file yet)."""
    try:
        with safe_open(str(state), framework="pt") as handle:
            saved = json.loads(handle.metadata()["hsrecon_train"]).get("config", {})
    except Exception as error:  # safetensors raises its own types for damaged files
        raise ValueError(f"{state}: not a readable hsrecon training state ({error})") from None
    now = json.loads(json.dumps(asdict(config), default=str))
    differ = [
        f"{name} {saved[name]!r} → {now[name]!r}"
        for name in RESUME_SETTINGS
        if isinstance(saved, dict) and name in saved and saved[name] != now[name]
    ]
    if differ:
        raise ResumeError(
            f"{state}: --resume with other settings than the run's: {'; '.join(differ)}; resume with the run's "
            "own, or start a new run (--init RUN/last.safetensors fine-tunes from it)"
        )


def _make_run_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        failure = CheckpointWriteError(f"{folder}: cannot create the run folder ({error.strerror or error})")
        failure.errno = error.errno
        raise failure from None


def _batches(loader: torch.utils.data.DataLoader):
    """The loader's batches; an error in a loader process comes back as its own one line (DataLoader
    would raise it carrying the worker's whole traceback as its message)."""
    iterator = iter(loader)
    while True:
        try:
            batch = next(iterator)
        except StopIteration:
            return
        except Exception as error:
            text = str(error)
            if "DataLoader worker" not in text or "Traceback" not in text:
                raise
            last = text.rstrip().splitlines()[-1]
            raise ValueError(last.partition(": ")[2] or last) from None
        yield batch


def _validate_and_save(model, optimizer, step, config, valid_pairs, device, rank, best_mrae, saved, routing) -> float:
    if rank != 0:
        if dist.is_initialized():
            dist.barrier()
        return best_mrae
    from hsrecon.pipeline import NonFiniteOutputError

    try:
        metrics = validate(model, valid_pairs, config.window, device, routing) if valid_pairs else {}
    except NonFiniteOutputError as error:  # diverged weights: never saved as a checkpoint
        raise DivergedError(_diverged(step, f"validation: {error}", saved, config)) from None
    chosen = metrics.get("mrae_gain" if config.gain_invariant else "mrae", math.inf)
    improved = bool(metrics) and chosen < best_mrae
    best_mrae = chosen if improved else best_mrae
    summary = {**metrics, "best_mrae": best_mrae}
    _log(config.output / "log.jsonl", {"step": step, "validation": metrics})
    _save_checkpoint(config.output / "last", model, optimizer, step, config, summary, routing)
    if improved:
        _save_checkpoint(config.output / "best", model, optimizer, step, config, summary, routing)
    if dist.is_initialized():
        dist.barrier()
    return best_mrae


def _truncate_log(path: Path, step: int) -> None:
    """Drop what a killed run logged after its last checkpoint, so a resumed run's log reads as one run."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # the line the kill cut short
            continue
        if isinstance(record, dict) and isinstance(record.get("step"), int) and record["step"] <= step:
            kept.append(line + "\n")
    _written(path, step, lambda final: write_atomic(final, "".join(kept).encode("utf-8")), "the log")


def _log(path: Path, record: dict) -> None:
    """One line of strict JSON (a non-finite number, PSNR of a perfect image, becomes null)."""
    line = json.dumps(_finite_or_null(record), allow_nan=False) + "\n"
    try:
        with open(path, "a") as handle:
            handle.write(line)
    except OSError as error:
        failure = CheckpointWriteError(f"{path}: cannot write the log ({error.strerror or error})")
        failure.errno = error.errno
        raise failure from None


def _finite_or_null(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite_or_null(item) for key, item in value.items()}
    return value


class _RankSampler(torch.utils.data.Sampler):
    """Indices of this rank's samples: batch b of step s is global batch s·world + rank."""

    def __init__(self, length: int, batch: int, world: int, rank: int) -> None:
        self.length, self.batch, self.world, self.rank = length, batch, world, rank

    def __iter__(self):
        steps = self.length // self.batch
        for step in range(steps):
            base = (step * self.world) * self.batch
            yield from range(base, base + self.batch)

    def __len__(self) -> int:
        return self.length
