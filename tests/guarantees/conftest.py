from tests.relay.conftest import relay_url, world  # noqa: F401  (the real server and its cast)
