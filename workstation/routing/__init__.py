"""Routing of arriving series to AI models: the site's rules, matching them, and telling when a series is complete.

Pure logic (no I/O, no threads of its own): services/triage.py feeds it what the receiver stored.
"""
