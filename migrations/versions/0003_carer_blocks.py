"""Carer blocks: an email the school bars from joining through a child.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21 20:58:45.737229
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table('carer_block',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('child_id', sa.Integer(), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('reason', sa.String(length=200), nullable=False),
    sa.Column('created_by_user_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('lifted_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['child_id'], ['child.id'], ),
    sa.ForeignKeyConstraint(['created_by_user_id'], ['user_account.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('carer_block', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_carer_block_child_id'), ['child_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_carer_block_email'), ['email'], unique=False)


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table('carer_block', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_carer_block_email'))
        batch_op.drop_index(batch_op.f('ix_carer_block_child_id'))

    op.drop_table('carer_block')
