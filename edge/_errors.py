"""Errors raised by the appliance (edge/).

One root, leaves chosen by how a caller reacts; retry loops read
``retriable`` instead of testing ``isinstance`` against a list::

    EdgeError                   root of everything edge/ raises on purpose
    └── ConfigError             the config file is wrong: names the file, the key
                                path, what was expected and what was found
                                (retriable=False); ``errors`` holds every problem
                                found in one pass
    └── StartupError            ``edge run`` cannot start: the log or the health address
                                is unusable; one line, and ``exit_status`` (edge/_exit.py)
                                that systemd can tell from a crash

Other modules (the uplink) add their own leaves under ``EdgeError``.
"""

from __future__ import annotations

__all__ = ["SECRET_KEYS", "ConfigError", "ConfigProblem", "EdgeError", "StartupError"]


class EdgeError(Exception):
    """Root of the errors that edge/ raises on purpose."""

    retriable: bool = False


def _show(value: object) -> str:
    """A found value as a config author would write it: strings in double quotes."""
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return repr(value)  # numbers; a _Withheld secret says its kind


#: Keys whose values are secrets, wherever they appear (devices[i].password,
#: upstream.sasl_password, health.token, ...): a problem with one never holds or shows the value.
SECRET_KEYS = frozenset({"password", "sasl_password", "ssl_key_password", "token"})


class _Withheld:
    """Stands for a secret's value in a ConfigProblem: only its kind is known."""

    __slots__ = ("kind",)

    def __init__(self, value: object) -> None:
        self.kind = _kind(value)

    def __repr__(self) -> str:
        return f"{self.kind} (not shown: a secret)"


def _kind(value: object) -> str:
    if isinstance(value, _Withheld):
        return value.kind
    if isinstance(value, str):
        return "an empty string" if not value else "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    return _show(value) if isinstance(value, dict | list) else f"a {type(value).__name__}"


class ConfigProblem:
    """One mistake in a config file: where it is and what was expected there.

    For a key in ``SECRET_KEYS`` the value is withheld: ``got`` and ``str()`` say only
    its kind (``got an integer``), so a password never reaches a terminal or a journal.
    """

    __slots__ = ("file", "key", "expected", "got", "missing")

    _MISSING = object()

    def __init__(self, file: str, key: str, expected: str, got: object = _MISSING) -> None:
        self.file = file
        self.key = key
        self.expected = expected
        self.missing = got is ConfigProblem._MISSING
        self.got = None if self.missing else got
        if not self.missing and key.rpartition(".")[2] in SECRET_KEYS:
            self.got = _Withheld(got)

    def __str__(self) -> str:
        found = "nothing (the key is missing)" if self.missing else _show(self.got)
        where = f"{self.file}: {self.key}" if self.key else self.file
        return f"{where}: expected {self.expected}, got {found}"

    def __repr__(self) -> str:
        return f"ConfigProblem({str(self)!r})"


class ConfigError(EdgeError, ValueError):
    """A config file that does not validate; ``str()`` lists every problem, one a line.

    ``file``, ``key``, ``expected`` and ``got`` describe the first problem;
    ``errors`` all of them.
    """

    retriable = False

    def __init__(self, problems: list[ConfigProblem] | ConfigProblem) -> None:
        if isinstance(problems, ConfigProblem):
            problems = [problems]
        if not problems:
            raise ValueError("ConfigError needs at least one problem")
        self.errors = list(problems)
        first = self.errors[0]
        self.file, self.key, self.expected, self.got = first.file, first.key, first.expected, first.got
        super().__init__("\n".join(str(p) for p in self.errors))


class StartupError(EdgeError):
    """``edge run`` cannot start; ``str()`` is one line naming the file or address and
    what is wrong, ``exit_status`` one of edge/_exit.py's statuses."""

    retriable = False

    def __init__(self, message: str, exit_status: int) -> None:
        super().__init__(message)
        self.exit_status = exit_status
