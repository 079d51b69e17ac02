"""Loss functions (see :mod:`minidl.losses.base`)."""
from minidl.losses.base import *  # noqa: F401,F403
from minidl.losses.base import __all__, _check_axis, _snake_case  # noqa: F401
