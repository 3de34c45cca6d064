"""Find a parent's place in a group by (person, group); drop the indexes other indexes now lead with.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22 17:05:00.000000
"""

from __future__ import annotations

from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision.

    ix_membership_person_group leads with person_id, and ix_membership_group_status with group_id,
    so the single-column indexes on those columns only cost every membership write.
    """
    with op.batch_alter_table('membership', schema=None) as batch_op:
        batch_op.create_index('ix_membership_person_group', ['person_id', 'group_id'], unique=False)
        batch_op.drop_index('ix_membership_person_id')
        batch_op.drop_index('ix_membership_group_id')


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table('membership', schema=None) as batch_op:
        batch_op.create_index('ix_membership_group_id', ['group_id'], unique=False)
        batch_op.create_index('ix_membership_person_id', ['person_id'], unique=False)
        batch_op.drop_index('ix_membership_person_group')
