"""AetherConsumer resume (tests/test_resume.py) on the Redis layer: the same
scenarios, with the consumer's session in the sending process."""

import pytest

from aether_compat import Channels
from tests.support.facade import as_default_layer
from tests.support.layers import build_layer
from tests.test_resume import (  # noqa: F401  (collected here, on Redis)
    GROUP_OPTIONS,
    test_a_bad_position_in_the_query_string_says_recovered_false,
    test_a_bad_since_is_an_error,
    test_a_gap_no_longer_in_history_replays_nothing,
    test_a_group_without_history_says_recovered_false_to_a_since,
    test_a_join_with_since_replays_exactly_the_gap_after_the_reply,
    test_a_join_without_since_tells_the_position,
    test_a_late_joiner_by_command_gets_the_last_message,
    test_a_late_joiner_gets_the_last_message_after_its_position,
    test_a_late_live_copy_of_a_replayed_message_is_dropped,
    test_a_legacy_client_resumes_a_connect_group_from_the_query_string,
    test_a_legacy_client_resumes_with_raw_text,
    test_a_legacy_client_without_since_gets_no_extra_frame_on_connect,
    test_another_epoch_replays_nothing,
    test_groups_joined_on_connect_resume_from_the_query_string,
    test_resumes_during_a_broadcast_have_no_gap_and_no_duplicate,
)

pytestmark = pytest.mark.redis


@pytest.fixture
async def hlayer():
    layer = build_layer("redis", group_options=GROUP_OPTIONS, capacity=1000)
    with as_default_layer(layer):
        Channels.configure(layer)
        yield layer
    await layer.flush()
    await layer.close()
