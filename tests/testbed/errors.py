"""Exceptions raised by the testbed."""


class TestbedUnavailable(RuntimeError):
    """The testbed cannot run on this machine; the message gives the reason.

    Fixtures turn it into ``pytest.skip`` so the reason shows in the report.
    """

    # Keep pytest from collecting this class as a test because of its name.
    __test__ = False


class NodeBootError(RuntimeError):
    """A node did not reach a usable state; the message names it and its log."""
