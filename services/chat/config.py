from __future__ import annotations

from typing import ClassVar

from shared.config import ServiceSettings


class Settings(ServiceSettings):
    service_name: ClassVar[str] = "chat"
