import pytest

from adapters.mqtt.emulator import FieldBattery, FieldBatteryConfig, field_battery_unit


def test_emulated_battery_takes_the_scenario_defaults():
    unit = field_battery_unit("bess", {"e_kwh": 54.0})
    assert unit["e_kwh"] == 54.0 and unit["p_max_kw"] == 20.0  # its own rating
    assert unit["eta_ch"] == 0.95 and unit["t_trip_c"] == 55.0  # the schema's defaults


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"e_kwhh": 5.0}, "e_kwhh: Extra inputs are not permitted"),
        ({"soc_init": 1.5}, "soc_init: Input should be less than or equal to 1"),
    ],
)
def test_bad_emulator_parameters_are_named(params, message):
    config = FieldBatteryConfig("mqtt://127.0.0.1:1", "site", "bess", params)
    with pytest.raises(ValueError, match=message):
        FieldBattery(config)
