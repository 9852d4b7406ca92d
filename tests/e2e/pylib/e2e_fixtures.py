"""The pytest fixtures both Python end-to-end suites define alike (a plugin: their conftests name it
in ``pytest_plugins``). pytest is the one package besides the standard library used here: both
venvs pin the same version."""

import pytest

from e2e import TRANSPORT_SETUPS


@pytest.fixture(params=list(TRANSPORT_SETUPS), ids=list(TRANSPORT_SETUPS))
def setup_name(request):
    """The transport setup: runs each test that uses it once per setup."""
    return request.param


@pytest.fixture
def transports(setup_name):
    """python-socketio's ``transports`` argument for the setup."""
    return TRANSPORT_SETUPS[setup_name]
