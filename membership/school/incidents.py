"""Recording an action the school took about a member, for the incident log on their record."""

from . import access  # noqa: F401, I001  (loaded first: staff only, own school only)

from flask import flash, redirect, render_template, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import RadioField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice

from .. import concerns, incidents, policies
from ..db import get_session
from ..models import INCIDENT_LABELS, IncidentAction, Person
from ..moderation import ACTIVE
from . import bp
from .access import load_membership, this_school


class IncidentForm(FlaskForm):
    """What the school did, when, who decided, a note and a related concern; the rules are in membership.incidents."""

    # The domain checks the choices, so a forged value gets its message rather than WTForms' own.
    action = RadioField(
        "What did the school do?", validate_choice=False,
        choices=[SelectChoice(a.value, INCIDENT_LABELS[a]) for a in IncidentAction],
    )
    day = StringField("Day")
    month = StringField("Month")
    year = StringField("Year")
    decided_by = StringField("Who decided?")
    note = TextAreaField("Note (optional)")
    concern = SelectField("Which concern does it relate to? (optional)", validate_choice=False)

    def details(self) -> incidents.IncidentDetails:
        """What was typed, for the domain to check."""
        return incidents.IncidentDetails(
            self.action.data or "", self.day.data or "", self.month.data or "", self.year.data or "",
            self.decided_by.data or "", self.note.data or "", self.concern.data or "",
        )


@bp.route("/records/<int:membership_id>/incidents/new", methods=["GET", "POST"])
def new_incident(membership_id: int):
    """Record an action about a member; 'removed from the group' also removes a current member."""
    membership, group = load_membership(membership_id)
    school = this_school()
    db = get_session()
    form = IncidentForm()
    form.concern.choices = [("", "Not linked to a concern"), *concerns.concern_choices(db, school)]
    if form.validate_on_submit():
        try:
            recorded = incidents.record(db, school, membership, current_user, form.details(), policies.uk_today())
        except incidents.IncidentInvalid as invalid:
            db.rollback()
            for field, message in invalid.errors.items():
                form[field].errors.append(message)
        else:
            db.commit()
            label = INCIDENT_LABELS[IncidentAction(recorded.incident.action)]
            message = f"‘{label}’ has been added to the incident log."
            if recorded.removed:
                message += (" They have been removed from the group, and the moderators have been asked to "
                            "take them out of the chat.")
            flash(message)
            return redirect(url_for(".person_record", membership_id=membership.id), 303)
    elif not form.is_submitted():
        today = policies.uk_today()
        form.day.data, form.month.data, form.year.data = str(today.day), str(today.month), str(today.year)
        form.decided_by.data = incidents.default_decided_by(current_user)
    person = db.get(Person, membership.person_id)
    return render_template(
        "school/incident_new.html", school=school, form=form, membership=membership, group=group,
        name=person.name or "Details erased", active=membership.status in ACTIVE,
        removal_label=INCIDENT_LABELS[IncidentAction.REMOVED_FROM_GROUP],
        date_error=form.day.errors or form.month.errors or form.year.errors,
    ), 400 if form.errors else 200
