"""``hsrecon info``: the model, its weights and their provenance, and the device that would be used."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from hsrecon import __version__
from hsrecon.cli._common import DeviceOption, WeightsOption, device_or_exit, safe, stdout, weights_or_exit

__all__ = ["info"]


def info(
    weights: WeightsOption = None,
    device: DeviceOption = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Show the model, its weights and their provenance, and the device that would be used."""
    from hsrecon.weights import describe

    facts = describe(weights_or_exit(weights), device_or_exit(device))
    if as_json:
        stdout.print_json(json.dumps(facts))
    else:
        stdout.print(_table(facts))


# Labels that say more than their JSON key (the keys stay as they are for scripts).
_LABELS = {"window_size": "trained window", "windowing": "windows (convert, eval)"}


def _table(facts: dict) -> Table:
    table = Table(title=f"hsrecon {__version__}", show_header=False, title_justify="left")
    table.add_column(style="bold cyan")
    table.add_column(overflow="fold")
    for key, value in facts.items():
        table.add_row(_LABELS.get(key, key.replace("_", " ")), _cell(key, value))
    return table


def _cell(key: str, value: object) -> str:
    if key == "parameters":
        return f"{value:,} (BatchNorm running statistics included)"
    if key == "trainable_parameters":
        return f"{value:,}"
    if key == "wavelengths_nm":
        return f"{value[0]:g}–{value[1]:g} nm, 10 nm steps"
    if key == "config":
        return ", ".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, dict):  # provenance and training: the weights file's own words, one line each
        return "\n".join(f"{safe(k)}: {safe(v)}" for k, v in value.items())
    return safe(value)
