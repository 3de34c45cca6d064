"""Read-only rows of the tables the parent pages show (see base.read_view).

A page that only shows a row reads it as one of these; a request that changes a row loads its model.
"""

from __future__ import annotations

from .base import read_view
from .people import Invite, Membership, Person
from .records import PolicyVersion
from .school import EnrolmentCode, Group, School

GroupView = read_view(Group)
SchoolView = read_view(School)
EnrolmentCodeView = read_view(EnrolmentCode)
MembershipView = read_view(Membership)
PersonView = read_view(Person)
InviteView = read_view(Invite)
PolicyVersionView = read_view(PolicyVersion)
