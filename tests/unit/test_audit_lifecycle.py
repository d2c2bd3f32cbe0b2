"""Audit: the definition lifecycle while the feature API serves (docs/design.md §3.3 "Following the registry",
§9 feature services): how soon a change another process made is served, and every request answered from one
catalog snapshot."""

from __future__ import annotations

from registry.live import Following


class _Counter:
    """A store whose change sequence the test moves."""

    def __init__(self) -> None:
        self.seq = 0

    def change_seq(self) -> int:
        return self.seq


def test_a_change_is_served_refresh_s_after_it_even_when_the_load_is_slow() -> None:
    now = [0.0]
    store = _Counter()

    def slow_load() -> int:
        now[0] += 0.5  # rebuilding the snapshot takes half a second
        return store.seq

    following = Following(store, slow_load, refresh_s=1.0, clock=lambda: now[0])
    store.seq = 1  # committed at t=0, right after the first read of the change sequence
    now[0] = 0.999
    assert following.current() == 0  # within the second
    now[0] = 1.0  # exactly 1 s after the change: served (it was 1.5 s, the bound plus the load)
    assert following.current() == 1
    store.seq = 2  # committed at t=1.0, while the reload of 1 ran (it ended at 1.5)
    now[0] = 1.999
    assert following.current() == 1
    now[0] = 2.0
    assert following.current() == 2
