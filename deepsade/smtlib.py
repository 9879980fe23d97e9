"""Reading constraint files as data: a small S-expression scanner that admits only declarations,
definitions and asserts, and bounds size and nesting before z3 ever sees the text."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

from deepsade.errors import UserInputError

MAX_FILE_BYTES = 1_000_000
MAX_NESTING = 200
# Bounds once define-fun macros are expanded (macros that use each other multiply depth and size: a few
# lines can describe a formula z3 would take hours or all memory to build). Checked before z3 parses.
MAX_EXPANDED_DEPTH = 400
MAX_EXPANDED_TERMS = 200_000
KEPT_COMMANDS = {"declare-const", "declare-fun", "define-fun", "assert"}
# Harmless in a script meant for a solver; dropped with a note instead of refusing the file.
IGNORED_COMMANDS = {"set-info", "set-logic", "check-sat", "get-model", "exit", "set-option", "get-info"}
# Every assert already holds for all inputs of the domain: an explicit quantifier has no meaning the
# certificate could check, so it is refused on every path (check, train, verify, baselines).
QUANTIFIERS = {"forall", "exists"}
# Numbers SMT-LIB does not have: z3 would read 1.5e3 as the decimal 1.5 followed by a symbol e3.
_NOT_SMTLIB_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)[eE][+-]?\d+|[+-]?\.\d+|[+-]?\d+\.")


def _plain_decimal(token: str) -> str:
    """The SMT-LIB decimal equal to ``token`` ('1.5e3' -> '1500.0', '5e-2' -> '0.05', '.5' -> '0.5')."""
    try:
        value = Decimal(token)
    except InvalidOperation:
        return token
    text = format(value, "f").lstrip("+")
    return text if "." in text else text + ".0"


def _check_number_token(token: str, text: str, offset: int) -> None:
    if _NOT_SMTLIB_NUMBER.fullmatch(token):
        raise UserInputError(f"line {_line_of(text, offset)}: {token!r}: SMT-LIB has no scientific notation: write "
                             f"{_plain_decimal(token)}")
    if token in QUANTIFIERS:
        raise UserInputError(f"line {_line_of(text, offset)}: '{token}' is not supported: every assert already holds "
                             "for all inputs of the domain, so write the rule without a quantifier")


@dataclass(frozen=True)
class Command:
    """One top-level command: its name, its tokens (without the outer parentheses) and its text span."""

    name: str
    tokens: tuple[str, ...]
    start: int
    end: int
    line: int


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def scan_commands(text: str) -> list[Command]:
    """Split SMT-LIB text into top-level commands, checking parentheses, quoting and nesting depth."""
    commands: list[Command] = []
    depth, i, n = 0, 0, len(text)
    start = -1
    tokens: list[str] = []
    while i < n:
        ch = text[i]
        if ch == ";":
            newline = text.find("\n", i)
            i = n if newline < 0 else newline + 1
            continue
        if ch.isspace():
            i += 1
            continue
        if ch == "(":
            if depth == 0:
                start, tokens = i, []
            else:
                tokens.append("(")
            depth += 1
            if depth > MAX_NESTING:
                raise UserInputError(f"line {_line_of(text, i)}: nesting deeper than {MAX_NESTING} levels")
            i += 1
            continue
        if ch == ")":
            depth -= 1
            if depth < 0:
                raise UserInputError(f"line {_line_of(text, i)}: unbalanced ')'")
            if depth == 0:
                if not tokens:
                    raise UserInputError(f"line {_line_of(text, start)}: empty command '()'")
                commands.append(Command(tokens[0], tuple(tokens[1:]), start, i + 1, _line_of(text, start)))
            else:
                tokens.append(")")
            i += 1
            continue
        if depth == 0:
            raise UserInputError(f"line {_line_of(text, i)}: text outside a command: {text[i:i + 20]!r}")
        if ch == "|":
            close = text.find("|", i + 1)
            if close < 0:
                raise UserInputError(f"line {_line_of(text, i)}: unterminated |quoted symbol|")
            tokens.append(text[i + 1:close])
            i = close + 1
            continue
        if ch == '"':
            close = text.find('"', i + 1)
            if close < 0:
                raise UserInputError(f"line {_line_of(text, i)}: unterminated string")
            tokens.append(text[i:close + 1])
            i = close + 1
            continue
        j = i
        while j < n and not text[j].isspace() and text[j] not in '();|"':
            j += 1
        _check_number_token(text[i:j], text, i)
        tokens.append(text[i:j])
        i = j
    if depth != 0:
        raise UserInputError(f"unbalanced parentheses: {depth} '(' never closed (command at line {_line_of(text, start)})")
    return commands


@dataclass(frozen=True)
class ConstraintSource:
    """The admitted text of a constraint file and what was declared in it."""

    text: str  # the file with ignored commands blanked: only declarations, definitions and asserts
    declared: dict[str, str]  # name -> sort
    n_asserts: int
    notes: tuple[str, ...]
    bound_names: tuple[tuple[str, int], ...] = ()  # (name, line) bound by define-fun (name, parameters) or let


def _tree(tokens: tuple[str, ...]) -> list:
    """Tokens of one command (with '(' and ')' markers) as nested lists; nesting is already bounded."""
    root: list = []
    stack = [root]
    for token in tokens:
        if token == "(":
            stack.append([])
        elif token == ")" and len(stack) > 1:
            done = stack.pop()
            stack[-1].append(done)
        else:  # an atom (a quoted |(| or |)| reads like a parenthesis here; z3 will judge the real text)
            stack[-1].append(token)
    while len(stack) > 1:
        done = stack.pop()
        stack[-1].append(done)
    return root


def _expanded(expr, macros: dict[str, tuple[int, int]], local: frozenset = frozenset()) -> tuple[int, int]:
    """Upper bounds on (depth, number of terms) of ``expr`` once the macros in ``macros`` are expanded."""
    if isinstance(expr, str):
        return macros[expr] if expr in macros and expr not in local else (1, 1)
    if not expr:
        return 1, 1
    head = expr[0]
    parts = [_expanded(child, macros, local) for child in expr[1:]]
    deepest = max((d for d, _ in parts), default=0)
    terms = sum(t for _, t in parts)
    if isinstance(head, str) and head in macros and head not in local:
        depth, size = macros[head]
        return depth + deepest, size + terms
    head_depth, head_terms = _expanded(head, macros, local) if isinstance(head, list) else (1, 1)
    return max(head_depth, deepest) + 1, head_terms + terms + 1


def _check_expansion(command: Command, macros: dict[str, tuple[int, int]], origin: str) -> None:
    """Bound the expanded size of a define-fun or assert; record a define-fun's bounds for later uses."""
    tree = _tree(command.tokens)
    if command.name == "define-fun" and len(tree) >= 4 and isinstance(tree[1], list):
        params = frozenset(p[0] for p in tree[1] if isinstance(p, list) and p and isinstance(p[0], str))
        depth, terms = _expanded(tree[-1], macros, params)
    elif command.name == "assert" and tree:
        depth, terms = _expanded(tree[-1], macros)
    else:
        return
    what = f"{origin} line {command.line}: {command.name}"
    if depth > MAX_EXPANDED_DEPTH:
        raise UserInputError(f"{what} nests deeper than {MAX_EXPANDED_DEPTH} levels once its define-fun macros "
                             "are expanded")
    if terms > MAX_EXPANDED_TERMS:
        raise UserInputError(f"{what} has more than {MAX_EXPANDED_TERMS:,} terms once its define-fun macros are "
                             "expanded")
    if command.name == "define-fun" and isinstance(tree[0], str):
        macros[tree[0]] = (depth, terms)


def read_constraint_text(text: str, origin: str = "<constraints>") -> ConstraintSource:
    """Check the commands of a constraint file and keep the admitted ones."""
    if len(text.encode("utf-8", errors="replace")) > MAX_FILE_BYTES:
        raise UserInputError(f"{origin}: constraint file larger than {MAX_FILE_BYTES // 1000} kB")
    commands = scan_commands(text)
    blanked = list(text)
    declared: dict[str, str] = {}
    notes: list[str] = []
    n_asserts = 0
    macros: dict[str, tuple[int, int]] = {}
    bound: list[tuple[str, int]] = []
    for command in commands:
        if command.name in IGNORED_COMMANDS:
            notes.append(f"line {command.line}: ignored ({command.name}): constraint files hold declarations and asserts only")
            # blank the command but keep its newlines so z3's line numbers still match the file
            for k in range(command.start, command.end):
                if blanked[k] != "\n":
                    blanked[k] = " "
            continue
        if command.name not in KEPT_COMMANDS:
            raise UserInputError(
                f"{origin} line {command.line}: command '{command.name}' is not allowed in a constraint file "
                "(only declare-const, declare-fun with no arguments, define-fun and assert)"
            )
        if command.name == "declare-const":
            if len(command.tokens) != 2:
                raise UserInputError(f"{origin} line {command.line}: declare-const takes a name and a sort")
            declared[command.tokens[0]] = command.tokens[1]
        elif command.name == "declare-fun":
            toks = command.tokens
            if len(toks) != 4 or toks[1:3] != ("(", ")"):
                raise UserInputError(
                    f"{origin} line {command.line}: declare-fun with arguments is not supported; "
                    "declare each column with (declare-const NAME Real)"
                )
            declared[toks[0]] = toks[3]
        elif command.name == "assert":
            n_asserts += 1
        _check_expansion(command, macros, origin)
        bound.extend((name, command.line) for name in _bound_names(command))
    if n_asserts == 0:
        raise UserInputError(f"{origin}: no (assert ...) found: nothing to enforce")
    shadowing = sorted({(name, line) for name, line in bound if name in declared}, key=lambda p: p[1])
    if shadowing:
        name, line = shadowing[0]
        raise UserInputError(f"{origin} line {line}: '{name}' is declared as a column and bound again by a "
                             "define-fun or let: the rule would not mean what it reads; rename the binding")
    return ConstraintSource("".join(blanked), declared, n_asserts, tuple(notes), tuple(bound))


def _bound_names(command: Command) -> list[str]:
    """Names a define-fun (its name and parameters) or a let inside the command binds."""
    tree = _tree(command.tokens)
    names: list[str] = []
    if command.name == "define-fun" and tree and isinstance(tree[0], str):
        names.append(tree[0])
        if len(tree) > 1 and isinstance(tree[1], list):
            names += [p[0] for p in tree[1] if isinstance(p, list) and p and isinstance(p[0], str)]
    stack = [tree]
    while stack:
        node = stack.pop()
        if not isinstance(node, list):
            continue
        if len(node) >= 2 and node[0] == "let" and isinstance(node[1], list):
            names += [b[0] for b in node[1] if isinstance(b, list) and b and isinstance(b[0], str)]
        stack.extend(node)
    return names


def read_constraint_file(path: str | Path) -> ConstraintSource:
    path = Path(path)
    if not path.exists():
        raise UserInputError(f"constraint file not found: {path}")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise UserInputError(f"{path}: constraint file larger than {MAX_FILE_BYTES // 1000} kB")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UserInputError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    first_line = text.lstrip().split("\n", 1)[0]
    if first_line and not first_line.startswith(("(", ";")) and "," in first_line:
        raise UserInputError(f"{path} is not SMT-LIB: its first line ({first_line[:40]!r}) reads like a CSV header; "
                             "is it the data file? (the rule file holds (declare-const ...) and (assert ...))")
    return read_constraint_text(text, str(path))
