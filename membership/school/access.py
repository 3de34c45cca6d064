"""Sign-in and 404-on-load for every staff page: staff see their own school only."""

from __future__ import annotations

from flask import abort, g, redirect, request, url_for
from flask_login import current_user

from .. import staff
from ..db import get_session
from ..models import Child, Concern, Group, Membership, School, User
from . import bp


@bp.before_request
def _staff_only():
    """Every staff page needs a signed-in staff account; anyone else is told the page is not there."""
    if not current_user.is_authenticated:
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
    try:
        g.school = staff.school_of(get_session(), current_user)
    except staff.NotFound:
        abort(404)
    return None


def this_school() -> School:
    """The signed-in staff member's school."""
    return g.school


def load_group(slug: str) -> Group:
    """One of this school's groups, else 404."""
    try:
        return staff.group_in(get_session(), this_school(), slug)
    except staff.NotFound:
        abort(404)


def load_child(child_id: int) -> tuple[Child, Group]:
    """One of this school's children and their group, else 404."""
    try:
        return staff.child_in(get_session(), this_school(), child_id)
    except staff.NotFound:
        abort(404)


def load_membership(membership_id: int) -> tuple[Membership, Group]:
    """One of this school's memberships and its group, else 404."""
    try:
        return staff.membership_in(get_session(), this_school(), membership_id)
    except staff.NotFound:
        abort(404)


def load_user(user_id: int) -> User:
    """One of this school's accounts, else 404."""
    try:
        return staff.user_in(get_session(), this_school(), user_id)
    except staff.NotFound:
        abort(404)


def load_concern(concern_id: int) -> Concern:
    """One of this school's concerns, else 404."""
    try:
        return staff.concern_in(get_session(), this_school(), concern_id)
    except staff.NotFound:
        abort(404)
