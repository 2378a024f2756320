import numpy as np
import pytest

from adapters.field.errors import FieldError
from adapters.field.impair import Impairments, plan_messages
from adapters.field.plan import gateways
from tests.adapters.field.conftest import IMPAIRED


def _gateways(prepared):
    return gateways(prepared.sensors)


def test_impairments_are_seeded(prepared):
    present = np.isfinite(prepared.samples.truth_twin)
    gw = _gateways(prepared)
    a = plan_messages(IMPAIRED, present, gw, 1.0, True)
    b = plan_messages(IMPAIRED, present, gw, 1.0, True)
    for name in ("step", "unit", "delay_s", "reordered", "copies", "skew_s", "sent"):
        assert (getattr(a, name) == getattr(b, name)).all()
    other = Impairments(**{**IMPAIRED.__dict__, "seed": 4})
    c = plan_messages(other, present, gw, 1.0, True)
    assert not (c.sent == a.sent).all()


def test_skew_is_per_gateway_and_in_the_payload_time(prepared):
    m, s = prepared.messages, prepared.samples
    gw = _gateways(prepared)
    offset = s.t - s.t_true[:, None]
    assert np.allclose(offset, m.skew_s[gw.index][None, :], atol=1e-6)
    assert (np.abs(m.skew_s) <= 0.5).all() and len(np.unique(m.skew_s)) == len(gw)


def test_dropouts_jitter_reorder_and_duplicates(prepared):
    m = prepared.messages
    dropped = (~m.sent).mean()
    assert 0.05 < dropped < 0.15
    assert (m.delay_s[~m.reordered] <= 0.4).all() and (m.delay_s[m.reordered] >= 1.0).all()
    assert m.reordered.any() and (~m.reordered).any()
    assert set(np.unique(m.copies)) == {1, 2}
    # batches: one per gateway and step with a record left
    gw = _gateways(prepared)
    for k, g in zip(m.step, m.unit, strict=True):
        assert m.sent[k, gw.index == g].any()


def test_per_sensor_messages_are_the_samples_sent(prepared):
    present = np.isfinite(prepared.samples.truth_twin)
    gw = _gateways(prepared)
    m = plan_messages(IMPAIRED, present, gw, 1.0, False)
    assert len(m.step) == m.sent.sum()
    assert (m.sent[m.step, m.unit]).all()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"dropout": 1.5}, "--dropout"),
        ({"jitter_s": -1}, "--jitter-s"),
        ({"reorder": -0.1}, "--reorder"),
        ({"bad_quality": 1.2}, "--bad-quality"),
    ],  # fmt: skip
)
def test_bad_impairments_are_named(change, message):
    with pytest.raises(FieldError, match=message):
        Impairments(**change).check()


def test_bad_quality_is_seeded_and_good_by_default(prepared):
    present = np.isfinite(prepared.samples.truth_twin)
    gw = _gateways(prepared)
    assert (plan_messages(IMPAIRED, present, gw, 1.0, True).quality == 1).all()
    bad = Impairments(**{**IMPAIRED.__dict__, "bad_quality": 0.2})
    a = plan_messages(bad, present, gw, 1.0, True)
    b = plan_messages(bad, present, gw, 1.0, True)
    assert (a.quality == b.quality).all() and set(np.unique(a.quality)) == {0, 1}
    assert 0.1 < (a.quality == 0).mean() < 0.3
    # its own stream: the other impairments are unchanged
    plain = plan_messages(IMPAIRED, present, gw, 1.0, True)
    assert (a.sent == plain.sent).all() and (a.delay_s == plain.delay_s).all()


def test_samples_without_a_true_value_are_never_sent(prepared):
    present = np.isfinite(prepared.samples.truth_twin)
    present[:, 0] = False  # an EV's SoC while no EV is plugged in, say
    gw = _gateways(prepared)
    for batched in (True, False):
        m = plan_messages(Impairments(), present, gw, 1.0, batched)
        assert not m.sent[:, 0].any() and m.sent[:, 1:].all()
