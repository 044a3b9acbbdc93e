"""Local AI inference: preprocessing, networks, postprocessing and evaluation.

Importing this package (or ``preprocess``, ``postprocess``, ``evaluation``,
``registry``, ``requirements``, ``calibration``) does not import torch;
``architectures`` and ``network`` do, and are imported only when inference runs.
"""
