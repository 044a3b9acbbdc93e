"""The reader review SR: every finding's final verdict at sign-off, signed by the reader.

Same tracking UIDs as the AI SR, so a PACS viewer (or we, reading back) can join
the two. Each group carries the final region (edited and added boxes are their
own), the verdict as a qualitative evaluation coded in our local scheme
99WSREV, and rejected and deleted findings stay listed. The reader is the
person observer and the verifying observer; the time is the sign-off's.
"""

from __future__ import annotations

import highdicom as hd
from pydicom.sr.codedict import codes as sr_codes
from pydicom.valuerep import DT

from workstation.results import codes
from workstation.results.context import ReviewContext, RunContext, local_time, model_text, review_items
from workstation.results.sr_common import algorithm, device_observer, document, roi_groups


def _organisation(run: RunContext) -> str:
    """Verifying Organization is required: the source's institution, else this workstation."""
    name = str(getattr(run.sources[0], "InstitutionName", "") or "").strip()
    return (name or f"{codes.RESPONSIBLE} {run.workstation_id}")[:64]


def person_name(login: str) -> str:
    """A login as a PN whose family name is the login ("carol^": highdicom refuses names without a caret)."""
    cleaned = "".join(ch for ch in login if ch not in "^=\\" and ch.isprintable()).strip()
    return f"{cleaned[:60] or 'unknown'}^"


def _person(review: ReviewContext, organisation: str) -> hd.sr.ObserverContext:
    return hd.sr.ObserverContext(
        observer_type=sr_codes.DCM.Person,
        observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(
            name=person_name(review.signed_by), login_name=review.signed_by[:64], organization_name=organisation,
            role_in_organization=codes.ROLE_CODES.get(review.role), role_in_procedure=codes.VERIFYING))


def build_review_sr(run: RunContext, review: ReviewContext) -> tuple[hd.sr.Comprehensive3DSR, dict]:
    items = review_items(run, review)
    algorithm_id = algorithm(run)
    groups = []
    for item in items:
        evaluations = [hd.sr.QualitativeEvaluation(codes.REVIEW_STATE, codes.STATE_CODES[item.state])]
        if item.box_edited:
            evaluations.append(hd.sr.QualitativeEvaluation(codes.BOX_EDITED, codes.YES))
        if item.relabelled:
            evaluations.append(hd.sr.QualitativeEvaluation(codes.RELABELLED, codes.YES))
        groups.extend(roi_groups(run, item, algorithm_id if item.score is not None else None, evaluations))
    organisation = _organisation(run)
    observation = hd.sr.ObservationContext(observer_person_context=_person(review, organisation),
                                           observer_device_context=device_observer(run))
    sr = document(run, "review-sr", observation, groups, review.signed_at_utc,
                  f"Review of AI {model_text(run)} result", codes.local_schemes((i.label for i in items), reviewed=True),
                  is_complete=True, is_final=True, is_verified=True,
                  verifying_observer_name=person_name(review.signed_by), verifying_organization=organisation)
    sr.VerifyingObserverSequence[0].VerificationDateTime = DT(local_time(review.signed_at_utc))
    content = {"signoff": review.signoff_entry_id, "by": review.signed_by, "role": review.role,
               "at": review.signed_at_utc, "organisation": organisation,
               "findings": [item.content() for item in items]}
    return sr, content
