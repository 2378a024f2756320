from adapters.mqtt.stats import mqtt_kpis as adapter_kpis


def test_mqtt_dropped_counts_every_link_and_what_was_never_acknowledged():
    metadata = {
        "mqtt": {
            "publisher": {"published": 100, "dropped": 2, "undelivered": 3},
            "devices": {
                "bess": {
                    "residuals": {},
                    "fallback_steps": 0,
                    "steps": 10,
                    "malformed_total": 0,
                    "link": {"dropped": 4, "undelivered": 1},
                }
            },
        }
    }
    kpis = adapter_kpis(metadata)
    assert kpis["mqtt_published"] == 100
    assert kpis["mqtt_dropped"] == 2 + 3 + 4 + 1
