"""De-identification of DICOM objects for research export: DICOM PS3.15 Annex E Basic Application Level
Confidentiality Profile with its options (table as data), keyed UID/pseudonym mapping and date shift, free-text
scrubbing, burned-in text removal by OCR, and a check of every output for what must not be there.

The names below load on first use, so that the site file's [deid] check (`deid.options`) imports no pydicom:
the offline installer runs it with the standard library only."""

from importlib import import_module

_WHERE = {"KeyedMapping": "mapping", "DeidOptions": "options", "DeidSettings": "options", "deid_settings": "options",
          "DeidError": "profile", "Deidentifier": "profile", "InstanceResult": "profile"}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_WHERE[name]}"), name)
