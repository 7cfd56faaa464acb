"""Presets, model files and the calibration handles: values, scaling and error messages."""

from __future__ import annotations

import pytest

from dendrolab.errors import ParameterError
from sim_backend.physics.dendrite import DendriteParams
from sim_backend.physics.presets import DeviceModels, load_models, preset_names


def test_packaged_presets_are_listed():
    assert {"li2020-original", "li2020-optimized"} <= set(preset_names())


def test_default_is_the_original_class_with_documented_defaults():
    m = load_models()
    assert m.name == "li2020-original"
    assert m.dendrite == DendriteParams()
    assert m.dendrite.tau_r_s == pytest.approx(3e-3)


def test_optimized_preset_applies_both_handles():
    orig, opt = load_models("li2020-original"), load_models("li2020-optimized")
    assert opt.dendrite.tau_r_s == pytest.approx(orig.dendrite.tau_r_s / 100)
    assert opt.dendrite.k_plus_per_s == pytest.approx(orig.dendrite.k_plus_per_s * 100)
    assert opt.dendrite.v_plus_v == pytest.approx(orig.dendrite.v_plus_v * 0.6)
    assert opt.soma.v_th_v == pytest.approx(orig.soma.v_th_v * 0.6)
    # Written literally in the preset file, not rescaled.
    assert opt.circuit.c_m_f == pytest.approx(1e-11)
    # The synapse technology is not touched by the neuron handles.
    assert opt.synapse == orig.synapse


def test_optimized_dendrite_switches_at_3v_in_about_10us():
    """Extended Data Fig. 7: 10 us operation at 3 V; r+(3 V) ~ 2e5 1/s."""
    import math

    d = load_models("li2020-optimized").dendrite
    r_plus = d.k_plus_per_s * math.expm1(3.0 / d.v_plus_v)
    assert 1e5 < r_plus < 4e5


def test_model_file_overrides_are_literal_and_handles_scale_the_base(tmp_path):
    path = tmp_path / "lab.yaml"
    path.write_text("base: li2020-original\ntime_scale: 2\ndendrite:\n  tau_r_s: 5.0e-3\n")
    m = load_models(path)
    assert m.dendrite.tau_r_s == pytest.approx(5e-3)           # literal
    assert m.dendrite.k_plus_per_s == pytest.approx(2 * 0.0908)  # scaled base
    assert m.name == "lab"


def test_mapping_source_and_extra_scaling():
    m = load_models({"soma": {"v_th_v": 1.5}}, voltage_scale=2.0)
    assert m.soma.v_th_v == pytest.approx(3.0)


def test_without_noise_zeroes_every_sigma():
    m = load_models().without_noise()
    assert m.dendrite.c2c_sigma_ln == 0 and m.dendrite.read_noise_rel == 0
    assert m.synapse.stuck_fraction == 0 or m.synapse.c2c_sigma_ln == 0
    assert m.wafer.sigma_field == 0 and m.wafer.defect_density_per_cm2 == 0


def test_round_trip_through_to_dict():
    m = load_models("li2020-optimized")
    again = load_models({k: v for k, v in m.to_dict().items()})
    assert again.sections() == m.sections()


@pytest.mark.parametrize(("text", "message"), [
    ("dendrite:\n  tau_r_s: -1\n", r"dendrite\.tau_r_s = -1: must be > 0"),
    ("dendrite:\n  tau: 1\n", r"dendrite\.tau: unknown parameter; known: .*tau_r_s"),
    ("dendrite:\n  rho: fast\n", r"dendrite\.rho = 'fast': must be a number"),
    ("somaa: {}\n", r"unknown key\(s\) somaa"),
    ("time_scale: 0\n", r"time_scale = 0: must be a number > 0"),
    ("base: nosuch\n", r"unknown preset 'nosuch'"),
    ("dendrite: [1, 2]\n", r"dendrite: must be a mapping"),
    ("dendrite:\n  mapping: cubic\n", r"dendrite\.mapping = 'cubic': must be one of"),
    ("dendrite: {tau_r_s: 1\n", r"lab\.yaml line \d+"),
])
def test_bad_model_files_name_file_and_parameter(tmp_path, text, message):
    path = tmp_path / "lab.yaml"
    path.write_text(text)
    with pytest.raises(ParameterError, match=message) as info:
        load_models(path)
    if "line" not in message:
        assert str(path) in str(info.value)


def test_missing_model_file_lists_presets():
    with pytest.raises(ParameterError, match="no such model file or preset; presets: li2020"):
        load_models("does-not-exist.yaml")


def test_device_models_sections_cover_every_parameter_set():
    assert set(DeviceModels().sections()) == {"dendrite", "soma", "circuit", "synapse", "wafer"}
