"""Thin views for the parent journey; the rules live in membership.journey."""

from __future__ import annotations

from flask import abort, current_app, flash, redirect, render_template, request, session, url_for

from .. import codes, journey, policies, tokens
from ..db import get_session, reads_on_post, writes_on_get
from ..extensions import limiter
from ..models import (
    CarerInvitation,
    Child,
    Group,
    GroupView,
    Membership,
    PolicyVersion,
    School,
    SchoolView,
    Status,
    Verification,
)
from ..schools import group_and_school, group_with_code
from ..states import IllegalTransition
from . import bp
from .forms import AgreeForm, CodeForm, ConfirmForm, DetailsForm, NoCodeForm

# One message for wrong, unknown, revoked and used-up codes: it never says which.
CODE_REFUSED = "That code was not accepted. Check it against the school letter and try again"


def _only_failures(response) -> bool:
    """Count a code attempt against the limits only when it was refused.

    A request already turned away by a limit (429) is not an attempt: counting it would let one
    paused phone, by simply carrying on, use up the whole group's allowance and lock every other
    parent in the class out.
    """
    return response.status_code not in (303, 429)


def _group_key() -> str:
    return f"group:{request.view_args.get('slug', '')}"


def _client_limit() -> str:
    return current_app.config["CODE_LIMIT_PER_CLIENT"]


def _group_limit() -> str:
    return current_app.config["CODE_LIMIT_PER_GROUP"]


def _mail_limit() -> str:
    return current_app.config["MAIL_LIMIT_PER_CLIENT"]


def load_group(slug: str) -> tuple[GroupView, SchoolView]:
    """The group a join URL names, with its school, as rows to show; 404 when there is none."""
    found = group_and_school(get_session(), slug)
    if found is None:
        abort(404)
    return found


def _journey(group: Group | GroupView) -> dict:
    """This browser's progress through this group's journey (a signed cookie)."""
    data = session.get("journey") or {}
    return data if data.get("g") == group.id else {}


def _save_journey(group: Group | GroupView, **values) -> None:
    """Record progress; an earlier unconfirmed start in this browser is remembered as `prev`."""
    earlier = _journey(group).get("mid") or _journey(group).get("prev")
    if earlier and "mid" not in values:
        values["prev"] = earlier
    session["journey"] = {"g": group.id, **values}


def load_progress(slug: str, *, lock: bool = False, documents: bool = False) -> tuple[
    Group | GroupView, School | SchoolView, Membership | None, tuple[PolicyVersion, PolicyVersion] | None
]:
    """The group a join URL names, its school, and the membership this browser started in it (or None).

    One statement for a browser that holds a membership in the group, two for one that does not;
    404 when there is no such group. With lock, the membership is read under a row lock; with
    documents, the current code of conduct and data notice are read too (for a membership).
    """
    membership_id = (session.get("journey") or {}).get("mid")
    if isinstance(membership_id, int):
        found = journey.progress(get_session(), slug, membership_id, lock=lock, documents=documents)
        if found is not None and _journey(found[0]).get("mid") == membership_id:
            return found
    group, school = load_group(slug)
    return group, school, None, None


def _next_step(group: Group | GroupView, membership: Membership):
    """Where a parent who has got this far belongs."""
    status = Status(membership.status)
    if status == Status.DETAILS_GIVEN:
        return redirect(url_for(".check_email", slug=group.slug))
    if status == Status.EMAIL_VERIFIED:
        return redirect(url_for(".agree", slug=group.slug))
    if status == Status.PENDING_APPROVAL:
        return redirect(url_for(".waiting", slug=group.slug))
    return redirect(url_for(".done", slug=group.slug))


@bp.route("/<slug>", methods=["GET", "POST"])
@limiter.limit(_client_limit, methods=["POST"], deduct_when=_only_failures)
@limiter.limit(_group_limit, key_func=_group_key, methods=["POST"], deduct_when=_only_failures)
@reads_on_post  # the code is only looked up; its use is taken later, with the parent's details
def join_group(slug: str):
    """Step 1 and 2: the group's join page, taking the code from the school letter."""
    form = CodeForm()
    if form.validate_on_submit():
        # The group, its school and the code typed, in one statement.
        found = group_with_code(get_session(), slug, form.code.data)
        if found is None:
            abort(404)
        group, school, code = found
        if code is not None:
            _save_journey(group, m=Verification.CODE.value, c=code.id)
            return redirect(url_for(".your_details", slug=slug), 303)
        form.code.errors.append(CODE_REFUSED)
    else:
        group, school = load_group(slug)
    status = 400 if form.errors else 200
    return render_template("join/join_group.html", group=group, school=school, form=form), status


@bp.route("/<slug>/no-code", methods=["GET", "POST"])
@limiter.limit(_client_limit, methods=["POST"])
def no_code(slug: str):
    """Step 2 without a code: name the child; a moderator will check before any invite."""
    group, school = load_group(slug)
    form = NoCodeForm()
    if form.validate_on_submit():
        _save_journey(group, m=Verification.NONE.value, n=form.child_name.cleaned)
        return redirect(url_for(".your_details", slug=slug), 303)
    status = 400 if form.errors else 200
    return render_template("join/no_code.html", group=group, school=school, form=form), status


@bp.route("/<slug>/invitation/<token>")
def use_invitation(slug: str, token: str):
    """A personal invitation link from the school: checked here, used up at the details step."""
    group, school = load_group(slug)
    reason = "invalid"
    try:
        payload = tokens.load("carer-invitation", token)
        invitation = get_session().get(CarerInvitation, payload.get("c")) if isinstance(payload.get("c"), int) else None
        child = get_session().get(Child, invitation.child_id) if invitation else None
        genuine = invitation is not None and tokens.nonce_matches(payload.get("n"), invitation.nonce_hash)
        if genuine and child is not None and child.group_id == group.id:
            reason = journey.invitation_problem(invitation)
            if reason is None:
                _save_journey(group, m=Verification.INVITATION.value, i=invitation.id)
                return redirect(url_for(".your_details", slug=slug))
    except tokens.TokenExpired:
        reason = "expired"
    except tokens.TokenInvalid:
        reason = "invalid"
    return _invitation_unusable(group, school, reason)


def _invitation_unusable(group: Group | GroupView, school: School | SchoolView, reason: str):
    """The page for a personal invitation that cannot be used: 404 if it is not one of ours, else 410."""
    return (
        render_template("join/invitation_unusable.html", group=group, school=school, reason=reason),
        404 if reason == "invalid" else 410,
    )


@bp.route("/<slug>/details", methods=["GET", "POST"])
def your_details(slug: str):
    """Step 3: name, relationship, email and optional mobile; the code use is taken here."""
    group, school = load_group(slug)
    progress = _journey(group)
    if not progress.get("m"):
        flash("Start by entering the code from the school letter, or choose to join without a code.")
        return redirect(url_for(".join_group", slug=slug))
    db = get_session()
    invitation = db.get(CarerInvitation, progress["i"]) if progress.get("i") else None
    form = DetailsForm()
    if invitation is not None:
        # The invited address is the one the school vouched for: whatever comes back in the
        # read-only box (edited, emptied or forged) is ignored, and the page always shows it.
        form.email.data = invitation.email
    if form.validate_on_submit():
        proof = journey.Proof(
            Verification(progress["m"]), code_id=progress.get("c"), invitation_id=progress.get("i"),
            claimed_child_name=progress.get("n"), replaces=progress.get("prev"),
        )
        email = invitation.email if invitation is not None else form.email.cleaned
        try:
            membership = journey.start(
                db, group, proof, name=form.name.cleaned, relationship=form.relationship.data,
                email=email, mobile=form.mobile.cleaned,
            )
        except codes.CodeRefused:
            db.rollback()
            session.pop("journey", None)
            flash(CODE_REFUSED, "error")
            return redirect(url_for(".join_group", slug=slug), 303)
        except journey.Blocked:
            # Removed from this group by a moderator: a clear answer, nothing kept, no code use taken.
            db.rollback()
            session.pop("journey", None)
            return render_template("join/blocked.html", group=group, school=school), 403
        except journey.CarerBlocked:
            # Barred by the school for this child: the page never says why, and nothing is kept.
            db.rollback()
            session.pop("journey", None)
            return render_template("join/carer_blocked.html", group=group, school=school), 403
        except journey.InvitationUnusable as unusable:
            db.rollback()
            session.pop("journey", None)
            return _invitation_unusable(group, school, unusable.reason)
        except journey.AlreadyStarted as started:
            # Say nothing to this browser about that email; tell the mailbox's owner instead. The
            # answer is the same redirect to the same 'Check your email' page as a first start,
            # but this browser is given no hold on the membership (it may not be its owner's).
            journey.send_continue(db, group, started.membership)
            db.commit()
            _save_journey(group, sent_to=email)
            return redirect(url_for(".check_email", slug=slug))
        db.commit()
        _save_journey(group, mid=membership.id, sent_to=email)
        return _next_step(group, membership)
    status = 400 if form.errors else 200
    return render_template(
        "join/your_details.html", group=group, school=school, form=form, invitation=invitation,
        proof=progress,
    ), status


@bp.route("/<slug>/check-email", methods=["GET", "POST"])
@limiter.limit(_mail_limit, methods=["POST"])
def check_email(slug: str):
    """'We've sent you a link': the only way on is the link in the email."""
    group, school, membership, _ = load_progress(slug)
    progress = _journey(group)
    if not progress.get("sent_to"):
        return redirect(url_for(".join_group", slug=slug))
    form = ConfirmForm()
    # A browser that started again with an email already in the group holds no membership; it
    # gets the same page and button as a first start, and the button re-sends the 'continue'
    # email to that address's owner, so the page never tells whether the email was known.
    repeat_start = "mid" not in progress
    can_resend = repeat_start or (membership is not None and membership.status == Status.DETAILS_GIVEN)
    if form.validate_on_submit() and can_resend:
        db = get_session()
        if repeat_start:
            existing = journey.live_membership(db, group.id, progress["sent_to"])
            if existing is not None:
                journey.send_continue(db, group, existing)
        else:
            journey.send_verification(db, group, membership, db.get(journey.Person, membership.person_id))
        db.commit()
        flash("We have sent the email again.")
        return redirect(url_for(".check_email", slug=slug), 303)
    return render_template(
        "join/check_email.html", group=group, school=school, form=form, email=progress["sent_to"],
        can_resend=can_resend,
    )


@bp.route("/verify/<token>")
@writes_on_get
def verify_email(token: str):
    """The link in the 'confirm your email' message; it also carries the parent on to agree."""
    db = get_session()
    try:
        membership = journey.verify_email(db, token)
    except tokens.TokenExpired:
        return render_template("join/link_problem.html", reason="expired"), 410
    except tokens.TokenInvalid:
        return render_template("join/link_problem.html", reason="invalid"), 404
    except IllegalTransition:
        db.commit()  # keep the code use given back by a start found to be too old
        return render_template("join/link_problem.html", reason="expired"), 410
    db.commit()
    group = db.get(Group, membership.group_id)
    _save_journey(group, mid=membership.id, sent_to="your email")
    return _next_step(group, membership)


@bp.route("/<slug>/agree", methods=["GET", "POST"])
def agree(slug: str):
    """Step 4: both full texts on the page and two separate, unticked statements."""
    # Agreeing reads the membership under a lock, so the same form sent twice at once agrees once.
    group, school, membership, documents = load_progress(slug, lock=request.method == "POST", documents=True)
    if membership is None:
        flash("Start by entering the code from the school letter, or choose to join without a code.")
        return redirect(url_for(".join_group", slug=slug))
    if membership.status == Status.DETAILS_GIVEN:
        flash("Confirm your email address first: open the link we emailed you.", "error")
        return redirect(url_for(".check_email", slug=slug))
    if membership.status != Status.EMAIL_VERIFIED:
        return _next_step(group, membership)
    db = get_session()
    form = AgreeForm()
    if form.validate_on_submit():
        try:
            agreed = journey.agree(db, membership, form.coc_version.data, form.notice_version.data, documents)
        except journey.PolicyChanged:
            db.rollback()
            flash("The documents were updated while you were reading. Please read the new versions below.", "error")
            return redirect(url_for(".agree", slug=slug), 303)
        db.commit()
        if agreed.invite_token:
            return redirect(url_for("invite.show_invite", token=agreed.invite_token), 303)
        return redirect(url_for(".waiting", slug=slug), 303)
    coc, notice = documents
    # Always offer the versions shown on this page, even when re-showing a refused form whose
    # hidden fields named older ones (a field re-renders what was posted unless told otherwise).
    for hidden, version in ((form.coc_version, coc), (form.notice_version, notice)):
        hidden.data, hidden.raw_data = version.id, None
    status = 400 if form.errors else 200
    return render_template(
        "join/agree.html", group=group, school=school, form=form, coc=coc, notice=notice,
        coc_html=policies.render(coc.text), notice_html=policies.render(notice.text),
        coc_statement=policies.agreement_statement(coc), notice_statement=policies.agreement_statement(notice),
    ), status


@bp.route("/<slug>/waiting")
def waiting(slug: str):
    """Waiting for a moderator to approve the request."""
    group, school, membership, _ = load_progress(slug)
    if membership is None:
        return redirect(url_for(".join_group", slug=slug))
    if membership.status != Status.PENDING_APPROVAL:
        return _next_step(group, membership)
    return render_template("join/waiting.html", group=group, school=school, membership=membership)


@bp.route("/<slug>/done")
def done(slug: str):
    """Where a parent lands when they come back after the journey is over."""
    group, school, membership, _ = load_progress(slug)
    if membership is None:
        return redirect(url_for(".join_group", slug=slug))
    if membership.status in (Status.DETAILS_GIVEN, Status.EMAIL_VERIFIED, Status.PENDING_APPROVAL):
        return _next_step(group, membership)
    return render_template("join/done.html", group=group, school=school, membership=membership)


@bp.route("/reagree/<token>", methods=["GET", "POST"])
def reagree(token: str):
    """The link in the 'agree again' email: GET only shows the current texts; the POST records agreement."""
    db = get_session()
    days = tokens.lifetime("reagree").days
    try:
        membership = journey.reagree_membership(db, token)
    except tokens.TokenExpired:
        return render_template("join/reagree_problem.html", reason="expired", days=days), 410
    except tokens.TokenInvalid:
        return render_template("join/reagree_problem.html", reason="invalid", days=days), 404
    group = db.get(Group, membership.group_id)
    school = db.get(School, group.school_id)
    if membership.status not in policies.ACTIVE:
        return render_template("join/reagree_problem.html", reason="ended", group=group, days=days), 410
    if not membership.needs_reagree:
        return render_template("join/reagree_done.html", group=group, just_now=request.args.get("done") == "1")
    coc, notice = journey.current_documents(db, school.id)
    form = AgreeForm()
    if form.validate_on_submit():
        try:
            journey.reagree(db, membership, form.coc_version.data, form.notice_version.data)
        except journey.NoLongerMember:
            db.rollback()
            return render_template("join/reagree_problem.html", reason="ended", group=group, days=days), 410
        except journey.PolicyChanged:
            db.rollback()
            flash("The documents were updated while you were reading. Please read the new versions below.", "error")
            return redirect(url_for(".reagree", token=token), 303)
        db.commit()
        return redirect(url_for(".reagree", token=token, done=1), 303)
    # Offer the versions shown on this page, as the agree page does.
    for hidden, version in ((form.coc_version, coc), (form.notice_version, notice)):
        hidden.data, hidden.raw_data = version.id, None
    changes = [v for v, agreed in ((coc, membership.coc_version_id), (notice, membership.notice_version_id))
               if v.id != agreed]
    return render_template(
        "join/reagree.html", group=group, school=school, form=form, token=token, coc=coc, notice=notice,
        changes=changes, coc_html=policies.render(coc.text), notice_html=policies.render(notice.text),
        coc_statement=policies.agreement_statement(coc), notice_statement=policies.agreement_statement(notice),
    ), 400 if form.errors else 200
