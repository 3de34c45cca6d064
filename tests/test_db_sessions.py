"""A request's session: pages that only read cannot write, and writing requests stay all-or-nothing."""

from __future__ import annotations

import pytest
from sqlmodel import select

from membership.db import ReadOnlyRequestError, get_session, writes_on_get
from membership.models import School


def _school(slug: str) -> School:
    return School(slug=slug, name=f"School {slug}", concerns_email="office@example.org")


def _exists(db, slug: str) -> bool:
    db.commit()  # a fresh snapshot: see what the requests committed
    return db.exec(select(School).where(School.slug == slug)).first() is not None


@pytest.fixture
def probes(app):
    """Three pages: one that only reads, one that writes on GET unmarked, one marked that writes half and fails."""

    @app.get("/_probe/read")
    def read_only():
        return str(len(get_session().exec(select(School)).all()))

    @app.get("/_probe/unmarked")
    def unmarked_write():
        session = get_session()
        session.add(_school("unmarked"))
        session.commit()
        return "written"

    @app.get("/_probe/half")
    @writes_on_get
    def half_write():
        session = get_session()
        session.add(_school("half"))
        session.flush()  # the INSERT has reached the database
        raise RuntimeError("something failed after the first write")

    @app.get("/_probe/marked")
    @writes_on_get
    def marked_write():
        session = get_session()
        session.add(_school("marked"))
        session.commit()
        return "written"

    return app.test_client()


def test_a_page_not_marked_as_writing_is_refused_its_write_and_nothing_is_kept(probes, db):
    with pytest.raises(ReadOnlyRequestError, match="only reads tried to write"):
        probes.get("/_probe/unmarked")
    assert not _exists(db, "unmarked")


def test_a_page_marked_writes_on_get_writes(probes, db):
    assert probes.get("/_probe/marked").status_code == 200
    assert _exists(db, "marked")


def test_a_writing_request_after_reading_ones_is_still_all_or_nothing(probes, db):
    # On PostgreSQL reading pages run without a transaction; the pooled connection they used must
    # not carry that into the next request, or its first write would be kept when it fails later.
    for _ in range(3):
        assert probes.get("/_probe/read").status_code == 200
    with pytest.raises(RuntimeError, match="after the first write"):
        probes.get("/_probe/half")
    assert not _exists(db, "half")
    assert probes.get("/_probe/read").status_code == 200
