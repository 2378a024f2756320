"""MQTT bridge: the twin's telemetry out, real devices in (hybrid mode and HIL).

- :mod:`adapters.mqtt.topics`: topic scheme and payloads;
- :mod:`adapters.mqtt.link`: one robust paho-mqtt 2.x connection;
- :mod:`adapters.mqtt.publisher`: mosaik sink publishing telemetry and setpoints;
- :mod:`adapters.mqtt.bridge`: mosaik simulator putting a real device in place of a model;
- :mod:`adapters.mqtt.emulator`: an emulated field battery (``twin device``);
- :mod:`adapters.mqtt.broker`: a Mosquitto child process with the shipped configuration.
"""
