"""A trial's own checkpoints on the sweep's storage (``sweep.checkpoints``), on a local directory
and on a SeaweedFS S3 server: the newest complete one is restored; one whose payload is gone,
cut short or changed, or that has no manifest yet, is passed over for the next older one."""
import pyarrow.fs as pafs
import pytest

from korth_bench import results
from korth_bench.sweep.checkpoints import TrialCheckpoints


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    if request.param == "local":
        filesystem, root = pafs.LocalFileSystem(), str(tmp_path)
    else:
        endpoint = request.getfixturevalue("s3_server")
        filesystem, root = results.resolve(f"s3://korth/ckpt-{tmp_path.name}", endpoint)
    return TrialCheckpoints(filesystem, f"{root}/checkpoints/t1", keep=2)


def save(store, tmp_path, epoch):
    """A checkpoint of ``epoch`` whose state.pt holds the bytes ``epoch-<epoch>``."""
    state = tmp_path / f"state-{epoch}"
    state.mkdir()
    (state / "state.pt").write_bytes(f"epoch-{epoch}".encode())
    store.save(epoch, str(state))


def restored(store):
    with store.newest() as directory:
        return None if directory is None else open(f"{directory}/state.pt", "rb").read().decode()


def names(store):
    selector = pafs.FileSelector(store.directory, allow_not_found=True)
    return sorted(i.base_name for i in store.filesystem.get_file_info(selector))


def test_newest_complete_checkpoint_and_the_fallbacks(store, tmp_path):
    assert restored(store) is None  # nothing yet: the trial starts from scratch
    for epoch in range(3):
        save(store, tmp_path, epoch)
    assert store.complete() == [2, 1]  # keep=2: epoch 0's manifest and payload are gone
    assert names(store) == ["epoch_000001.json", "epoch_000001.pt", "epoch_000002.json", "epoch_000002.pt"]
    assert restored(store) == "epoch-2"

    results.write_bytes(store.filesystem, f"{store.directory}/epoch_000003.pt", b"epoch-3")
    assert restored(store) == "epoch-2"  # a payload without its manifest is not complete yet
    results.write_bytes(store.filesystem, f"{store.directory}/epoch_000002.pt", b"epoch-2 cut")
    assert restored(store) == "epoch-1"  # size and hash differ from the manifest
    store.filesystem.delete_file(f"{store.directory}/epoch_000001.pt")
    assert restored(store) is None  # every manifest names a payload that is gone or damaged

    save(store, tmp_path, 4)
    # eviction keeps the two newest complete (4 and the damaged 2) and removes everything older
    assert names(store) == ["epoch_000002.json", "epoch_000002.pt", "epoch_000003.pt",
                            "epoch_000004.json", "epoch_000004.pt"]
    assert restored(store) == "epoch-4"
