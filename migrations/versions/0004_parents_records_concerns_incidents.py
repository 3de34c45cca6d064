"""Parents' sign-in links, chat-removal tasks, erasable blocks, concerns and the incident log.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21 22:01:12.750132
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table('parent_sign_in',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('nonce_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('signed_out_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('parent_sign_in', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_parent_sign_in_email'), ['email'], unique=False)

    op.create_table('concern',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('school_id', sa.Integer(), nullable=False),
    sa.Column('group_id', sa.Integer(), nullable=True),
    sa.Column('what_happened', sa.Text(), nullable=False),
    sa.Column('contact_name', sa.String(length=80), nullable=True),
    sa.Column('contact_email', sa.String(length=254), nullable=True),
    sa.Column('contact_phone', sa.String(length=20), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('contact_erased_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['group_id'], ['class_group.id'], ),
    sa.ForeignKeyConstraint(['school_id'], ['school.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('concern', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_concern_school_id'), ['school_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_concern_status'), ['status'], unique=False)

    op.create_table('concern_update',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('concern_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('note', sa.String(length=2000), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['concern_id'], ['concern.id'], ),
    sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('concern_update', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_concern_update_concern_id'), ['concern_id'], unique=False)

    op.create_table('incident',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('school_id', sa.Integer(), nullable=False),
    sa.Column('membership_id', sa.Integer(), nullable=False),
    sa.Column('concern_id', sa.Integer(), nullable=True),
    sa.Column('action', sa.String(length=30), nullable=False),
    sa.Column('occurred_on', sa.Date(), nullable=False),
    sa.Column('decided_by', sa.String(length=120), nullable=False),
    sa.Column('note', sa.String(length=2000), nullable=False),
    sa.Column('recorded_by_user_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['concern_id'], ['concern.id'], ),
    sa.ForeignKeyConstraint(['membership_id'], ['membership.id'], ),
    sa.ForeignKeyConstraint(['recorded_by_user_id'], ['user_account.id'], ),
    sa.ForeignKeyConstraint(['school_id'], ['school.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('incident', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_incident_membership_id'), ['membership_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_incident_school_id'), ['school_id'], unique=False)

    with op.batch_alter_table('group_block', schema=None) as batch_op:
        batch_op.add_column(sa.Column('email_hmac', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('mobile_hmac', sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f('ix_group_block_email_hmac'), ['email_hmac'], unique=False)
        batch_op.create_index(batch_op.f('ix_group_block_mobile_hmac'), ['mobile_hmac'], unique=False)

    with op.batch_alter_table('outbox_message', schema=None) as batch_op:
        batch_op.add_column(sa.Column('about_person_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_outbox_message_about_person_id'), ['about_person_id'], unique=False)
        batch_op.create_foreign_key('fk_outbox_message_about_person_id', 'person', ['about_person_id'], ['id'])

    with op.batch_alter_table('membership', schema=None) as batch_op:
        batch_op.add_column(sa.Column('chat_removal_due_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('chat_removed_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('chat_removed_by_user_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_membership_chat_removal_due_at'), ['chat_removal_due_at'], unique=False)
        batch_op.create_foreign_key('fk_membership_chat_removed_by_user_id', 'user_account', ['chat_removed_by_user_id'], ['id'])



def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table('membership', schema=None) as batch_op:
        batch_op.drop_constraint('fk_membership_chat_removed_by_user_id', type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_membership_chat_removal_due_at'))
        batch_op.drop_column('chat_removed_by_user_id')
        batch_op.drop_column('chat_removed_at')
        batch_op.drop_column('chat_removal_due_at')

    with op.batch_alter_table('outbox_message', schema=None) as batch_op:
        batch_op.drop_constraint('fk_outbox_message_about_person_id', type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_outbox_message_about_person_id'))
        batch_op.drop_column('about_person_id')

    with op.batch_alter_table('group_block', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_group_block_mobile_hmac'))
        batch_op.drop_index(batch_op.f('ix_group_block_email_hmac'))
        batch_op.drop_column('mobile_hmac')
        batch_op.drop_column('email_hmac')

    with op.batch_alter_table('incident', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_incident_school_id'))
        batch_op.drop_index(batch_op.f('ix_incident_membership_id'))

    op.drop_table('incident')
    with op.batch_alter_table('concern_update', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_concern_update_concern_id'))

    op.drop_table('concern_update')
    with op.batch_alter_table('concern', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_concern_status'))
        batch_op.drop_index(batch_op.f('ix_concern_school_id'))

    op.drop_table('concern')
    with op.batch_alter_table('parent_sign_in', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_parent_sign_in_email'))

    op.drop_table('parent_sign_in')
