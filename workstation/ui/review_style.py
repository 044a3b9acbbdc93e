"""How a review state looks, in one place, so the list and the image always agree."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor

from workstation.core.review import FindingState, State, state_summary

# Box colours on a dark CT image: saturated and distinguishable, red is dashed as well (colour-blind readers).
BOX_COLOURS: dict[State, QColor] = {
    State.PENDING: QColor(80, 220, 255),
    State.ACCEPTED: QColor(70, 230, 90),
    State.REJECTED: QColor(255, 70, 70),
    State.EDITED: QColor(255, 225, 50),
    State.ADDED: QColor(255, 150, 40),
    State.DELETED: QColor(150, 150, 150),
}

# Row tints in the findings list: light, so black text stays readable.
ROW_TINTS: dict[State, QColor] = {
    State.ACCEPTED: QColor(205, 240, 205),
    State.REJECTED: QColor(250, 210, 210),
    State.EDITED: QColor(250, 240, 185),
    State.ADDED: QColor(255, 222, 185),
}


def score_text(score: float) -> str:
    """Two decimals, three near certainty: calibrated scores of 0.996 and 0.999 must not both read 1.00."""
    return f"{score:.3f}" if score >= 0.95 else f"{score:.2f}"


def box_pen_style(state: State, on_peak: bool) -> Qt.PenStyle:
    """Solid on the finding's own slice; dotted on the neighbours it spans; rejected is always dashed."""
    if state is State.REJECTED:
        return Qt.PenStyle.DashLine
    return Qt.PenStyle.SolidLine if on_peak else Qt.PenStyle.DotLine


def state_text(state: FindingState) -> str:
    """'accepted', or 'rejected, box edited' when a reviewer changed the box or label beside the verdict."""
    return state_summary(state)


def by_text(state: FindingState) -> str:
    return f"{state.by} ({state.role})" if state.by and state.role else state.by


def box_caption(state: FindingState) -> str:
    """What sits above a box: the finding's number (as in the list), label, score (none for added ones), state."""
    score = "" if state.score is None else " " + score_text(state.score)
    number = f"#{state.number} " if state.number else ""
    return f"{number}{state.label}{score} · {state_text(state)}"
