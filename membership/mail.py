"""The transactional outbox: requests insert messages; a sender delivers them with retries."""

from __future__ import annotations

import logging
import smtplib
from datetime import timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

from flask import current_app, render_template
from sqlalchemy import insert, or_, update
from sqlmodel import Session, select

from .db import write_rows
from .models import OutboxMessage, utcnow

log = logging.getLogger(__name__)

CLAIM_FOR = timedelta(minutes=5)
# Retries back off 2, 4, 8… minutes, but never wait longer than this between attempts.
MAX_RETRY_DELAY = timedelta(hours=1)


def _permanent(exc: Exception) -> bool:
    """True when the receiving server refused this message for good (a 5xx for its recipient or content).

    Anything else (server down or unreachable, a 4xx "try later", bad credentials or sender
    settings) is an outage or a configuration problem: the message waits, however long it takes.
    """
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return bool(exc.recipients) and all(code >= 500 for code, _ in exc.recipients.values())
    if isinstance(exc, smtplib.SMTPDataError):
        return exc.smtp_code >= 500
    return False


def retry_delay(attempts: int) -> timedelta:
    """How long to wait after the given number of failed attempts."""
    return min(timedelta(minutes=2 ** min(attempts, 16)), MAX_RETRY_DELAY)


def queue(
    session: Session,
    to: str,
    template: str,
    *,
    kind: str,
    person_id: int | None = None,
    about_person_id: int | None = None,
    **context,
) -> None:
    """Render templates/email/<template>.txt (first line is the subject) and add it to the outbox.

    The row is inserted at once, in the request's transaction: it is sent only if the change
    that queued it commits, and nothing in the request reads it back.
    """
    rendered = render_template(f"email/{template}.txt", **context)
    subject, _, body = rendered.lstrip().partition("\n")
    now = utcnow()
    write_rows(session, _INSERT_MESSAGE, {
        "to_addr": to,
        "subject": subject.removeprefix("Subject:").strip(),
        "body_text": body.strip() + "\n",
        "kind": kind,
        "person_id": person_id,
        "about_person_id": about_person_id,
        "created_at": now,
        "attempts": 0,
        "next_attempt_at": now,
    })


_INSERT_MESSAGE = insert(OutboxMessage.__table__)


def _as_email(message: OutboxMessage) -> EmailMessage:
    email = EmailMessage()
    email["From"] = current_app.config["MAIL_FROM"]
    email["To"] = message.to_addr
    email["Subject"] = message.subject
    email["Date"] = format_datetime(message.created_at)
    email["Message-ID"] = make_msgid(idstring=f"outbox{message.id}", domain="classgate.invalid")
    email.set_content(message.body_text)
    return email


def _deliver(email: EmailMessage, message: OutboxMessage) -> None:
    cfg = current_app.config
    if cfg["MAIL_WRITE_FILES"]:
        outbox = Path(cfg["OUTBOX_DIR"])
        outbox.mkdir(parents=True, exist_ok=True)
        path = outbox / f"{message.created_at:%Y%m%dT%H%M%S}-{message.id:06d}-{message.kind or 'mail'}.eml"
        path.write_bytes(bytes(email))
        log.info("email %s (%s) written to %s", message.id, message.kind, path)
    if cfg["SMTP_HOST"]:
        with smtplib.SMTP(cfg["SMTP_HOST"], cfg["SMTP_PORT"], timeout=20) as smtp:
            if cfg["SMTP_STARTTLS"]:
                smtp.starttls()
            if cfg["SMTP_USER"]:
                smtp.login(cfg["SMTP_USER"], cfg["SMTP_PASSWORD"])
            smtp.send_message(email)
        log.info("email %s (%s) sent by SMTP", message.id, message.kind)
    elif not cfg["MAIL_WRITE_FILES"]:
        raise RuntimeError("no mail transport configured (set SMTP_HOST)")


def _claim(session: Session, message_id: int) -> bool:
    """Take a message for this sender so two senders never deliver it twice."""
    now = utcnow()
    result = session.exec(
        update(OutboxMessage)
        .where(
            OutboxMessage.id == message_id,
            OutboxMessage.sent_at.is_(None),
            or_(OutboxMessage.claimed_until.is_(None), OutboxMessage.claimed_until < now),
        )
        .values(claimed_until=now + CLAIM_FOR)
    )
    session.commit()
    return result.rowcount == 1


def send_pending(session: Session, limit: int = 500) -> tuple[int, int]:
    """Deliver due messages; return (sent, failed attempts).

    A failure is retried later, never lost; only a message the receiving server refuses outright
    (a 5xx for its recipient or content) is given up on, after MAIL_MAX_ATTEMPTS tries.
    """
    now = utcnow()
    due = session.exec(
        select(OutboxMessage.id)
        .where(
            OutboxMessage.sent_at.is_(None),
            OutboxMessage.failed_at.is_(None),
            OutboxMessage.next_attempt_at <= now,
        )
        .order_by(OutboxMessage.id)
        .limit(limit)
    ).all()
    session.commit()
    sent = failed = 0
    for message_id in due:
        if not _claim(session, message_id):
            continue
        message = session.get(OutboxMessage, message_id)
        email = _as_email(message)
        session.commit()  # hold no transaction (nor SQLite's write lock) while talking to SMTP
        try:
            _deliver(email, message)
        except Exception as exc:  # noqa: BLE001 - any transport error means "try again later"
            failed += 1
            message.attempts += 1
            message.last_error = f"{type(exc).__name__}: {exc}"[:500]
            message.claimed_until = None
            give_up = message.attempts >= current_app.config["MAIL_MAX_ATTEMPTS"]
            if give_up and _permanent(exc):
                message.failed_at = utcnow()
                log.error("email %s (%s) gave up after %s attempts", message.id, message.kind, message.attempts)
            else:
                # An outage loses nothing: the message stays queued until the server is back.
                message.next_attempt_at = utcnow() + retry_delay(message.attempts)
                log_at = log.error if give_up else log.warning
                log_at("email %s (%s) will be retried: %s", message.id, message.kind, message.last_error)
        else:
            sent += 1
            message.attempts += 1
            message.sent_at = utcnow()
            message.last_error = None
        session.add(message)
        session.commit()
    return sent, failed
