"""Groups and moderators."""

from . import access  # noqa: F401, I001  (loaded first: staff only, own school only)

from flask import abort, flash, redirect, render_template, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlmodel import select
from wtforms import BooleanField, EmailField, RadioField, StringField, TextAreaField, URLField
from wtforms.fields.choices import SelectChoice

from .. import schools
from ..db import get_session
from ..models import PLATFORM_LABELS, Group, Platform
from ..staff import groups as operations
from ..urls import external_url
from . import bp
from .access import load_group, load_user, this_school


class GroupForm(FlaskForm):
    """A group's details; the rules are in membership.staff.groups, the form only carries the fields."""

    name = StringField("Class or year group name")
    description = TextAreaField("What the group is for (optional)")
    academic_year = StringField("Academic year")
    # The domain checks the choice, so a forged value gets its message rather than WTForms' own.
    platform = RadioField(
        "Where is the group chat?", validate_choice=False,
        choices=[SelectChoice(p.value, "Other" if p == Platform.OTHER else PLATFORM_LABELS[p]) for p in Platform],
    )
    chat_url = URLField("Chat link (optional)")
    requires_approval = BooleanField("A moderator approves every parent before they get a link")

    def details(self) -> operations.GroupDetails:
        """What was typed, for the domain to check."""
        return operations.GroupDetails(
            self.name.data or "", self.description.data or "", self.academic_year.data or "",
            self.platform.data or "", self.chat_url.data or "", bool(self.requires_approval.data),
        )


class AppointForm(FlaskForm):
    """Who to appoint as a moderator."""

    email = EmailField("Email address")
    name = StringField("Full name")


class StandDownForm(FlaskForm):
    """A stand-down button and its CSRF token."""


def _show_errors(form: FlaskForm, invalid: operations.GroupInvalid) -> None:
    """Put the domain's messages on the form fields they belong to."""
    for field, message in invalid.errors.items():
        form[field].errors.append(message)


@bp.route("/groups")
def list_groups():
    """Every group of the school with its moderators, in two statements."""
    db = get_session()
    school = this_school()
    groups = db.exec(select(Group).where(Group.school_id == school.id).order_by(Group.name)).all()
    by_group: dict[int, list] = {g.id: [] for g in groups}
    for row in operations.moderators(db, list(by_group)):
        by_group[row.group_id].append(row)
    return render_template(
        "school/groups.html", school=school, groups=groups, moderators=by_group,
        join_urls={g.id: external_url("join.join_group", slug=g.slug) for g in groups},
    )


@bp.route("/groups/new", methods=["GET", "POST"])
def new_group():
    """Add a group; its join URL is made from the name and never changes."""
    db = get_session()
    form = GroupForm()
    if form.validate_on_submit():
        try:
            group = operations.create_group(db, this_school(), current_user, form.details())
        except operations.GroupInvalid as invalid:
            db.rollback()
            _show_errors(form, invalid)
        except operations.Refused as refused:
            db.rollback()
            form.name.errors.append(str(refused))
        else:
            db.commit()
            flash(f"{group.name} has been added. Next, appoint its moderators.")
            return redirect(url_for(".appoint_moderator", slug=group.slug), 303)
    elif not form.is_submitted():
        form.academic_year.data = schools.academic_year()
        form.platform.data = Platform.WHATSAPP.value
    return render_template(
        "school/group_form.html", school=this_school(), form=form, group=None,
    ), 400 if form.errors else 200


@bp.route("/groups/<slug>/edit", methods=["GET", "POST"])
def edit_group(slug: str):
    """Change a group's details; its slug, printed on the school's letters, stays."""
    group = load_group(slug)
    db = get_session()
    form = GroupForm()
    if form.validate_on_submit():
        try:
            changed = operations.update_group(db, group, current_user, form.details())
        except operations.GroupInvalid as invalid:
            db.rollback()
            _show_errors(form, invalid)
        else:
            db.commit()
            flash(f"{group.name} has been updated." if changed else "Nothing was changed.")
            return redirect(url_for(".list_groups"), 303)
    elif not form.is_submitted():
        form.process(data=vars(operations.details_of(group)))
    return render_template(
        "school/group_form.html", school=this_school(), form=form, group=group,
        join_url=external_url("join.join_group", slug=group.slug),
    ), 400 if form.errors else 200


@bp.route("/groups/<slug>/moderators", methods=["GET", "POST"])
def appoint_moderator(slug: str):
    """A group's moderators: appoint one by email (a new account gets a set-password email), or stand one down."""
    group = load_group(slug)
    db = get_session()
    form = AppointForm()
    if form.validate_on_submit():
        try:
            appointed = operations.appoint(db, this_school(), group, current_user, form.email.data, form.name.data)
        except operations.GroupInvalid as invalid:
            db.rollback()
            _show_errors(form, invalid)
        except operations.Refused as refused:
            db.rollback()
            flash(str(refused), "error")
            return redirect(url_for(".appoint_moderator", slug=slug), 303)
        else:
            db.commit()
            who = appointed.user.name or appointed.user.email
            flash(
                f"{who} is now a moderator of {group.name}. We have emailed them a link to choose a password."
                if appointed.new_account else f"{who} is now a moderator of {group.name} too. We have emailed them."
            )
            return redirect(url_for(".appoint_moderator", slug=slug), 303)
    return render_template(
        "school/appoint.html", school=this_school(), group=group, form=form,
        moderators=operations.moderators(db, [group.id]),
    ), 400 if form.errors else 200


@bp.route("/groups/<slug>/moderators/<int:user_id>/stand-down", methods=["POST"])
def stand_down(slug: str, user_id: int):
    """Stand a moderator down from this group; they see nothing of it from now on."""
    group = load_group(slug)
    moderator = load_user(user_id)
    if not StandDownForm().validate_on_submit():
        abort(400)
    db = get_session()
    try:
        operations.stand_down(db, group, current_user, moderator)
    except operations.Refused as refused:
        db.rollback()
        flash(str(refused), "error")
    else:
        db.commit()
        flash(f"{moderator.name or moderator.email} is no longer a moderator of {group.name}. "
              "Remember to remove them as an admin in the chat itself.")
    return redirect(url_for(".appoint_moderator", slug=slug), 303)
