"""The same flows on PostgreSQL (asyncpg), selected by the database URL alone.

Uses the server on 127.0.0.1:5432 (trust authentication, as on the development and CI machines): each
test gets a database of its own, dropped afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import pytest

from bot.config import Settings
from bot.runtime import running_bot

# The flows' own tests, run again here on PostgreSQL through this module's `bot` fixture.
from tests.test_join import (  # noqa: F401
    test_a_redelivered_update_has_one_effect_and_the_same_answer,
    test_an_error_in_a_step_is_an_apology_and_keeps_the_state,
    test_declining_consent_stores_nothing,
    test_english_join_with_typed_answers,
    test_join_by_taps_shows_a_card,
    test_member_numbers_are_unique_and_sequential,
    test_one_phone_is_one_member,
    test_same_phone_joined_at_once_from_two_identities,
    test_two_identical_inputs_at_once_make_one_member,
)
from tests.test_paging import (  # noqa: F401
    admin,
    test_a_stale_page_button_does_not_move_the_list,
    test_next_and_previous_pages,
)
from tests.test_privacy import (  # noqa: F401
    test_leaving_deletes_personal_data_and_keeps_a_count,
    test_my_data_shows_everything_held_masked,
    test_staff_verify_cards_in_the_bot,
)
from tests.test_roles import (  # noqa: F401
    test_a_member_who_left_mid_flow_is_stopped_at_the_next_message,
    test_a_staffer_removed_mid_flow_is_stopped_at_the_next_message,
    test_each_role_sees_exactly_its_tools,
    tools,
)
from tests.test_storage import (  # noqa: F401
    test_a_lease_goes_to_one_process_at_a_time,
    test_a_member_marked_unreachable_is_reachable_again_once_they_write,
)

SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"


@asynccontextmanager
async def postgres_database() -> AsyncIterator[str]:
    """The URL of a new database on the server, dropped afterwards; the test is skipped without a server."""
    try:
        admin = await asyncpg.connect(SERVER, timeout=5)
    except (OSError, asyncpg.PostgresError) as e:
        pytest.skip(f"no PostgreSQL server on 127.0.0.1:5432 ({type(e).__name__})")
    name = f"gigunion_test_{uuid.uuid4().hex[:12]}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    async with postgres_database() as url:
        yield url


@pytest.fixture
async def bot(pg_url: str, tmp_path):  # type: ignore[no-untyped-def]
    settings = Settings(database_url=pg_url, secret_key="test-secret-key-0123456789abcdefghijklmnopqrstuvwxyz")
    async with running_bot(settings) as pair:
        assert pair[0].db.engine.dialect.name == "postgresql"
        yield pair
