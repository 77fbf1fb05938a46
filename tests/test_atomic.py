import os
import time

import pytest

from dilcli.io import atomic


def test_a_failed_write_leaves_no_file_and_no_temporary(tmp_path):
    with pytest.raises(RuntimeError), atomic.atomic_write(tmp_path / "out.png") as handle:
        handle.write(b"partial")
        raise RuntimeError("encoder failed")
    assert list(tmp_path.iterdir()) == []


def test_stale_temporaries_of_dead_writers_go_live_ones_stay(tmp_path):
    host = atomic._host()
    live = tmp_path / f"{atomic.TEMP_PREFIX}{host}-{os.getpid()}~a.part"
    dead = tmp_path / f"{atomic.TEMP_PREFIX}{host}-{2**22 + 12345}~b.part"  # above pid_max
    foreign = tmp_path / f"{atomic.TEMP_PREFIX}elsewhere-1~c.part"
    old_foreign = tmp_path / f"{atomic.TEMP_PREFIX}elsewhere-2~d.part"
    for path in (live, dead, foreign, old_foreign):
        path.write_bytes(b"x")
    day_ago = time.time() - atomic.FOREIGN_TEMP_SECONDS - 60
    os.utime(old_foreign, (day_ago, day_ago))
    assert atomic.remove_stale_temporaries(tmp_path) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, foreign.name])
