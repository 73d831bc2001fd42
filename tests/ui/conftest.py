from tests.channels.conftest import catalog  # noqa: F401  (the shared catalog fixture)
