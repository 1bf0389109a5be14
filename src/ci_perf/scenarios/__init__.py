"""Scenario catalog and the tool scripts (locustfile.py, k6_script.js) that play it."""
