"""The public face: `aether_compat.__all__` is exactly the public names, sorted."""

import aether_compat


def test_all_is_sorted_and_complete():
    public = {
        name
        for name, value in vars(aether_compat).items()
        if not name.startswith("_") and not isinstance(value, type(aether_compat))
    }
    assert aether_compat.__all__ == sorted(aether_compat.__all__)
    assert set(aether_compat.__all__) == public


def test_every_exported_name_has_a_docstring():
    for name in aether_compat.__all__:
        assert getattr(aether_compat, name).__doc__, name


def test_every_error_the_layers_raise_is_exported():
    """Callers catch what the package raises without importing its modules."""
    from aether_compat import errors

    raised = {
        name
        for name, value in vars(errors).items()
        if isinstance(value, type) and issubclass(value, Exception)
    }
    raised.discard("_ChannelsChannelFull")
    assert raised <= set(aether_compat.__all__)
