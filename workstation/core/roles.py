"""Who may write what. Checked where entries are written (the store), not only in the UI."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Role(str, Enum):
    RADIOLOGIST = "radiologist"
    REVIEWER = "reviewer"
    ADMIN = "admin"


class Permission(str, Enum):
    DECIDE = "review.decide"  # accept / reject an AI finding
    COMMENT = "review.comment"
    EDIT = "review.edit"  # move, resize, delete, relabel AI boxes
    ADD = "review.add"  # add a missed finding
    CONFIGURE = "admin.configure"  # site configuration, user roles
    EXPORT_AUDIT = "admin.export-audit"


_GRANTS: dict[Role, frozenset[Permission]] = {
    Role.RADIOLOGIST: frozenset({Permission.DECIDE, Permission.COMMENT}),
    Role.REVIEWER: frozenset({Permission.DECIDE, Permission.COMMENT, Permission.EDIT, Permission.ADD}),
    Role.ADMIN: frozenset({Permission.CONFIGURE, Permission.EXPORT_AUDIT}),
}


class PermissionDenied(PermissionError):
    def __init__(self, user: User, permission: Permission) -> None:
        role = user.role.value if user.role else "no role"
        super().__init__(f"{user.login} ({role}) may not {permission.value}")
        self.user, self.permission = user, permission


@dataclass(frozen=True)
class User:
    """The person at the workstation: OS login (unless the site maps it) and the role IT assigned."""

    login: str
    role: Role | None  # None: may view images, may write nothing

    def may(self, permission: Permission) -> bool:
        return self.role is not None and permission in _GRANTS[self.role]

    def require(self, permission: Permission) -> None:
        if not self.may(permission):
            raise PermissionDenied(self, permission)
