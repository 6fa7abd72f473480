from services.bidding.models import Base
from shared.migrations import run_env
from shared.outbox import infra_metadata

run_env([Base.metadata, infra_metadata])
