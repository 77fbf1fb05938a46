"""The numerical core: numpy (and scipy) only; prints nothing, opens no files.

:mod:`~dilcli.core.kernels` (named and custom kernels), :mod:`~dilcli.core.conv`
(dilated correlation, the definition), :mod:`~dilcli.core.engine` (its fast paths, with
the optional compiled engine), :mod:`~dilcli.core.parallel` (threads),
:mod:`~dilcli.core.layers` (the one Layer every stack and table speaks of),
:mod:`~dilcli.core.stacks` (the one runner of stacks, 1-D and 2-D: the context module,
the starlet, signal stacks) and :mod:`~dilcli.core.receptive` (receptive fields,
exactly). Nothing here
imports click, rich, or any module above it (tests/test_layout.py checks).
"""
