import dataclasses
import json

import numpy as np
import pytest

from dilcli.batch.jobs import ContextJob, ConvolveJob, SignalJob
from dilcli.core import stacks
from dilcli.core.kernels import named_kernel
from dilcli.render.display import Rendering

CHANGES = {
    "kernel": named_kernel("sobel"),
    "dilations": (1, 3),
    "mode": "valid",
    "boundary": "wrap",
    "cval": 0.5,
    "flip": True,
    "rendering": Rendering(gain=2.0),
    "montage": True,
    "allow_truncated": True,
    "frames": "all",
}


@pytest.mark.parametrize("field", list(CHANGES))
def test_every_field_that_changes_outputs_changes_the_signature(field):
    job = ConvolveJob(named_kernel("laplacian"), (1, 2))
    changed = dataclasses.replace(job, **{field: CHANGES[field]})
    assert json.dumps(job.signature()) != json.dumps(changed.signature())


def test_trained_weights_enter_the_signature_by_digest():
    layers = tuple(stacks.context_basic(3))
    job = ContextJob("weights", (1,) * len(layers), layers=layers)
    nudged = list(layers)
    nudged[2] = dataclasses.replace(layers[2], weights=layers[2].weights + 1e-6)
    other = dataclasses.replace(job, layers=tuple(nudged))
    text = json.dumps(job.signature())
    assert len(text) < 4000  # digests, not every weight
    assert text != json.dumps(other.signature())


def test_signal_job_signature_is_json():
    job = SignalJob(named_kernel("difference", ndim=1), (1, 2), stack=True)
    assert json.loads(json.dumps(job.signature()))["stack"] is True
    assert np.isscalar(job.signature()["cval"])


@pytest.mark.parametrize(
    "options, message",
    [({"mode": "valid"}, "needs mode 'same'"), ({"relu": False}, "starlet is linear")],
)
def test_the_library_refuses_what_the_cli_refuses(options, message):
    from dilcli.batch.jobs import ContextJob

    with pytest.raises(ValueError, match=message):
        ContextJob("starlet", (1, 2, 4), **options)
    with pytest.raises(ValueError, match="stack must be one of"):
        ContextJob("starlet-ish", (1, 2))


def test_the_library_refuses_stacks_the_cli_refuses():
    from dilcli.batch.jobs import ContextJob

    with pytest.raises(ValueError, match="sobel is a gradient pair"):
        ContextJob("kernel", (1, 2), kernel=named_kernel("sobel"))
    with pytest.raises(ValueError, match="stack 'random' needs a kernel"):
        ContextJob("random", (1, 2))
    with pytest.raises(ValueError, match="one 1-D kernel; laplacian is not"):
        SignalJob(named_kernel("laplacian"), (1, 2))
