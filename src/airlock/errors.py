"""The one error tree of Airlock. Every error says whether retrying it can help.

    AirlockError                      retryable = False unless stated
    ├── UserError                     a person's mistake: the CLI prints one line, exits 2
    │   ├── ConfigError               settings or environment that cannot work
    │   ├── PlaybookError             a playbook file that is missing, unreadable or malformed
    │   ├── InputDataError            an input dataset that is missing or has the wrong columns
    │   ├── PlanRejected              check_plan found problems (``.problems`` lists them all)
    │   ├── NotFound                  a run, review item or dead letter id that does not exist
    │   ├── StateConflict             the action does not fit the object's state (already decided…)
    │   ├── Unauthenticated           no token or session, or one that is not (any more) valid
    │   └── Forbidden                 the user's role does not allow the action
    ├── ToolError                     a tool call failed
    │   ├── ToolInputError            the tool refuses this input; the same input fails again
    │   ├── ToolOutputError           the output broke the tool's contract
    │   └── TransientToolError        retryable; may carry ``retry_after`` seconds
    ├── InfrastructureError           retryable: store or business system unreachable or locked
    ├── ModelError                    a language model call did not give a usable answer
    │   ├── ModelProviderError        the provider failed (429, 5xx, timeout: retryable; 4xx: not);
    │   │                             may carry ``retry_after`` seconds
    │   ├── ModelOutputError          the answer is malformed or breaks its schema; not retryable
    │   └── BudgetExhausted           the run's token or money budget is spent: no more paid calls
    ├── ValidationCrashed             the validation layer itself failed: fail closed
    └── IdempotencyConflict           a key arrived again with different values: goes to review
"""

from __future__ import annotations


class AirlockError(Exception):
    """Base of every error Airlock raises on purpose."""

    retryable: bool = False

    def __init__(self, message: str, *, retryable: bool | None = None) -> None:
        super().__init__(message)
        if retryable is not None:
            self.retryable = retryable

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else type(self).__name__


class UserError(AirlockError):
    """Something a person can fix: bad input, a wrong id, an action that does not apply."""


class ConfigError(UserError):
    pass


class PlaybookError(UserError):
    pass


class InputDataError(UserError):
    pass


class PlanRejected(UserError):
    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        listed = "; ".join(self.problems)
        super().__init__(f"plan rejected ({len(self.problems)} problem(s)): {listed}")


class NotFound(UserError):
    pass


class StateConflict(UserError):
    pass


class Unauthenticated(UserError):
    pass


class Forbidden(UserError):
    pass


class ToolError(AirlockError):
    pass


class ToolInputError(ToolError):
    pass


class ToolOutputError(ToolError):
    pass


class TransientToolError(ToolError):
    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class InfrastructureError(AirlockError):
    retryable = True


class ModelError(AirlockError):
    """A language model call (planner or enrichment) did not give a usable answer."""


class ModelProviderError(ModelError):
    def __init__(self, message: str, *, retryable: bool, retry_after: float | None = None,
                 status: int | None = None) -> None:
        super().__init__(message, retryable=retryable)
        self.retry_after = retry_after
        self.status = status


class ModelOutputError(ModelError):
    pass


class BudgetExhausted(ModelError):
    pass


class ValidationCrashed(AirlockError):
    pass


class IdempotencyConflict(AirlockError):
    pass


def is_retryable(error: BaseException) -> bool:
    """Our errors say so themselves; for foreign ones, only I/O-shaped failures are worth a retry."""
    if isinstance(error, AirlockError):
        return error.retryable
    return isinstance(error, (TimeoutError, ConnectionError))


def retry_after_of(error: BaseException) -> float | None:
    value = getattr(error, "retry_after", None)
    return float(value) if isinstance(value, (int, float)) else None
