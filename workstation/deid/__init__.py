"""De-identification of DICOM objects for research export: DICOM PS3.15 Annex E Basic Application Level
Confidentiality Profile with its options (table as data), keyed UID/pseudonym mapping and date shift, free-text
scrubbing, burned-in text removal by OCR, and a check of every output for what must not be there."""

from workstation.deid.mapping import KeyedMapping
from workstation.deid.options import DeidOptions, DeidSettings, deid_settings
from workstation.deid.profile import DeidError, Deidentifier, InstanceResult

__all__ = ["DeidError", "DeidOptions", "DeidSettings", "Deidentifier", "InstanceResult", "KeyedMapping",
           "deid_settings"]
