"""Class lists, codes, letters, carer invitations and blocks."""

from . import access  # noqa: F401, I001  (loaded first: staff only, own school only)

from flask import Response, abort, current_app, flash, redirect, render_template, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import HiddenField, StringField, TextAreaField

from .. import letters
from ..db import get_session
from ..staff import roster as operations
from . import bp
from .access import load_child, this_school

# Forms live beside their views: each is a CSRF token and one or two fields, and the rules
# (what a valid number of uses, email or reason is) live in membership.staff.roster.


class ImportForm(FlaskForm):
    """The class list file."""

    file = FileField("CSV file", validators=[FileRequired("Choose a CSV file to upload")])


class ActionForm(FlaskForm):
    """A button and its CSRF token."""


class UsesForm(FlaskForm):
    """How many carers the child's code lets in."""

    uses = StringField("Number of carers who can use the code")


class InviteForm(FlaskForm):
    """Carers' email addresses for personal invitations."""

    emails = TextAreaField("Email addresses")


class BlockForm(FlaskForm):
    """A carer email to bar from joining through this child, and why."""

    email = StringField("Carer's email address")
    reason = TextAreaField("Reason (for the school's records only)")


class LiftForm(FlaskForm):
    """Which block to lift (the domain checks it is one of this child's)."""

    block_id = HiddenField()


class LettersForm(FlaskForm):
    """The letters token that the PDF download posts back (see membership.letters)."""

    letters = HiddenField()


def _roster_page(form: ImportForm, status: int = 200, errors: list[tuple[int, str]] | None = None):
    """The class lists and the upload form, with any bad lines of a refused file."""
    school = this_school()
    return render_template(
        "school/roster.html", school=school, form=form, errors=errors or [],
        lists=operations.class_lists(get_session(), school),
    ), status


def _letters_page(issued: list[letters.Issued], heading: str, invitations: int = 0):
    """The codes just made, shown this once, as the letters' print view with a PDF download."""
    school = this_school()
    return render_template(
        "school/import_result.html", school=school, heading=heading, invitations=invitations,
        letters=letters.letters(school, issued),
        token=letters.seal(school.id, current_user.id, issued), pdf_form=LettersForm(),
        max_age_minutes=letters.LETTERS_MAX_AGE // 60,
    )


@bp.route("/roster")
def roster():
    """Children by group with the state of each one's code, and the upload form."""
    return _roster_page(ImportForm())


@bp.route("/roster/import", methods=["POST"])
def import_roster():
    """Import a CSV: all of it with a letter per child, or nothing and a list of the bad lines."""
    form = ImportForm()
    if not form.validate_on_submit():
        return _roster_page(form, 400)
    db = get_session()
    try:
        imported = operations.import_file(db, this_school(), form.file.data.read())
    except operations.BadFile as bad:
        db.rollback()
        return _roster_page(form, 400, bad.errors)
    db.commit()
    count = len(imported.issued)
    return _letters_page(
        imported.issued, f"{count} {'child' if count == 1 else 'children'} added", imported.invitations
    )


@bp.route("/letters.pdf", methods=["POST"])
def letters_pdf():
    """The letters of the page that posted this, as a PDF: only codes still current are printed."""
    form = LettersForm()
    if not form.validate_on_submit():
        abort(400)
    school = this_school()
    try:
        pairs = letters.unseal(form.letters.data, school.id, current_user.id)
    except letters.LettersExpired:
        return render_template(
            "errors/generic.html", title="These letters can no longer be downloaded",
            message="The PDF can be downloaded for an hour after the codes are made. Print the letters from "
                    "the page instead, or make new codes from each child's page.",
        ), 410
    except letters.LettersInvalid:
        # Only a changed page or a forged request gets here: say so rather than show a bare error.
        return render_template(
            "errors/generic.html", title="These letters cannot be downloaded",
            message="The download did not come from a page of letters. Go back to the class lists and try again.",
        ), 400
    found = letters.reprint(get_session(), school, pairs)
    if not found:
        return render_template(
            "errors/generic.html", title="These codes have been replaced",
            message="Every code on that page has since been replaced by a new one, so there is nothing to print.",
        ), 410
    return Response(
        letters.pdf(found), mimetype="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="letters-{school.slug}.pdf"'},
    )


# --- One child ---------------------------------------------------------------------------------------


def _child_page(child_id: int, status: int = 200, failed: FlaskForm | None = None, **forms):
    """The child's page; a refused form is shown with its errors in place of a fresh one."""
    child, group = load_child(child_id)
    forms = {"uses_form": UsesForm(), "invite_form": InviteForm(), "block_form": BlockForm(), **forms}
    return render_template(
        "school/child.html", school=this_school(), page=operations.child_page(get_session(), child, group),
        failed=failed, action_form=ActionForm(), lift_form=LiftForm(), **forms,
    ), status


def _to_child(child_id: int):
    """Back to the child's page, after a POST."""
    return redirect(url_for(".child_page", child_id=child_id), 303)


@bp.route("/children/<int:child_id>")
def child_page(child_id: int):
    """A child's code, personal invitations, blocks and the carers who joined through them."""
    return _child_page(child_id)


@bp.route("/children/<int:child_id>/code", methods=["POST"])
def regenerate_code(child_id: int):
    """Cancel the child's code at once and show the new one, this once, with its letter."""
    child, group = load_child(child_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    db = get_session()
    issued = operations.regenerate_code(db, child, group, current_user)
    db.commit()
    return _letters_page([issued], f"New code for {child.display_name}")


@bp.route("/children/<int:child_id>/uses", methods=["POST"])
def set_uses(child_id: int):
    """Change how many carers can use the child's code."""
    child, group = load_child(child_id)
    form = UsesForm()
    if not form.validate_on_submit():
        abort(400)
    db = get_session()
    try:
        before, after = operations.set_uses(db, child, group, current_user, form.uses.data)
    except operations.BadInput as bad:
        db.rollback()
        form[bad.field].errors.append(str(bad))
        return _child_page(child_id, 400, form, uses_form=form)
    db.commit()
    flash(f"{after} carers can now use {child.display_name}'s code." if after != before
          else f"{child.display_name}'s code already allows {after} carers: nothing has changed.")
    return _to_child(child_id)


@bp.route("/children/<int:child_id>/invitations", methods=["POST"])
def invite_carers(child_id: int):
    """Email carers on the school's records a personal, single-use invitation for this child."""
    child, group = load_child(child_id)
    form = InviteForm()
    if not form.validate_on_submit():
        abort(400)
    db = get_session()
    try:
        sent = operations.invite_carers(db, child, group, form.emails.data)
    except operations.BadInput as bad:
        db.rollback()
        form[bad.field].errors.append(str(bad))
        return _child_page(child_id, 400, form, invite_form=form)
    db.commit()
    days = current_app.config["CARER_INVITATION_DAYS"]
    flash(f"A personal invitation has been emailed to {', '.join(sent)}. It works once, for {days} days.")
    return _to_child(child_id)


@bp.route("/children/<int:child_id>/blocks", methods=["POST"])
def block_carer(child_id: int):
    """Stop an email address joining through this child and cancel its invitations."""
    child, group = load_child(child_id)
    form = BlockForm()
    if not form.validate_on_submit():
        abort(400)
    db = get_session()
    try:
        blocked = operations.block_carer(db, child, group, current_user, form.email.data, form.reason.data)
    except operations.BadInput as bad:
        db.rollback()
        form[bad.field].errors.append(str(bad))
        return _child_page(child_id, 400, form, block_form=form)
    db.commit()
    message = f"{blocked.block.email} can no longer join through {child.display_name}."
    if blocked.invitations_cancelled:
        message += " Their personal invitation has been cancelled."
    flash(message)
    if blocked.already_joined:
        flash(f"{blocked.block.email} has already joined or started to join {group.name} through "
              f"{child.display_name}: ask the group's moderators to remove them.", "error")
    return _to_child(child_id)


@bp.route("/children/<int:child_id>/blocks/lift", methods=["POST"])
def lift_block(child_id: int):
    """Lift a block: that email can join through this child again."""
    child, group = load_child(child_id)
    form = LiftForm()
    if not form.validate_on_submit():
        abort(400)
    db = get_session()
    try:
        block = operations.lift_block(db, child, group, current_user, form.block_id.data)
    except operations.BadInput as bad:
        db.rollback()
        flash(str(bad), "error")
        return _to_child(child_id)
    db.commit()
    flash(f"The block on {block.email} has been lifted.")
    return _to_child(child_id)
