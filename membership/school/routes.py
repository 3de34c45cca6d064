"""The staff dashboard."""

from __future__ import annotations

from flask import render_template

from .. import concerns, policies, staff
from ..db import get_session
from ..models import DOCUMENT_TITLES
from . import bp
from .access import this_school


@bp.route("/")
def dashboard():
    """The school at a glance: new concerns, groups with their numbers, and documents due for review."""
    db = get_session()
    school = this_school()
    return render_template(
        "school/dashboard.html", school=school, groups=staff.group_summaries(db, school),
        documents=staff.documents(db, school, policies.uk_today()), titles=DOCUMENT_TITLES,
        new_concerns=concerns.new_count(db, school),
    )
