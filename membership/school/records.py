"""Acceptance records, CSV export and the ledger check."""

from . import access  # noqa: F401, I001  (loaded first: staff only, own school only)

import csv
import io
from collections.abc import Iterator

from flask import Response, render_template, request, stream_with_context, url_for
from flask_wtf import FlaskForm
from sqlmodel import select

from .. import incidents, ledger, records
from ..db import get_session, new_session
from ..models import DOCUMENT_TITLES, INCIDENT_LABELS, Group, utcnow
from ..validation import has_control
from . import bp
from .access import load_group, load_membership, this_school

CHUNK = 64 * 1024  # rows are gathered into chunks of about this many characters before being sent


class CheckForm(FlaskForm):
    """The ledger check's button and its CSRF token."""


def _group_from_query() -> Group | None:
    """The group named by ?group=<slug>, 404 when it is not this school's; None for the whole school."""
    slug = request.args.get("group", "").strip()
    return load_group(slug) if slug else None


def _search_term(raw: str) -> str:
    """The name searched for, less any control characters (no stored name has one), as long as the box allows."""
    return "".join(ch for ch in raw if not has_control(ch)).strip()[: records.SEARCH_MAX]


@bp.route("/records", endpoint="records")
def list_records():
    """Who agreed to which version and when, filtered, searched and fifty to a page."""
    db = get_session()
    school = this_school()
    group = _group_from_query()
    show = request.args.get("show", "")
    show = show if show in records.FILTERS else ""
    search = _search_term(request.args.get("q", ""))
    page_number = request.args.get("page", 1, type=int) or 1
    page = records.record_page(db, school, group=group, show=show, search=search, page=page_number)
    groups = db.exec(select(Group).where(Group.school_id == school.id).order_by(Group.name)).all()
    query = {k: v for k, v in (("group", group.slug if group else ""), ("show", show), ("q", search)) if v}
    return render_template(
        "school/records.html", school=school, page=page, group=group, groups=groups, show=show, search=search,
        filters=records.FILTERS, query=query,
        previous_url=url_for(".records", **query, page=page.page - 1) if page.has_previous else None,
        next_url=url_for(".records", **query, page=page.page + 1) if page.has_next else None,
        export_url=url_for(".export_records", **({"group": group.slug} if group else {})),
    )


@bp.route("/records/<int:membership_id>")
def person_record(membership_id: int):
    """One person's record in one group: the school's incident log and every entry the ledger holds about them."""
    membership, _group = load_membership(membership_id)
    school = this_school()
    db = get_session()
    return render_template(
        "school/person_record.html", school=school, record=records.person_record(db, school, membership),
        titles=DOCUMENT_TITLES, incidents=incidents.incident_log(db, school, membership),
        incident_labels=INCIDENT_LABELS,
    )


@bp.route("/records.csv")
def export_records():
    """The ledger as CSV, streamed row by row so any size of ledger takes the same memory."""
    school = this_school()
    group = _group_from_query()
    now = utcnow()

    def generate() -> Iterator[str]:
        """CSV text in chunks, read through a session of its own that lives as long as the download."""
        # A byte-order mark, so Excel opens names with accents correctly.
        buffer = io.StringIO("\ufeff")
        buffer.seek(0, io.SEEK_END)
        writer = csv.writer(buffer, lineterminator="\r\n")
        session = new_session()
        try:
            for row in records.export_rows(session, school, group, now):
                writer.writerow(row)
                if buffer.tell() >= CHUNK:
                    yield buffer.getvalue()
                    buffer.seek(0)
                    buffer.truncate(0)
            yield buffer.getvalue()
        finally:
            session.close()

    filename = records.export_filename(school, group, now)
    return Response(
        stream_with_context(generate()), mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@bp.route("/ledger", methods=["GET", "POST"])
def ledger_check():
    """Check the school's hash chain on request: intact, or the first entry that does not fit."""
    form = CheckForm()
    result = None
    if form.validate_on_submit():
        school = this_school()
        # The request's writing session would hold SQLite's write lock through a long check: end it,
        # and read the chain in a session of its own.
        get_session().commit()
        session = new_session()
        try:
            result = ledger.verify(session, school.id)
        finally:
            session.close()
    return render_template("school/ledger.html", school=this_school(), form=form, result=result)
