"""Settings for the whole test suite."""

import signal
from collections.abc import Generator

import pytest
from hypothesis import settings

# Property tests draw the same examples on every run: a green suite stays green on a clean
# clone, and a found counter-example is fixed and kept as an explicit test.
settings.register_profile("radonc", derandomize=True, database=None)
settings.load_profile("radonc")

# A handler left behind by one test would change every later test in the same pytest process
# (a SIGINT left ignored hangs a Ctrl-C test): the guard below fails the test that did it.
_GUARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_handlers_before = pytest.StashKey[dict[signal.Signals, object]]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    # Taken before any fixture is set up, so a module- or session-scoped fixture that installs
    # a handler is caught too, at the teardown of the test during which it did.
    item.stash[_handlers_before] = {number: signal.getsignal(number) for number in _GUARDED_SIGNALS}
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(
    item: pytest.Item, nextitem: pytest.Item | None
) -> Generator[None, None, None]:
    """Fail a test that leaves a SIGINT or SIGTERM handler changed, once it is put back."""
    try:
        result = yield
    finally:
        changed = _restore_signal_handlers(item.stash.get(_handlers_before, {}))
    if changed:
        pytest.fail(
            f"{item.nodeid} left signal handlers changed ({'; '.join(changed)}); they are "
            "restored now. Restore them where they are changed (try/finally or a fixture)",
            pytrace=False,
        )
    return result


def _restore_signal_handlers(before: dict[signal.Signals, object]) -> list[str]:
    changed = []
    for number, handler in before.items():
        now = signal.getsignal(number)
        if now != handler:
            changed.append(f"{number.name}: {handler!r} -> {now!r}")
            if handler is not None:  # None: installed outside Python, cannot be put back
                signal.signal(number, handler)
    return changed
