"""The numerical core: numpy (and scipy) only; prints nothing, opens no files.

:mod:`~dilcli.core.kernels` (named and custom kernels), :mod:`~dilcli.core.conv`
(dilated correlation, the definition), :mod:`~dilcli.core.engine` (its fast paths, with
the optional compiled engine), :mod:`~dilcli.core.parallel` (threads),
:mod:`~dilcli.core.stacks` (stacks of layers: the context module, the starlet, 1-D
stacks) and :mod:`~dilcli.core.receptive` (receptive fields, exactly). Nothing here
imports click, rich, or any module above it (tests/test_layout.py checks).
"""
