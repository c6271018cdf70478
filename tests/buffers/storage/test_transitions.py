"""TransitionStore: bytes asked for before allocating, what it allocates, its state."""

import pickle

import numpy as np
import pytest

from pearll.buffers.core.env_info import EnvInfo
from pearll.buffers.core.spaces import buffer_field_specs
from pearll.buffers.storage.frame_options import FrameOptions
from pearll.buffers.storage.placement import Placement
from pearll.buffers.storage.transitions import TransitionStore
from tests.fixtures import make_env, stacked_env


def store_of(env, spare_rows: bool, frame_stack=None, storage="memory", tmp_path=None):
    info = EnvInfo.of(env, None)
    frames = FrameOptions.of(env, frame_stack, None, info.observation_space, spare_rows, "test")
    specs = buffer_field_specs(info, {}, not spare_rows, {})
    placement = Placement(storage, tmp_path if storage == "memmap" else None)
    return TransitionStore(specs, frames, info.observation_space, 7, info.num_envs, spare_rows,
                           placement)  # fmt: skip


# (Frame stacks are for the ReplayBuffer layout only.)
@pytest.mark.parametrize(("spare_rows", "stacked"), [(True, False), (False, False), (True, True)])
def test_required_bytes_is_what_allocate_claims(spare_rows, stacked):
    env = stacked_env(2) if stacked else make_env(2)
    store = store_of(env, spare_rows, "auto" if stacked else None)
    assert store.packed is None  # nothing allocated before allocate()
    expected = store.required_bytes
    store.allocate()
    assert store.nbytes == expected
    assert ("next_observations" in store.fields) == (not spare_rows)
    assert (store.frames is not None) == stacked


def test_memmap_puts_its_bulk_in_files(tmp_path):
    store = store_of(make_env(2), True, storage="memmap", tmp_path=tmp_path)
    assert store.bulk_bytes == store.required_bytes
    store.allocate()
    assert isinstance(store.packed.packed, np.memmap)


def test_state_round_trip_and_pickle_keep_views_on_the_packed_rows():
    store = store_of(make_env(2), True)
    store.allocate()
    store.fields["rewards"][3, 1] = 2.5
    other = store_of(make_env(2), True)
    other.allocate()
    other.set_state(store.state())
    assert other.fields["rewards"][3, 1, 0] == 2.5
    copy = pickle.loads(pickle.dumps(store))
    copy.fields["rewards"][0, 0] = 7.0  # a view of the copy's own packed rows
    assert copy.packed.fields["rewards"][0, 0, 0] == 7.0
    assert store.fields["rewards"][0, 0, 0] == 0.0
    store.reset()
    assert store.fields["rewards"][3, 1, 0] == 0.0
