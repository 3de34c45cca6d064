"""Moderators' console: accepted moderator notice, and blocks on rejoining a group.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 20:17:02.303747
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table('group_block',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('group_id', sa.Integer(), nullable=False),
    sa.Column('membership_id', sa.Integer(), nullable=True),
    sa.Column('email', sa.String(length=254), nullable=True),
    sa.Column('mobile', sa.String(length=20), nullable=True),
    sa.Column('reason', sa.String(length=40), nullable=False),
    sa.Column('created_by_user_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('lifted_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['created_by_user_id'], ['user_account.id'], ),
    sa.ForeignKeyConstraint(['group_id'], ['class_group.id'], ),
    sa.ForeignKeyConstraint(['membership_id'], ['membership.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('group_block', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_group_block_email'), ['email'], unique=False)
        batch_op.create_index(batch_op.f('ix_group_block_group_id'), ['group_id'], unique=False)

    with op.batch_alter_table('user_account', schema=None) as batch_op:
        batch_op.add_column(sa.Column('notice_version_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('notice_accepted_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_foreign_key('fk_user_account_notice_version_id', 'policy_version', ['notice_version_id'], ['id'])


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table('user_account', schema=None) as batch_op:
        batch_op.drop_constraint('fk_user_account_notice_version_id', type_='foreignkey')
        batch_op.drop_column('notice_accepted_at')
        batch_op.drop_column('notice_version_id')

    with op.batch_alter_table('group_block', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_group_block_group_id'))
        batch_op.drop_index(batch_op.f('ix_group_block_email'))

    op.drop_table('group_block')
