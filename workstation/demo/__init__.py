"""Synthetic demo data: a deterministic chest CT phantom with known nodules."""

from .phantom import Nodule, Phantom, make_chest_phantom
from .writer import DemoStudy, write_ct_series, write_demo_study

__all__ = ["DemoStudy", "Nodule", "Phantom", "make_chest_phantom", "write_ct_series",
           "write_demo_study"]
