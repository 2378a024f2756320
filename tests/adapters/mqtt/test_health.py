"""A device's missed steps: probing while silent, the full wait back after any answer."""

import pytest

from adapters.mqtt.health import PROBE_SHARE, SILENT_AFTER_MISSES, DeviceHealth


def test_a_silent_device_is_probed_and_a_late_answer_restores_the_full_wait():
    health = DeviceHealth("bess", timeout_s=2.0)
    for k in range(SILENT_AFTER_MISSES):
        assert health.wait_s() == 2.0
        health.note(False, f"step {k}")
    assert health.wait_s() == pytest.approx(2.0 * PROBE_SHARE)  # silent: a short probe
    health.heard_from()  # it answers, but after the probe ended: the step is missed
    health.note(False, "late step")
    assert health.wait_s() == 2.0  # the answer was heard: wait in full for the next one
    health.note(False, "another missed step")
    assert health.wait_s() == pytest.approx(2.0 * PROBE_SHARE)  # heard once, not for ever
    assert health.as_dict() == {"fallback_steps": 5, "gaps": 1, "longest_gap": 5}


def test_an_answered_step_ends_the_gap():
    health = DeviceHealth("bess", timeout_s=1.0)
    for k in range(4):
        health.note(False, f"step {k}")
    health.heard_from()
    health.note(True, "step 4")
    assert not health.silent and health.wait_s() == 1.0
