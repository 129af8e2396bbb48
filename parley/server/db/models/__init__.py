"""Every table of Parley, in one SQLAlchemy model shared by SQLite and PostgreSQL.

The tables live in `base.py` (the declarative base and column types), `core.py` and
`reach.py`; every name is re-exported here: `from parley.server.db.models import X`.
"""

from parley.server.db.models.base import NAMING, Base, BigId, UTCDateTime, utcnow
from parley.server.db.models.core import (
    Attachment,
    Ban,
    Block,
    Chat,
    LinkPreview,
    Membership,
    Message,
    MessageMention,
    MessagePreview,
    Reaction,
    RefreshToken,
    Session,
    ThreadFollow,
    User,
)
from parley.server.db.models.reach import (
    AuditEntry,
    Bot,
    BotDelivery,
    DataExport,
    EmailToken,
    InstanceSetting,
    Invite,
    PushSubscription,
    RecoveryCode,
    Report,
    ScheduledMessage,
    Webhook,
)

__all__ = [
    "NAMING",
    "Attachment",
    "AuditEntry",
    "Ban",
    "Base",
    "BigId",
    "Block",
    "Bot",
    "BotDelivery",
    "Chat",
    "DataExport",
    "EmailToken",
    "InstanceSetting",
    "Invite",
    "LinkPreview",
    "Membership",
    "Message",
    "MessageMention",
    "MessagePreview",
    "PushSubscription",
    "Reaction",
    "RecoveryCode",
    "RefreshToken",
    "Report",
    "ScheduledMessage",
    "Session",
    "ThreadFollow",
    "UTCDateTime",
    "User",
    "Webhook",
    "utcnow",
]
