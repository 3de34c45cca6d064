"""Publishing documents, their history and diffs."""

from . import access  # noqa: F401, I001  (loaded first: staff only, own school only)

from flask import abort, flash, redirect, render_template, url_for
from flask_login import current_user

from .. import policies, staff
from ..db import get_session
from ..models import DOCUMENT_TITLES, DocumentKind, PolicyVersion
from . import bp
from .access import this_school
from .policy_forms import PublishPolicyForm


def load_kind(kind: str) -> DocumentKind:
    """The document kind named in the URL; 404 for anything else."""
    try:
        return DocumentKind(kind)
    except ValueError:
        abort(404)


def load_version(kind: str, number: int) -> PolicyVersion:
    """One numbered version of this school's document; 404 if there is none."""
    try:
        return policies.version_of(get_session(), this_school().id, load_kind(kind), number)
    except policies.NoPolicy:
        abort(404)


@bp.route("/policies")
def list_policies():
    """The three documents: current version, when published, when due for review."""
    school = this_school()
    return render_template(
        "school/policies.html", school=school, titles=DOCUMENT_TITLES,
        documents=staff.documents(get_session(), school, policies.uk_today()),
    )


@bp.route("/policies/<kind>")
def policy_history(kind: str):
    """Every version of a document, newest first, with what changed."""
    document = load_kind(kind)
    return render_template(
        "school/policy_history.html", school=this_school(), kind=document, title=DOCUMENT_TITLES[document],
        versions=policies.history(get_session(), this_school().id, document),
    )


@bp.route("/policies/<kind>/<int:number>")
def show_policy(kind: str, number: int):
    """One version as members read it, with its SHA-256."""
    version = load_version(kind, number)
    return render_template(
        "school/policy_show.html", school=this_school(), version=version, html=policies.render(version.text),
    )


@bp.route("/policies/<kind>/<int:number>/diff")
def policy_diff(kind: str, number: int):
    """What changed from the version before, line by line."""
    version = load_version(kind, number)
    if number < 2:
        abort(404)  # the first version has nothing before it
    before = load_version(kind, number - 1)
    return render_template(
        "school/policy_diff.html", school=this_school(), version=version, before=before,
        hunks=policies.diff(before.text, version.text),
    )


@bp.route("/policies/<kind>/new", methods=["GET", "POST"])
def publish_policy(kind: str):
    """Publish a new version: the text, material or minor, a change note and a review date."""
    document = load_kind(kind)
    db = get_session()
    school = this_school()
    try:
        latest = policies.current(db, school.id, document)
    except policies.NoPolicy:
        latest = None
    form = PublishPolicyForm()
    if form.validate_on_submit():
        try:
            published = policies.publish_from_staff(
                db, school, current_user, document, form.text.data, form.is_material, form.change_note.data,
                form.review_due.cleaned, based_on=form.based_on.data,
            )
        except policies.PublishRefused as refused:
            db.rollback()
            for name, message in refused.errors.items():
                form[name].errors.append(message)
        else:
            db.commit()
            flash(_published_message(published))
            return redirect(url_for(".show_policy", kind=kind, number=published.version.number), 303)
    elif not form.is_submitted():
        form.text.data = latest.text if latest else ""
    # Always name the version on screen now; a refusal has already said if it changed.
    form.based_on.data, form.based_on.raw_data = (latest.number if latest else None), None
    return render_template(
        "school/policy_publish.html", school=school, kind=document, title=DOCUMENT_TITLES[document],
        latest=latest, form=form,
    ), 400 if form.errors else 200


def _published_message(published: policies.Published) -> str:
    """What staff are told after publishing: who, if anyone, was asked to agree again."""
    version = published.version
    done = f"Version {version.number} of the {version.title} is published."
    if not version.material:
        return f"{done} It is a minor change, so nobody is asked to agree again."
    who = "moderator" if version.kind == DocumentKind.MODERATOR_NOTICE else "member"
    count = published.emailed
    people = f"{count} {who}{'' if count == 1 else 's'} {'has' if count == 1 else 'have'}"
    return f"{done} {people} been emailed to read it and agree again."
