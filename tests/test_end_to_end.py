"""The three jobs chained as a user would: synth → train a few steps → eval → convert with the new weights."""

from __future__ import annotations

import json

from test_cli import NO_OVERLAP, hsrecon

from hsrecon.io import read_cube


def test_synth_train_eval_convert(tmp_path):
    data, run = tmp_path / "synth", tmp_path / "run"
    made = hsrecon("synth", "-o", str(data), "--scenes", "4", "--size", "64", "--seed", "1", "-q")
    assert made.returncode == 0, made.stderr
    assert json.loads((data / "synth.json").read_text())["files"]

    trained = hsrecon("train", "--data", str(data), "-o", str(run), "--max-steps", "3", "--validate-every", "3",
                      "--batch-size", "4", "--device", "cpu")  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    assert (run / "last.safetensors").exists() and (run / "best.safetensors").exists()
    assert len((run / "log.jsonl").read_text().splitlines()) == 4  # 3 steps + 1 validation

    scores = tmp_path / "scores.json"
    evaluated = hsrecon("eval", "--data", str(data), "--weights", str(run / "last.safetensors"), "--json",
                        str(scores), *NO_OVERLAP, "-q")  # fmt: skip
    assert evaluated.returncode == 0, evaluated.stderr
    report = json.loads(scores.read_text())
    assert "Traceback" not in evaluated.stderr and report

    out = tmp_path / "cubes"
    converted = hsrecon("convert", str(data / "Validation_Clean"), "-o", str(out), "-w", str(run / "best.safetensors"),
                        "-f", "h5", *NO_OVERLAP, "-q")  # fmt: skip
    assert converted.returncode == 0, converted.stderr
    (cube_file,) = out.glob("*.h5")
    cube, wavelengths, attrs = read_cube(cube_file)
    assert attrs["weights"].startswith("best.safetensors")
    assert cube.shape == (64, 64, 31) and len(wavelengths) == 31
