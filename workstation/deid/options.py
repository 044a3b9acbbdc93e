"""The site's choices for de-identified export ([deid] in the site file), validated with the key and the reason."""

from __future__ import annotations

import re
from dataclasses import dataclass, fields

from workstation.core.site import ConfigError, SiteConfig
from workstation.deid.table import BASIC_PROFILE, CLEAN_PIXEL_DATA, OPTION_COLUMNS

ROLE_NAMES = ("radiologist", "reviewer", "admin")
SAFE_PRIVATE = re.compile(r"^([0-9A-Fa-f]{4}),xx([0-9A-Fa-f]{2})@(.{1,64})$")  # "0019,xx0C@GEMS_ACQU_01"


@dataclass(frozen=True)
class DeidOptions:
    """Annex E options (each maps to a column of Table E.1-1, or to pixel cleaning)."""

    retain_modified_dates: bool = True  # one keyed date shift per patient: intervals kept, dates not
    retain_patient_characteristics: bool = False  # age, sex, size, weight, smoking, pregnancy...
    retain_device_identity: bool = False  # device serial numbers, station name...
    retain_institution_identity: bool = False
    retain_safe_private: bool = False  # keep only the private attributes in safe_private
    clean_descriptors: bool = True  # study/series descriptions and comments scrubbed instead of removed
    clean_structured_content: bool = True  # SR content kept, its text scrubbed (else the SR tree is dropped)
    clean_graphics: bool = True  # overlays removed, presentation-state text scrubbed
    clean_pixel_data: bool = True  # burned-in text blanked by OCR (else such images are left out)

    def columns(self) -> frozenset[str]:
        chosen = {"RLM": self.retain_modified_dates, "RPC": self.retain_patient_characteristics,
                  "RDI": self.retain_device_identity, "RII": self.retain_institution_identity,
                  "RSP": self.retain_safe_private, "CD": self.clean_descriptors,
                  "CSC": self.clean_structured_content, "CG": self.clean_graphics}
        return frozenset(column for column, on in chosen.items() if on)

    def codes(self, pixels_cleaned: bool = False) -> list[tuple[str, str]]:
        """CID 7050 codes of what was applied (DeidentificationMethodCodeSequence), the profile first."""
        codes = [BASIC_PROFILE]
        if pixels_cleaned:
            codes.append(CLEAN_PIXEL_DATA)
        codes += [OPTION_COLUMNS[column] for column in sorted(self.columns(), key=list(OPTION_COLUMNS).index)]
        return codes

    def names(self) -> list[str]:
        return [f.name for f in fields(self) if getattr(self, f.name)]

    def replace(self, **changes: bool) -> "DeidOptions":
        unknown = set(changes) - {f.name for f in fields(self)}
        if unknown:
            raise ValueError(f"unknown de-identification option {sorted(unknown)[0]!r} "
                             f"(known: {', '.join(f.name for f in fields(self))})")
        return DeidOptions(**{**{f.name: getattr(self, f.name) for f in fields(self)}, **changes})


@dataclass(frozen=True)
class DeidSettings:
    options: DeidOptions = DeidOptions()
    export_roles: tuple[str, ...] = ("reviewer", "admin")
    safe_private: tuple[tuple[int, int, str], ...] = ()  # (group, element byte, private creator)
    keep_reidentification: bool = False  # pseudonym -> original kept in the encrypted store (admins read it)
    workers: int = 0  # processes de-identifying at once; 0: as many as the machine has cores (at most 8)


def deid_settings(config: SiteConfig) -> DeidSettings:
    """[deid] of the site file; ConfigError names the key."""
    table = dict(getattr(config, "deid", None) or {})
    allowed = {"export_roles", "safe_private", "keep_reidentification", "workers", *[f.name for f in fields(DeidOptions)]}
    for key in table:
        if key not in allowed:
            raise ConfigError(f"deid.{key}", f"unknown setting (expected one of: {', '.join(sorted(allowed))})")
    changes = {}
    for f in fields(DeidOptions):
        if f.name in table:
            if not isinstance(table[f.name], bool):
                raise ConfigError(f"deid.{f.name}", "must be true or false")
            changes[f.name] = table[f.name]
    roles = table.get("export_roles", list(DeidSettings.export_roles))
    if not isinstance(roles, list) or not all(r in ROLE_NAMES for r in roles):
        raise ConfigError("deid.export_roles", f"must be a list of roles ({', '.join(ROLE_NAMES)})")
    safe = []
    for entry in table.get("safe_private", []):
        match = SAFE_PRIVATE.match(entry) if isinstance(entry, str) else None
        if match is None:
            raise ConfigError("deid.safe_private", "entries look like \"0019,xx0C@GEMS_ACQU_01\" "
                              "(group, element within the creator's block, private creator)")
        safe.append((int(match[1], 16), int(match[2], 16), match[3]))
    keep = table.get("keep_reidentification", False)
    if not isinstance(keep, bool):
        raise ConfigError("deid.keep_reidentification", "must be true or false")
    workers = table.get("workers", DeidSettings.workers)
    if isinstance(workers, bool) or not isinstance(workers, int) or not 0 <= workers <= 64:
        raise ConfigError("deid.workers", "must be an integer from 0 (one per core) to 64")
    return DeidSettings(options=DeidOptions().replace(**changes), export_roles=tuple(roles), safe_private=tuple(safe),
                        keep_reidentification=keep, workers=workers)
