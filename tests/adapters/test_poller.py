"""The drain loop's pacing (bot/poller.py): a lone change is drained at once; a stream of wakes
is drained in batches at least ``spacing`` apart; stopping never waits for the spacing."""

from __future__ import annotations

import time

from chainpipe.bot.poller import Poller


class Counting(Poller):
    """Records when each drain starts; drains nothing."""

    def __init__(self, spacing: float):
        super().__init__(poll_interval=30.0, spacing=spacing)
        self.starts: list[float] = []

    def drain_once(self) -> int:
        self.starts.append(time.monotonic())
        return 0

    def wait_for(self, count: int, timeout: float = 2.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.starts) < count and time.monotonic() < deadline:
            time.sleep(0.001)
        assert len(self.starts) >= count


def test_a_lone_wake_drains_at_once_and_a_stream_of_wakes_in_spaced_batches():
    poller = Counting(spacing=0.3)  # wide enough that a loaded machine's thread wake-up cannot blur it
    poller.start()
    try:
        poller.wait_for(1)  # the drain at start
        time.sleep(0.4)  # quiet for longer than the spacing
        woken = time.monotonic()
        poller.wake()
        poller.wait_for(2)
        assert poller.starts[1] - woken < 0.15  # at once, not after the spacing
        first = len(poller.starts)
        end = time.monotonic() + 0.9
        while time.monotonic() < end:  # a write every 2 ms
            poller.wake()
            time.sleep(0.002)
        stream = poller.starts[first - 1:]
        gaps = [b - a for a, b in zip(stream, stream[1:], strict=False)]
        assert gaps and min(gaps) >= 0.3 - 0.005
        assert len(gaps) <= 4  # about 0.9 s / 0.3 s, where every wake used to drain (≈ 450)
    finally:
        poller.stop()


def test_stopping_does_not_wait_for_the_spacing():
    poller = Counting(spacing=30.0)
    poller.start()
    poller.wait_for(1)
    poller.wake()  # soon after the first drain: the loop now waits out the spacing
    time.sleep(0.05)
    started = time.monotonic()
    poller.stop()
    assert time.monotonic() - started < 1.0
    assert not poller._thread.is_alive()
