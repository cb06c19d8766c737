"""Training: the loss goes down, resume is bit for bit, DDP ranks agree, bad data is one clear line."""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from test_cli import assert_clean_failure, hsrecon
from test_data_ntire import make_ntire2020

from hsrecon.metrics import sam
from hsrecon.model import LWRDANConfig
from hsrecon.train import TrainConfig, learning_rate, recipe_loss, relative_gain, sam_loss, ssim_per_band, train
from hsrecon.weights import load_weights

SMALL = LWRDANConfig(widths=(4, 8, 16), dense_width=8, blocks=(1, 1, 1, 1, 1)).to_dict()


@pytest.fixture()
def tiny_set(tmp_path):
    rng = np.random.default_rng(3)
    return make_ntire2020(tmp_path / "data", rng, train=(1, 2, 3), valid=(451,), shape=(64, 96))


def _config(data, out, **overrides) -> TrainConfig:
    values = {"steps": 6, "batch_size": 4, "validate_every": 3, "checkpoint_every": 3, "model": SMALL, "seed": 5}
    return TrainConfig(data=data, output=out, **(values | overrides))


def test_ssim_is_one_for_identical_and_lower_otherwise():
    x = torch.rand(2, 31, 32, 32)
    assert torch.allclose(ssim_per_band(x, x), torch.ones(2, 31), atol=1e-6)
    assert ssim_per_band(x, x.roll(3, dims=-1)).mean() < 0.5


def test_learning_rate_decays_from_1e3_to_1e5():
    config = TrainConfig(data=".", output=".", steps=101)
    assert learning_rate(0, config) == pytest.approx(1e-3)
    assert learning_rate(50, config) == pytest.approx(1e-4)
    assert learning_rate(100, config) == pytest.approx(1e-5)


def test_photo_loss_ignores_one_gain_per_window_and_scores_spectral_shape():
    """--gain-invariant: the MRAE term after each window's best relative gain; --sam-weight: mean angle."""
    generator = torch.Generator().manual_seed(0)
    target = torch.rand(3, 31, 16, 16, generator=generator) * 0.5 + 0.05
    pred = target * (1 + 0.2 * torch.randn(3, 31, 16, 16, generator=generator))
    config = TrainConfig(data=".", output=".", ssim_weight=0, mrae_weight=1, sam_weight=1, gain_invariant=True)
    gains = torch.tensor([0.1, 3.0, 40.0]).view(-1, 1, 1, 1)
    _, parts = recipe_loss(pred, target, config)
    _, scaled = recipe_loss(pred * gains, target, config)
    assert scaled["mrae"] == pytest.approx(parts["mrae"], rel=1e-5)
    assert scaled["sam"] == pytest.approx(parts["sam"], rel=1e-5)
    assert scaled["l2"] > 10 * parts["l2"]  # the plain L2 anchor still sees the scale
    plain = TrainConfig(data=".", output=".", ssim_weight=0, mrae_weight=1)
    assert recipe_loss(pred * gains, target, plain)[1]["mrae"] > 2 * parts["mrae"]
    np.testing.assert_allclose(relative_gain(target * gains, target).numpy(), 1 / gains.view(-1).numpy(), rtol=1e-5)
    # the SAM term is the metric's spectral angle (hsrecon.metrics.sam, in degrees), in radians
    for image in range(3):
        one = [t[image].permute(1, 2, 0).double().numpy() for t in (pred, target)]
        expected = np.radians(sam(*one))
        assert float(sam_loss(pred[image : image + 1], target[image : image + 1])) == pytest.approx(expected, rel=1e-4)


def test_a_few_steps_lower_the_loss(tiny_set, tmp_path):
    result = train(_config(tiny_set, tmp_path / "run", steps=40, validate_every=40, lr_end=1e-3))
    records = [json.loads(line) for line in result.log.read_text().splitlines()]
    losses = [r["loss"] for r in records if "loss" in r]
    assert len(losses) == 40
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])
    validation = [r["validation"] for r in records if "validation" in r]
    assert validation and {"mrae", "rmse", "psnr", "sam", "mrae_gain"} <= set(validation[-1])
    weights = load_weights(tmp_path / "run" / "last.safetensors")
    assert weights.meta.config == LWRDANConfig.from_dict(SMALL)
    assert (tmp_path / "run" / "best.safetensors").exists()


def test_resume_equals_an_uninterrupted_run(tiny_set, tmp_path):
    straight = train(_config(tiny_set, tmp_path / "a")).model.state_dict()

    def stop_after_checkpoint(step, loss, lr):
        if step == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(_config(tiny_set, tmp_path / "b"), on_step=stop_after_checkpoint)
    resumed = train(_config(tiny_set, tmp_path / "b", resume=True)).model.state_dict()
    for key, value in straight.items():
        assert torch.equal(value, resumed[key]), key


def test_killed_between_the_two_checkpoint_files_still_resumes_exactly(tiny_set, tmp_path, monkeypatch):
    """The state file is renamed into place first; dying before the weights file follows must not matter."""
    import hsrecon.train as training

    straight = train(_config(tiny_set, tmp_path / "a")).model.state_dict()
    real_save = training.save_weights

    def die_at_step_3(path, state_dict, meta):
        if meta.training["step"] == 3:
            raise KeyboardInterrupt  # as if SIGKILLed after the state's rename, before the weights'
        return real_save(path, state_dict, meta)

    monkeypatch.setattr(training, "save_weights", die_at_step_3)
    with pytest.raises(KeyboardInterrupt):
        train(_config(tiny_set, tmp_path / "b"))
    assert (tmp_path / "b" / "last.state.safetensors").exists()
    assert not (tmp_path / "b" / "last.safetensors").exists()
    monkeypatch.setattr(training, "save_weights", real_save)
    resumed = train(_config(tiny_set, tmp_path / "b", resume=True)).model.state_dict()
    for key, value in straight.items():
        assert torch.equal(value, resumed[key]), key
    assert load_weights(tmp_path / "b" / "last.safetensors").meta.training["step"] == 6


def test_a_damaged_training_state_is_one_line(tiny_set, tmp_path):
    train(_config(tiny_set, tmp_path / "run", steps=3))
    state = tmp_path / "run" / "last.state.safetensors"
    state.write_bytes(state.read_bytes()[:1000])
    result = hsrecon("train", "--data", str(tiny_set), "-o", str(tmp_path / "run"), "--resume", "--max-steps", "6")
    assert result.returncode == 4
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr  # no empty progress bar before the error
    assert lines[0].startswith("hsrecon: error: ") and "last.state.safetensors: not a readable hsrecon" in lines[0]


def test_fine_tuning_starts_from_the_given_weights(tiny_set, tmp_path):
    result = train(_config(tiny_set, tmp_path / "ft", steps=1, validate_every=1, model={}, init="ntire2020-clean"))
    initial = load_weights("ntire2020-clean").state_dict
    changed = sum(not torch.equal(initial[k], v) for k, v in result.model.state_dict().items())
    assert 0 < changed  # trained one step from the authors' weights
    assert load_weights(tmp_path / "ft" / "last.safetensors").meta.input_space == "ntire2020-clean"


def test_fine_tuning_can_change_the_dropout_rate(tiny_set, tmp_path):
    """--init with --dropout: the authors' tensors, the authors' config but for the dropout rate."""
    result = train(_config(tiny_set, tmp_path / "ft", steps=1, validate_every=1, model={"dropout": 0.0},
                           init="ntire2020-clean"))  # fmt: skip
    saved = load_weights(tmp_path / "ft" / "last.safetensors").meta.config
    authors = load_weights("ntire2020-clean").meta.config
    assert saved.dropout == 0.0 != authors.dropout
    assert saved.to_dict() | {"dropout": authors.dropout} == authors.to_dict()
    assert result.model.config.dropout == 0.0


def test_gain_invariant_runs_keep_the_best_mrae_after_gain(tiny_set, tmp_path):
    """A photo run is chosen by MRAE after one best gain per image (photos carry no absolute scale)."""
    config = _config(tiny_set, tmp_path / "run", steps=2, validate_every=1, checkpoint_every=1,
                     gain_invariant=True, mrae_weight=1, sam_weight=1, samples_per_image=1, cache_images=0)  # fmt: skip
    result = train(config)
    records = [json.loads(line) for line in result.log.read_text().splitlines()]
    validation = [r["validation"] for r in records if "validation" in r]
    assert len(validation) == 2 and all(v["mrae_gain"] < v["mrae"] for v in validation)
    assert result.best_mrae == min(v["mrae_gain"] for v in validation)
    losses = [r for r in records if "loss" in r]
    assert all({"l2", "mrae", "sam"} <= set(r) for r in losses)


@pytest.mark.parametrize(
    ("option", "fragment"),
    [
        (["--samples-per-image", "0"], "--samples-per-image 0: must be at least 1"),
        (["--cache-images", "-1"], "--cache-images -1: must be 0 or more"),
        (["--sam-weight", "nan"], "--sam-weight nan: must be a finite number, 0 or more"),
        (["--dropout", "1"], "--dropout 1.0: must be a number from 0 to 0.99"),
    ],
)
def test_photo_training_options_out_of_range_are_one_line(tiny_set, tmp_path, option, fragment):
    result = hsrecon("train", "--data", str(tiny_set), "-o", str(tmp_path / "run"), "--max-steps", "1", *option)
    assert_clean_failure(result, 2, fragment)
    assert not (tmp_path / "run").exists()


def _parameter_digest(model: torch.nn.Module) -> str:
    """Digest of the trainable weights (BatchNorm running statistics are per rank until DDP broadcasts
    rank 0's at the next forward; rank 0 writes the checkpoints)."""
    digest = hashlib.sha256()
    for key, value in sorted(model.named_parameters()):
        digest.update(key.encode() + value.detach().numpy().tobytes())
    return digest.hexdigest()


def _ddp_worker(rank: int, world: int, data: str, out: str, port: int) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world))
    os.environ["HSRECON_DIST_BACKEND"] = "gloo"
    torch.set_num_threads(1)
    result = train(_config(data, os.path.join(out, "run"), steps=1, validate_every=1, valid_images=1))
    with open(os.path.join(out, f"rank{rank}.txt"), "w") as handle:
        handle.write(_parameter_digest(result.model))
    torch.distributed.destroy_process_group()


def test_two_process_ddp_ranks_hold_identical_weights(tiny_set, tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_ddp_worker, args=(2, str(tiny_set), str(tmp_path), port), nprocs=2, join=True)
    digests = {(tmp_path / f"rank{r}.txt").read_text() for r in range(2)}
    assert len(digests) == 1
    single = train(_config(tiny_set, tmp_path / "single", steps=1, validate_every=1)).model
    assert _parameter_digest(single) not in digests  # two ranks averaged two batches: a different step


def test_corrupt_mat_is_one_line_naming_the_file(tiny_set, tmp_path):
    (tiny_set / "Train_Spectral" / "ARAD_HS_0002.mat").write_bytes(b"MATLAB 7.3 MAT-file, garbage")
    result = hsrecon("train", "--data", str(tiny_set), "-o", str(tmp_path / "run"), "--max-steps", "8",
                     "--batch-size", "16", "--device", "cpu")  # fmt: skip
    assert result.returncode == 4 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("hsrecon: error:")]
    assert len(errors) == 1 and "ARAD_HS_0002.mat" in errors[0]
