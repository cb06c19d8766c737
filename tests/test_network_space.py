"""How files in one input space reach weights trained on another (hsrecon.inputs.network_space)."""

from __future__ import annotations

import pytest

from hsrecon.inputs import network_space


@pytest.mark.parametrize("files", ["ntire2020-clean", "srgb", "linear"])
def test_clean_weights_convert_every_space(files):
    assert network_space("ntire2020-clean", files) == (files, None)


def test_weights_in_their_own_space_get_value_over_max():
    assert network_space("srgb", "srgb") == ("ntire2020-clean", None)
    assert network_space("srgb", None) == ("ntire2020-clean", None)


def test_unknown_pairing_is_fed_raw_with_a_warning():
    space, warning = network_space("srgb", "linear")
    assert space == "ntire2020-clean" and "no conversion" in warning


def test_bad_file_space_is_refused():
    with pytest.raises(ValueError, match="unknown input space"):
        network_space("ntire2020-clean", "cmyk")
