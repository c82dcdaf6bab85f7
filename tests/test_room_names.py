"""Room names the demo cannot use are explained, not swapped for the lobby: the
rule's own words (`check_room_name`) for spaces, other letters, length and empty
names, on a 400 page with the form, and no room is made."""

import pytest

from project.demo.models import Room
from project.demo.rooms import ROOM_NAME_MAX_LENGTH, check_room_name


@pytest.mark.parametrize(
    ("name", "words"),
    [
        pytest.param("my room", "has no spaces", id="space"),
        pytest.param("café", "'é' is not one of them", id="non-ascii"),
        pytest.param("a/b", "'/' is not one of them", id="slash"),
        pytest.param("x" * 61, "at most 60 characters; this one has 61", id="long"),
        pytest.param("", "Give the room a name", id="empty"),
    ],
)
def test_check_room_name_says_what_is_wrong(name, words):
    assert words in check_room_name(name)


@pytest.mark.parametrize("name", ["lobby", "design-review", "a_1", "x" * 60])
def test_check_room_name_accepts_room_names(name):
    assert len(name) <= ROOM_NAME_MAX_LENGTH
    assert check_room_name(name) is None


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "words"),
    [
        pytest.param("/chat/?room=my+room", "has no spaces", id="form-space"),
        pytest.param("/chat/?room=caf%C3%A9", "is not one of them", id="form-accent"),
        pytest.param(f"/chat/?room={'x' * 61}", "this one has 61", id="form-long"),
        pytest.param("/chat/caf%C3%A9/", "is not one of them", id="url-accent"),
        pytest.param("/chat/my%20room/", "has no spaces", id="url-space"),
    ],
)
def test_a_bad_name_is_explained_on_a_page(client, path, words):
    page = client.get(path)
    assert page.status_code == 400
    text = page.content.decode()
    assert words in text
    assert 'name="room"' in text  # the form, to try another name
    assert [room.name for room in Room.objects.all()] == ["lobby"]  # the migration's


@pytest.mark.django_db
def test_good_and_empty_names_still_open_a_room(client):
    assert client.get("/chat/?room=design-review").url == "/chat/design-review/"
    assert client.get("/chat/?room=").url == "/chat/lobby/"
