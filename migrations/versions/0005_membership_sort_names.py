"""Each membership's copy of its person's name, for ordering and searching the records list by an index.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 00:21:02.096962
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

BATCH = 5000


def upgrade() -> None:
    """Apply this revision, filling the new columns from each membership's person."""
    with op.batch_alter_table('class_group', schema=None) as batch_op:
        batch_op.create_index('ix_class_group_school_name', ['school_id', 'name'], unique=False)

    with op.batch_alter_table('membership', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sort_name', sa.String(length=80), nullable=True))
        batch_op.add_column(sa.Column('name_erased', sa.Boolean(), nullable=False, server_default=sa.false()))

    _fill_sort_names()

    with op.batch_alter_table('membership', schema=None) as batch_op:
        batch_op.alter_column('name_erased', server_default=None)
        batch_op.create_index('ix_membership_listing', ['group_id', 'name_erased', 'sort_name', 'id'], unique=False)
        batch_op.create_index('ix_membership_group_status', ['group_id', 'status'], unique=False)


def _fill_sort_names() -> None:
    """Copy every person's name, lowercased in Python (SQLite's lower() folds ASCII only), to their memberships."""
    connection = op.get_bind()
    membership = sa.table(
        'membership', sa.column('id', sa.Integer), sa.column('person_id', sa.Integer),
        sa.column('sort_name', sa.String), sa.column('name_erased', sa.Boolean),
    )
    rows = connection.execute(
        sa.text('SELECT membership.id, person.name FROM membership JOIN person ON person.id = membership.person_id')
    ).all()
    update = (
        sa.update(membership)
        .where(membership.c.id == sa.bindparam('membership_id'))
        .values(sort_name=sa.bindparam('new_sort_name'), name_erased=sa.bindparam('new_name_erased'))
    )
    values = [
        {'membership_id': id_, 'new_sort_name': name.lower()[:80] if name else None, 'new_name_erased': name is None}
        for id_, name in rows
    ]
    for start in range(0, len(values), BATCH):
        connection.execute(update, values[start:start + BATCH])


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table('membership', schema=None) as batch_op:
        batch_op.drop_index('ix_membership_group_status')
        batch_op.drop_index('ix_membership_listing')
        batch_op.drop_column('name_erased')
        batch_op.drop_column('sort_name')

    with op.batch_alter_table('class_group', schema=None) as batch_op:
        batch_op.drop_index('ix_class_group_school_name')
