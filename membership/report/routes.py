"""Views for /concerns/: the public form, and the page that gives the sender their reference."""

from __future__ import annotations

from flask import abort, current_app, redirect, render_template, request, session, url_for

from .. import concerns
from ..db import get_session
from ..extensions import limiter
from ..models import School
from ..schools import SLUG, school_by_slug
from . import bp
from .forms import ConcernForm


def _only_sent(response) -> bool:
    """Count a submission against the limits only when a concern was stored.

    The limits are there so nobody can flood a school's inbox (and its staff's email). A form
    sent back with a mistake stores and sends nothing, so it is not counted: a worried parent
    correcting their email address is never paused for it. A request already turned away (429)
    is not counted either, so one client carrying on cannot use up the whole school's allowance.
    """
    return response.status_code == 303


def _school_key() -> str:
    return f"concerns:{request.view_args.get('slug', '')}"


def _client_limit() -> str:
    return current_app.config["CONCERN_LIMIT_PER_CLIENT"]


def _school_limit() -> str:
    return current_app.config["CONCERN_LIMIT_PER_SCHOOL"]


def load_school(slug: str) -> School:
    """The school a concerns URL names; 404 when there is none."""
    # Anything that is not a slug (NUL, say, which PostgreSQL would refuse to compare) names no school.
    school = school_by_slug(get_session(), slug) if SLUG.fullmatch(slug) else None
    if school is None:
        abort(404)
    return school


def _group_choices(school: School) -> list[tuple[str, str]]:
    """The select's options: a prompt, the school's groups, and the two answers that are not a group."""
    groups = concerns.school_groups(get_session(), school)
    return [
        ("", "Select a group"),
        *[(str(g.id), f"{g.name} ({g.academic_year})") for g in groups],
        (concerns.NOT_ONE_GROUP, "Not about one group"),
        (concerns.NOT_SURE, "I’m not sure"),
    ]


@bp.route("/<slug>", methods=["GET", "POST"])
@limiter.limit(_client_limit, methods=["POST"], deduct_when=_only_sent)
@limiter.limit(_school_limit, key_func=_school_key, methods=["POST"], deduct_when=_only_sent)
def raise_concern(slug: str):
    """Anyone may tell the school's senior staff, in confidence, about something in a class group."""
    school = load_school(slug)
    form = ConcernForm()
    form.group.choices = _group_choices(school)
    if form.validate_on_submit():
        db = get_session()
        try:
            concern = concerns.raise_concern(db, school, form.details())
        except concerns.ConcernInvalid as invalid:
            db.rollback()
            for field, message in invalid.errors.items():
                form[field].errors.append(message)
        else:
            db.commit()
            # The reference travels in the signed session cookie, so the next page cannot be made to show another.
            session["concern_sent"] = {"school": school.id, "ref": concerns.reference(concern.id),
                                       "emailed": bool(concern.contact_email)}
            return redirect(url_for(".sent", slug=slug), 303)
    return render_template("concerns/raise.html", school=school, form=form), 400 if form.errors else 200


@bp.route("/<slug>/sent")
def sent(slug: str):
    """The concern's reference and what happens next."""
    school = load_school(slug)
    receipt = session.get("concern_sent") or {}
    if receipt.get("school") != school.id:
        return redirect(url_for(".raise_concern", slug=slug))
    return render_template("concerns/sent.html", school=school, ref=receipt.get("ref"),
                           emailed=receipt.get("emailed", False))
