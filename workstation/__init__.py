"""Radiology AI workstation: read DICOM studies with AI overlays."""

__version__ = "0.1.0"
