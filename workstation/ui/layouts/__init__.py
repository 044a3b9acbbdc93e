"""Viewport layouts (1x1, 1x2, 2x2), drops from the study browser, and the current-versus-prior comparison."""
