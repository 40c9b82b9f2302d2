"""Imports every package's models so Alembic and the tests see the whole schema."""

from bot import models as _bot_models  # noqa: F401
from bot.db import Base
from broadcast import insights as _broadcast_insights  # noqa: F401
from broadcast import models as _broadcast_models  # noqa: F401
from disaster import models as _disaster_models  # noqa: F401
from faq import models as _faq_models  # noqa: F401
from garbage import models as _garbage_models  # noqa: F401
from handlers import models as _handlers_models  # noqa: F401
from kpi import models as _kpi_models  # noqa: F401
from reports import models as _reports_models  # noqa: F401
from segments import models as _segments_models  # noqa: F401
from surveys import models as _surveys_models  # noqa: F401

metadata = Base.metadata
