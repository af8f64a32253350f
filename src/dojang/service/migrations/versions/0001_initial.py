"""Initial schema: tenants, tokens, watermark keys, manifests, text entries, audit log."""

import sqlalchemy as sa
from alembic import op

revision = "0001_initial"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tenants",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("store_content", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "tokens",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("tenant_id", sa.String(40), sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("label", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "wm_keys",
        sa.Column("key_id", sa.String(64), primary_key=True),
        sa.Column("tenant_id", sa.String(40), sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("secret_sealed", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "manifests",
        sa.Column("content_id", sa.String(32), primary_key=True),
        sa.Column("tenant_id", sa.String(40), sa.ForeignKey("tenants.id"), nullable=True),
        sa.Column("manifest", sa.LargeBinary, nullable=False),
        sa.Column("mime", sa.String(64), nullable=False),
        sa.Column("fingerprint", sa.String(32), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("signer", sa.String(400), nullable=False),
        sa.Column("generator", sa.String(400), nullable=False),
        sa.Column("created_at", sa.String(40), nullable=False),
    )
    op.create_table(
        "texts",
        sa.Column("entry_id", sa.String(40), primary_key=True),
        sa.Column("tenant_id", sa.String(40), sa.ForeignKey("tenants.id"), nullable=True),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("scheme", sa.String(64), nullable=False),
        sa.Column("model", sa.String(400), nullable=False),
        sa.Column("created_at", sa.String(40), nullable=False),
        sa.Column("text_sha256", sa.String(64), nullable=False),
        sa.Column("fingerprint", sa.Text, nullable=False),
        sa.Column("chars", sa.Integer, nullable=False),
    )
    op.create_index("texts_by_hash", "texts", ["text_sha256"])
    op.create_index("texts_by_key", "texts", ["key_id"])
    op.create_table(
        "audit",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("tenant_id", sa.String(40), nullable=True),
        sa.Column("token_id", sa.String(40), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("verdict", sa.String(32), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=True),
        sa.Column("content_sha256", sa.String(64), nullable=False),
        sa.Column("content", sa.Text, nullable=True),
        sa.Column("client", sa.String(64), nullable=True),
    )
    op.create_index("audit_by_tenant", "audit", ["tenant_id", "at"])
    op.create_table(
        "signing_keys",
        sa.Column("tenant_id", sa.String(40), sa.ForeignKey("tenants.id"), primary_key=True),
        sa.Column("chain_pem", sa.Text, nullable=False),
        sa.Column("key_sealed", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    for index, table in (("audit_by_tenant", "audit"), ("texts_by_key", "texts"), ("texts_by_hash", "texts")):
        op.drop_index(index, table_name=table)
    for table in ("signing_keys", "audit", "texts", "manifests", "wm_keys", "tokens", "tenants"):
        op.drop_table(table)
