"""SMSC simulator: `python -m hibiki_sms_gateway.smsc_simulator --port N --scenario FILE --record FILE`."""
