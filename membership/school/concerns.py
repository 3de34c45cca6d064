"""The staff concerns inbox: the list, one concern with its history, and where concerns are sent."""

from . import access  # noqa: F401, I001  (loaded first: staff only, own school only)

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import EmailField, RadioField, TextAreaField, URLField
from wtforms.fields.choices import SelectChoice

from .. import concerns
from ..db import get_session
from ..models import CONCERN_STATUS_LABELS, ConcernStatus
from ..urls import external_url
from . import bp
from .access import load_concern, this_school


class StatusForm(FlaskForm):
    """Where a concern stands, and an optional note; the rules are in membership.concerns."""

    status = RadioField(
        "Where does the concern stand?", validate_choice=False,
        choices=[SelectChoice(s.value, CONCERN_STATUS_LABELS[s]) for s in ConcernStatus],
    )
    note = TextAreaField("Note (optional)")


class SettingsForm(FlaskForm):
    """Where concerns are emailed, and the link to the school's complaints procedure."""

    concerns_email = EmailField("Email address for concerns")
    complaints_url = URLField("Link to the school’s complaints procedure (optional)")


def _show_errors(form: FlaskForm, invalid: concerns.ConcernInvalid) -> None:
    """Put the domain's messages on the form fields they belong to."""
    for field, message in invalid.errors.items():
        form[field].errors.append(message)


@bp.route("/concerns", endpoint="concerns")
def list_concerns():
    """The school's concerns, newest first, by status, fifty to a page."""
    school = this_school()
    status = request.args.get("status", "all")
    status = status if status in concerns.FILTERS else "all"
    page = concerns.inbox_page(get_session(), school, status=status, page=request.args.get("page", 1, type=int) or 1)
    query = {"status": status} if status != "all" else {}
    return render_template(
        "school/concerns.html", school=school, page=page, filters=concerns.FILTERS,
        public_url=external_url("concerns.raise_concern", slug=school.slug),
        previous_url=url_for(".concerns", **query, page=page.page - 1) if page.has_previous else None,
        next_url=url_for(".concerns", **query, page=page.page + 1) if page.has_next else None,
    )


@bp.route("/concerns/<int:concern_id>", methods=["GET", "POST"])
def show_concern(concern_id: int):
    """One concern in full: what happened, how to reach the sender, its history, and a status change."""
    concern = load_concern(concern_id)
    db = get_session()
    form = StatusForm()
    if form.validate_on_submit():
        before = concern.status
        try:
            update = concerns.change_status(db, concern, current_user, form.status.data, form.note.data)
        except concerns.ConcernInvalid as invalid:
            db.rollback()
            _show_errors(form, invalid)
        else:
            db.commit()
            ref = concerns.reference(concern.id)
            if update.status != before:
                flash(f"{ref} is now {concerns.status_label(update.status).lower()}.")
            else:
                flash(f"Your note has been added to {ref}.")
            return redirect(url_for(".show_concern", concern_id=concern.id), 303)
    if not form.is_submitted():
        form.status.data = concern.status
    return render_template(
        "school/concern.html", school=this_school(), item=concerns.view(db, concern), form=form,
    ), 400 if form.errors else 200


@bp.route("/concerns/settings", methods=["GET", "POST"])
def concern_settings():
    """Where concerns are emailed, and the complaints procedure the public page links to."""
    school = this_school()
    db = get_session()
    form = SettingsForm()
    if form.validate_on_submit():
        try:
            changed = concerns.update_settings(db, school, form.concerns_email.data, form.complaints_url.data)
        except concerns.ConcernInvalid as invalid:
            db.rollback()
            _show_errors(form, invalid)
        else:
            db.commit()
            flash("The concerns page has been updated." if changed else "Nothing was changed.")
            return redirect(url_for(".concerns"), 303)
    elif not form.is_submitted():
        form.concerns_email.data = school.concerns_email
        form.complaints_url.data = school.complaints_url or ""
    return render_template(
        "school/concern_settings.html", school=school, form=form,
        public_url=external_url("concerns.raise_concern", slug=school.slug),
    ), 400 if form.errors else 200
