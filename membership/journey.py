"""The parent journey as domain operations: start, verify email, agree, approve.

Each function changes one membership along TRANSITIONS, writes its ledger entries and queues
the emails the step promises. None of them knows about requests or pages.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sqlalchemy import and_, bindparam, func, update
from sqlalchemy.orm import aliased
from sqlmodel import Session, select

from . import codes, invites, ledger, mail, policies, privacy, schools, tokens
from .models import (
    CarerBlock,
    CarerInvitation,
    Child,
    DocumentKind,
    EnrolmentCode,
    Group,
    GroupBlock,
    GroupModerator,
    GroupView,
    Membership,
    MembershipView,
    Person,
    PersonView,
    PolicyVersion,
    PolicyVersionView,
    School,
    SchoolView,
    Status,
    User,
    Verification,
    read_views,
    utcnow,
)
from .states import ENDED, IllegalTransition, move, person_actor
from .urls import external_url


class AlreadyStarted(Exception):
    """This email already has a live membership in the group."""

    def __init__(self, membership: Membership) -> None:
        super().__init__(membership.id)
        self.membership = membership


class InvitationUnusable(Exception):
    """A personal invitation is used, revoked, expired or for another group.

    reason is one of used, revoked, expired, so the page can say what happened.
    """

    def __init__(self, reason: str = "used") -> None:
        super().__init__(reason)
        self.reason = reason


class Blocked(Exception):
    """A moderator removed this email or mobile from the group; no code lets them back in."""


class CarerBlocked(Exception):
    """The school has barred this email from joining through this child (a court order, say)."""


class PolicyChanged(Exception):
    """A newer version was published while the parent was reading the agree page."""


class NotReady(Exception):
    """The parent tried a step before the one it depends on (e.g. agree before verifying email)."""


@dataclass
class Proof:
    """How a parent showed they have a child in the class, carried from step 2 to step 3."""

    method: Verification
    code_id: int | None = None
    invitation_id: int | None = None
    claimed_child_name: str | None = None
    replaces: int | None = None  # an unconfirmed start made earlier in the same browser


def live_membership(session: Session, group_id: int, email: str) -> Membership | None:
    """A membership for this email in this group that has not ended, if any.

    Its id is read as a plain row, and the model loaded only when there is one: nearly every start
    finds none. Plain rows skip the session's flush, which the changes a start makes before this
    (statements of their own, run at once) do not need.
    """
    found = session.connection().execute(_LIVE_MEMBERSHIP, {"group_id": group_id, "email": email}).scalar()
    return session.get(Membership, found) if found is not None else None


# The journey's own lookups, built once: each runs on every start, and building a statement
# costs more than running it. Only the values are bound on each call.
# The email's people first, then their place in the group by (person, group): both planners then
# read a handful of index entries, never every member of the class (SQLite, with no statistics,
# would otherwise start from the group; PostgreSQL too while its statistics say the class is empty).
_LIVE_MEMBERSHIP = select(Membership.id).where(
    Membership.person_id.in_(select(Person.id).where(Person.email == bindparam("email"))),
    Membership.group_id == bindparam("group_id"),
    Membership.status.not_in([s.value for s in ENDED]),
)
_GROUP_BLOCK = select(GroupBlock.id).where(
    GroupBlock.group_id == bindparam("group_id"), GroupBlock.lifted_at.is_(None), privacy.BLOCK_MATCHES
)
# The child a start's code or personal invitation speaks for (NULL when the parent only named one).
_PROVEN_CHILD = func.coalesce(
    select(EnrolmentCode.child_id).where(EnrolmentCode.id == bindparam("code_id")).scalar_subquery(),
    select(CarerInvitation.child_id).where(CarerInvitation.id == bindparam("invitation_id")).scalar_subquery(),
)
# Everything a start checks before its live-membership check, in one statement: a removal from
# the group naming this email or mobile, the proven child, and a school block on this email for
# that child. On PostgreSQL it also takes a lock on this email's starts in this group (an advisory
# lock, held until the transaction ends); SQLite's writer lock is held already.
_START_CHECKS = (
    select(
        _GROUP_BLOCK.exists().label("group_blocked"),
        select(CarerBlock.id).where(
            CarerBlock.child_id == _PROVEN_CHILD, CarerBlock.email == bindparam("email"),
            CarerBlock.lifted_at.is_(None),
        ).exists().label("carer_blocked"),
        _PROVEN_CHILD.label("child_id"),
    )
    .select_from(Group)
    .where(Group.id == bindparam("group_id"))
)
_LOCKING_START_CHECKS = _START_CHECKS.add_columns(func.pg_advisory_xact_lock(bindparam("start_key")))


def _start_key(group_id: int, email: str) -> int:
    """The advisory lock's key for one email's starts in one group: 64 bits of a hash of the two."""
    digest = hashlib.sha256(f"{group_id}\n{email}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


# The two documents a parent agrees to, in the order pages and forms name them.
AGREED_KINDS = (DocumentKind.CODE_OF_CONDUCT, DocumentKind.DATA_NOTICE)


# A group by its slug, its school, and one membership in it with its person, in one statement:
# the pages after the details step all need the four. The agree page also reads the newest version
# of each document a parent agrees to (none where the school has never published one). Agreeing
# locks the membership's row (FOR NO KEY UPDATE; SQLite's writer lock is held already), so the
# same form sent from two tabs at once queues, and the second reads the first's agreement.
_GROUP_WITH_MEMBERSHIP = (
    select(Group, School, Membership, Person)
    .join(School, School.id == Group.school_id)
    .join(Membership, and_(Membership.group_id == Group.id, Membership.id == bindparam("membership_id")))
    .join(Person, Person.id == Membership.person_id)
    .where(Group.slug == bindparam("slug"))
)


def _newest(version, kind: DocumentKind):
    newest = (
        select(func.max(PolicyVersion.number))
        .where(PolicyVersion.school_id == Group.school_id, PolicyVersion.kind == kind.value)
        .scalar_subquery()
    )
    return and_(version.school_id == Group.school_id, version.kind == kind.value, version.number == newest)


_COC, _NOTICE = aliased(PolicyVersion, name="coc"), aliased(PolicyVersion, name="notice")
_WITH_DOCUMENTS = (
    _GROUP_WITH_MEMBERSHIP.add_columns(_COC, _NOTICE)
    .outerjoin(_COC, _newest(_COC, DocumentKind.CODE_OF_CONDUCT))
    .outerjoin(_NOTICE, _newest(_NOTICE, DocumentKind.DATA_NOTICE))
)
_PROGRESS = {
    (documents, lock): (
        statement.with_for_update(key_share=True, of=Membership).execution_options(populate_existing=True)
        if lock else statement
    )
    for documents, statement in ((False, _GROUP_WITH_MEMBERSHIP), (True, _WITH_DOCUMENTS))
    for lock in (False, True)
}


def progress(
    session: Session, slug: str, membership_id: int, *, lock: bool = False, documents: bool = False
) -> tuple[
    Group | GroupView, School | SchoolView, Membership | MembershipView,
    tuple[PolicyVersion | PolicyVersionView, PolicyVersion | PolicyVersionView] | None,
] | None:
    """The group a slug names, its school, its membership membership_id (locked: with its person
    loaded too), and with documents the code of conduct and data notice a parent agrees to today
    (else None).

    None when the slug names no group or the membership is not in it. With lock, the membership
    is read under a row lock, as it stands once any other request holding it has finished, and
    all are models, for the request to change. Without, they are rows to show (models.views).
    policies.NoPolicy when documents are asked for and the school has not published one of them.
    """
    if not schools.SLUG.fullmatch(slug or ""):
        return None
    statement = _PROGRESS[documents, lock]
    params = {"slug": slug, "membership_id": membership_id}
    if lock:
        row = session.exec(statement, params=params).first()
    else:
        row = read_views(session.connection().execute(statement, params).first(), *_VIEWS[: 6 if documents else 4])
    if row is None:
        return None
    if not documents:
        return row[0], row[1], row[2], None
    for kind, version in zip(AGREED_KINDS, row[4:], strict=True):
        if version is None:
            raise policies.NoPolicy(kind)
    return row[0], row[1], row[2], (row[4], row[5])


_VIEWS = (GroupView, SchoolView, MembershipView, PersonView, PolicyVersionView, PolicyVersionView)


def invitation_problem(invitation: CarerInvitation) -> str | None:
    """Why a personal invitation can no longer be used (used, revoked, expired), or None if it can."""
    if invitation.used_at is not None:
        return "used"
    if invitation.revoked_at is not None:
        return "revoked"
    if invitation.expires_at <= utcnow():
        return "expired"
    return None


def _consume_invitation(session: Session, invitation_id: int, email: str) -> CarerInvitation:
    invitation = session.get(CarerInvitation, invitation_id)
    if invitation is None or invitation.email != email:
        raise InvitationUnusable("used")
    now = utcnow()
    result = session.exec(
        update(CarerInvitation)
        .where(
            CarerInvitation.id == invitation_id,
            CarerInvitation.used_at.is_(None),
            CarerInvitation.revoked_at.is_(None),
            CarerInvitation.expires_at > now,
        )
        .values(used_at=now)
    )
    if result.rowcount != 1:
        session.refresh(invitation)
        raise InvitationUnusable(invitation_problem(invitation) or "used")
    return invitation


def start(
    session: Session,
    group: Group | GroupView,
    proof: Proof,
    *,
    name: str,
    relationship: str,
    email: str,
    mobile: str | None,
) -> Membership:
    """Record a parent's details and take their code use; their email still needs verifying.

    With a personal invitation the email was proven by the invitation link itself, so the
    membership starts verified.
    """
    # Starts with one email in one group queue behind each other (PostgreSQL's advisory lock;
    # SQLite's writer lock), so two at once cannot both pass the live-membership check below,
    # whose statement comes after the lock. Starts by other parents do not wait for each other.
    locking = session.get_bind().dialect.name == "postgresql"
    checks = session.connection().execute(_LOCKING_START_CHECKS if locking else _START_CHECKS, {
        "group_id": group.id, "start_key": _start_key(group.id, email), **privacy.block_keys(email, mobile),
        "code_id": proof.code_id if proof.method == Verification.CODE else None,
        "invitation_id": proof.invitation_id if proof.method == Verification.INVITATION else None,
    }).one()
    if checks.group_blocked:
        raise Blocked()
    if checks.carer_blocked:
        raise CarerBlocked()
    if proof.replaces:
        _withdraw_unconfirmed(session, group, proof.replaces)
    existing = live_membership(session, group.id, email)
    if existing is not None:
        raise AlreadyStarted(existing)
    child_id = None
    if proof.method == Verification.CODE:
        codes.reserve_use(session, proof.code_id)
        child_id = checks.child_id
    elif proof.method == Verification.INVITATION:
        child_id = _consume_invitation(session, proof.invitation_id, email).child_id
    person = Person(name=name, email=email, mobile=mobile)
    session.add(person)
    session.flush()
    membership = Membership(
        group_id=group.id,
        person_id=person.id,
        child_id=child_id,
        claimed_child_name=proof.claimed_child_name,
        relationship=relationship,
        verified_by=proof.method,
        code_id=proof.code_id,
        carer_invitation_id=proof.invitation_id,
        holds_code_use=proof.method == Verification.CODE,
    )
    session.add(membership)
    session.flush()
    ledger.append(
        session, group.school_id, "request", actor=person_actor(person), channel="web",
        person_ref=person.ref, group_id=group.id, child_id=child_id, membership_id=membership.id,
        detail={"verified_by": proof.method.value},
    )
    if proof.method == Verification.INVITATION:
        _mark_verified(session, group, membership, person, channel="invitation-link")
    else:
        send_verification(session, group, membership, person)
    return membership


def _withdraw_unconfirmed(session: Session, group: Group | GroupView, membership_id: int) -> None:
    """Starting again in the same browser (a mistyped email, say) ends the earlier unconfirmed start.

    Without this, each retry would hold one of the code's uses for 24 hours and could lock the
    child's other carer out.
    """
    earlier = session.get(Membership, membership_id)
    if earlier is None or earlier.group_id != group.id:
        return
    if codes.end_unconfirmed(session, earlier.id, Status.LEFT, reason="started again"):
        person = session.get(Person, earlier.person_id)
        ledger.append(
            session, group.school_id, "withdraw", actor=person_actor(person), channel="web",
            person_ref=person.ref, group_id=group.id, child_id=earlier.child_id, membership_id=earlier.id,
            detail={"reason": "started again before confirming the email"},
        )


def verification_token(membership: Membership) -> str:
    """The token in the 'confirm your email' link."""
    return tokens.issue("verify-email", {"m": membership.id})


def send_verification(session: Session, group: Group | GroupView, membership: Membership, person: Person) -> None:
    """Queue the 'confirm your email' message (also used to resend it)."""
    mail.queue(
        session, person.email, "verify_email", kind="verify-email", person_id=person.id,
        group=group, person=person,
        link=external_url("join.verify_email", token=verification_token(membership)),
        hours=int(tokens.lifetime("verify-email").total_seconds() // 3600),
    )


def send_continue(session: Session, group: Group | GroupView, membership: Membership) -> None:
    """Email a parent who started again a link back to where they are, without telling the browser."""
    person = session.get(Person, membership.person_id)
    mail.queue(
        session, person.email, "continue", kind="continue", person_id=person.id,
        group=group, person=person, status=membership.status,
        link=external_url("join.verify_email", token=verification_token(membership)),
    )


def _mark_verified(session: Session, group: Group, membership: Membership, person: Person, channel: str) -> None:
    move(membership, Status.EMAIL_VERIFIED)
    membership.holds_code_use = False  # the use is now kept for good
    membership.email_verified_at = utcnow()
    session.add(membership)
    ledger.append(
        session, group.school_id, "email_verified", actor=person_actor(person), channel=channel,
        person_ref=person.ref, group_id=group.id, child_id=membership.child_id, membership_id=membership.id,
    )


# The membership an email link names, with the group and person confirming it needs, in one statement.
# The membership's row is locked (SQLite's writer lock is held already): a mail app's link checker
# and the parent's own tap opening the link at once queue, and the second finds it confirmed.
_VERIFYING = (
    select(Membership, Group, Person)
    .join(Group, Group.id == Membership.group_id)
    .join(Person, Person.id == Membership.person_id)
    .where(Membership.id == bindparam("membership_id"))
    .with_for_update(key_share=True, of=Membership)
    .execution_options(populate_existing=True)
)


def verify_email(session: Session, token: str) -> Membership:
    """Confirm the email behind a verification link; repeat clicks are harmless.

    Raises tokens.TokenInvalid / TokenExpired, or IllegalTransition when the start has expired.
    A start older than the reservation window is expired here (and its code use given back)
    even when the link itself is younger, as a re-sent link can be: the hold lasts 24 hours
    from the start, not from the latest email. The caller commits in that case too.
    """
    payload = tokens.load("verify-email", token)
    membership_id = payload.get("m")
    row = session.exec(_VERIFYING, params={"membership_id": membership_id}).first() if isinstance(
        membership_id, int) else None
    if row is None:
        raise tokens.TokenInvalid("verify-email")
    membership, group, person = row
    if membership.status == Status.DETAILS_GIVEN and membership.holds_code_use and codes.hold_lapsed(membership):
        codes.end_unconfirmed(session, membership.id, Status.EXPIRED)
        session.refresh(membership)
    if membership.status == Status.DETAILS_GIVEN:
        _mark_verified(session, group, membership, person, channel="email-link")
    elif membership.status == Status.EXPIRED:
        raise IllegalTransition("expired")
    return membership


# The newest version of each document a parent agrees to, for a school, in one statement.
_NEWEST = (
    select(PolicyVersion.kind, func.max(PolicyVersion.number).label("number"))
    .where(PolicyVersion.school_id == bindparam("school_id"),
           PolicyVersion.kind.in_([kind.value for kind in AGREED_KINDS]))
    .group_by(PolicyVersion.kind)
    .subquery()
)
_CURRENT_DOCUMENTS = (
    select(PolicyVersion)
    .join(_NEWEST, and_(PolicyVersion.kind == _NEWEST.c.kind, PolicyVersion.number == _NEWEST.c.number))
    .where(PolicyVersion.school_id == bindparam("school_id"))
)


def current_documents(session: Session, school_id: int) -> tuple[PolicyVersion, PolicyVersion]:
    """The code of conduct and data notice a parent agrees to today, in one statement."""
    found = {version.kind: version for version in session.exec(_CURRENT_DOCUMENTS, params={"school_id": school_id})}
    for kind in AGREED_KINDS:
        if kind not in found:
            raise policies.NoPolicy(kind)
    return found[DocumentKind.CODE_OF_CONDUCT], found[DocumentKind.DATA_NOTICE]


@dataclass
class Agreed:
    """What happened after agreeing: an invite token to open at once, or a wait for a moderator."""

    membership: Membership
    invite_token: str | None


def agree(
    session: Session,
    membership: Membership,
    coc_version_id: int,
    notice_version_id: int,
    current: tuple[PolicyVersion, PolicyVersion] | None = None,
) -> Agreed:
    """Record both agreements (each its own ledger entry), then approve or queue for a moderator.

    current is the code of conduct and data notice as this transaction read them, if it has.
    """
    if membership.status == Status.DETAILS_GIVEN:
        raise NotReady("email not verified")
    if membership.status != Status.EMAIL_VERIFIED:
        raise IllegalTransition(f"{membership.status} → agreed")
    group = session.get(Group, membership.group_id)
    coc, notice = current or current_documents(session, group.school_id)
    if (coc.id, notice.id) != (coc_version_id, notice_version_id):
        raise PolicyChanged()
    _record_agreement(session, group, membership, coc, notice, channel="web")
    move(membership, Status.AGREED)
    session.add(membership)
    if group.requires_approval or membership.verified_by == Verification.NONE:
        move(membership, Status.PENDING_APPROVAL)
        _notify_moderators(session, group, membership)
        return Agreed(membership, None)
    approve(session, membership, by=None)
    return Agreed(membership, invites.issue(session, membership, actor="system", channel="web"))


def _record_agreement(
    session: Session,
    group: Group,
    membership: Membership,
    coc: PolicyVersion,
    notice: PolicyVersion,
    *,
    channel: str,
    detail: dict | None = None,
) -> None:
    """Write the agree and acknowledge entries (each its own, with its exact statement) and note the versions."""
    person = session.get(Person, membership.person_id)
    for action, version in (("agree", coc), ("acknowledge", notice)):
        ledger.append(
            session, group.school_id, action, actor=person_actor(person), channel=channel,
            person_ref=person.ref, group_id=group.id, child_id=membership.child_id,
            membership_id=membership.id, document=version, statement=policies.agreement_statement(version),
            detail=detail,
        )
    membership.coc_version_id, membership.notice_version_id = coc.id, notice.id
    membership.agreed_at = utcnow()
    membership.needs_reagree = False
    session.add(membership)


class NoLongerMember(Exception):
    """A re-agreement link for a membership that has ended (left, removed) or is not yet active."""


def reagree_link(membership: Membership) -> str:
    """The magic link in the 're-agree' email: it names the membership and nothing else."""
    return external_url("join.reagree", token=tokens.issue("reagree", {"m": membership.id}))


def reagree_membership(session: Session, token: str) -> Membership:
    """The membership a re-agreement link names; raises tokens.TokenInvalid / TokenExpired."""
    payload = tokens.load("reagree", token)
    membership = session.get(Membership, payload.get("m")) if isinstance(payload.get("m"), int) else None
    if membership is None:
        raise tokens.TokenInvalid("reagree")
    return membership


def ask_to_reagree(session: Session, membership: Membership, changed: PolicyVersion) -> bool:
    """Email an active member the magic link to agree to the current versions again; False if no email."""
    person = session.get(Person, membership.person_id)
    if not person.email:
        return False  # details erased: nobody to write to, and the flag still shows them as outstanding
    group = session.get(Group, membership.group_id)
    mail.queue(
        session, person.email, "reagree", kind="reagree", person_id=person.id,
        group=group, person=person, changed=changed, link=reagree_link(membership),
        days=tokens.lifetime("reagree").days,
    )
    return True


def reagree(
    session: Session, membership: Membership, coc_id: int, notice_id: int, *, channel: str = "email-link"
) -> bool:
    """Record an active member's agreement to the current versions; False when there was nothing to do.

    channel says where they agreed: the emailed link ("email-link") or their own pages ("me").

    Raises NoLongerMember for a membership that is not active, and PolicyChanged when the
    versions read are no longer the current ones.
    """
    # Lock the row so two clicks on the link at once write one pair of entries, not two.
    session.exec(
        select(Membership).where(Membership.id == membership.id).with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    ).one()
    if membership.status not in policies.ACTIVE:
        raise NoLongerMember(membership.id)
    if not membership.needs_reagree:
        return False
    group = session.get(Group, membership.group_id)
    coc, notice = current_documents(session, group.school_id)
    if (coc.id, notice.id) != (coc_id, notice_id):
        raise PolicyChanged()
    _record_agreement(session, group, membership, coc, notice, channel=channel, detail={"again": True})
    membership.updated_at = utcnow()
    return True


def approve(session: Session, membership: Membership, by: User | None) -> None:
    """Approve a membership (by a moderator, or automatically for open groups)."""
    group = session.get(Group, membership.group_id)
    move(membership, Status.APPROVED)
    membership.approved_at = utcnow()
    session.add(membership)
    person = session.get(Person, membership.person_id)
    ledger.append(
        session, group.school_id, "approve", actor=f"user:{by.id}" if by else "system",
        channel="moderator" if by else "automatic", person_ref=person.ref, group_id=group.id,
        child_id=membership.child_id, membership_id=membership.id,
        detail={"automatic": by is None, "verified_by": membership.verified_by},
    )


def _notify_moderators(session: Session, group: Group, membership: Membership) -> None:
    moderators = session.exec(
        select(User)
        .join(GroupModerator, GroupModerator.user_id == User.id)
        .where(GroupModerator.group_id == group.id, GroupModerator.stood_down_at.is_(None), User.active.is_(True))
    ).all()
    person = session.get(Person, membership.person_id)
    child = session.get(Child, membership.child_id) if membership.child_id else None
    for moderator in moderators:
        mail.queue(
            session, moderator.email, "moderator_pending", kind="moderator-pending", about_person_id=person.id,
            group=group, moderator=moderator, person=person, child=child, membership=membership,
            link=external_url("moderate.group_page", slug=group.slug),
        )
