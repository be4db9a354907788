"""Keep the SQL in ``workbench.toml`` inside its box.

A dataset config may contain SQL in three places: column expressions
(``[tables.X.columns]``), row filters (``[tables.X].filter``) and ``query``
tables. A config is code, and whoever can edit it must not reach outside the
dataset's own sources: no reading ``/etc/passwd`` into a manager headline, no
writing files with ``COPY``, no second statement.

Two layers:

1. **Structure.** :func:`check_expression` parses the text with DuckDB's own
   parser (``json_serialize_sql``, offline, nothing is executed) and accepts
   exactly one expression built from column references, literals, casts,
   ``CASE``, operators and *scalar* built-in functions. Subqueries, table
   functions (``read_csv``, ``glob``, ``query`` …), aggregates, window
   functions, ``*``, parameters, aliases, extra clauses and a second statement
   are refused with a :class:`~workbench.config.ConfigError` that names the key.
   :func:`check_query` does the same for a whole ``SELECT`` that may only read
   the declared sources.
2. **Sandbox.** :func:`lock_connection` allows the build connection to read the
   dataset's own source files (and the transcoded copies in the cache's work
   folder) and then turns DuckDB's external access off for the rest of the
   connection's life: any file or network access not on that list fails.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

import duckdb

from workbench.config import ConfigError

#: scalar built-ins that read state outside the row (settings, variables,
#: sequences, the running query) or stall the build; refused although scalar
DENIED_FUNCTIONS = frozenset({
    "current_setting", "getvariable", "getenv", "nextval", "currval", "current_query", "pg_sleep",
    "json_serialize_sql", "json_deserialize_sql", "json_execute_serialized_sql", "unnest", "query",
    "query_table", "sql_auto_complete", "pg_get_viewdef", "pg_get_expr", "pg_get_constraintdef",
    "duckdb_settings", "which_secret",
})

#: expression node classes allowed in a column expression or filter
_EXPR_CLASSES = frozenset({
    "FUNCTION", "CONSTANT", "COLUMN_REF", "CAST", "CASE", "OPERATOR", "COMPARISON", "CONJUNCTION",
    "BETWEEN", "LAMBDA", "COLLATE",
})
#: further classes allowed inside a ``query`` table
_QUERY_CLASSES = _EXPR_CLASSES | {"STAR", "SUBQUERY", "WINDOW"}

_WHAT = {
    "SUBQUERY": "a subquery (SELECT …)",
    "STAR": "'*' / COLUMNS(…)",
    "WINDOW": "a window function (… OVER …)",
    "PARAMETER": "a query parameter",
    "POSITIONAL_REFERENCE": "a positional reference (#n)",
    "DEFAULT": "DEFAULT",
}


@lru_cache(maxsize=1)
def _catalogue() -> tuple[duckdb.DuckDBPyConnection, dict[str, frozenset[str]]]:
    """A private in-memory connection for parsing, and built-in function name → kinds."""
    con = duckdb.connect(config={"enable_external_access": False})
    kinds: dict[str, set[str]] = {}
    for name, kind in con.execute("SELECT DISTINCT function_name, function_type FROM duckdb_functions()").fetchall():
        kinds.setdefault(name.lower(), set()).add(kind)
    return con, {k: frozenset(v) for k, v in kinds.items()}


_PARSE_LOCK = threading.Lock()  # one private connection, shared by threads


def _parse(sql: str) -> dict[str, Any]:
    """DuckDB's parse tree of ``sql`` as JSON; ``{"error": message}`` when it does not parse."""
    con, _ = _catalogue()
    try:
        with _PARSE_LOCK:
            raw = con.execute("SELECT json_serialize_sql(?)", [sql]).fetchone()[0]
    except duckdb.Error as exc:  # pragma: no cover - json_serialize_sql reports errors in its result
        return {"error": str(exc).splitlines()[0]}
    tree = json.loads(raw)
    if tree.get("error"):
        message = str(tree.get("error_message") or "does not parse")
        if message.startswith("Only SELECT statements"):
            message = "it contains a statement other than SELECT (a ';' starts a second statement)"
        return {"error": message.splitlines()[0]}
    tree.pop("error", None)
    return tree


def _short(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _check_function(node: dict[str, Any], allow: frozenset[str]) -> str | None:
    """Why a FUNCTION node is refused, or None when it is allowed."""
    name = str(node.get("function_name", "")).lower()
    if node.get("catalog") or node.get("schema") not in ("", "main", None):
        return f"function {node.get('schema')}.{name} (only built-in functions are allowed)"
    if name in DENIED_FUNCTIONS:
        return f"function {name}() (it reads state outside the row)"
    _, kinds = _catalogue()
    found = kinds.get(name)
    if found is None:
        return f"unknown function {name}()"
    if not found & allow:
        kind = sorted(found)[0]
        label = {"table": "a table function", "table_macro": "a table function", "aggregate": "an aggregate",
                 "pragma": "a pragma"}.get(kind, kind)
        return f"function {name}() ({label}; only scalar functions are allowed here)"
    return None


def _walk(node: Any, classes: frozenset[str], functions: frozenset[str], tables: set[str] | None,
          ctes: set[str]) -> str | None:
    """First forbidden construct under ``node`` (depth first), or None."""
    if isinstance(node, list):
        for item in node:
            why = _walk(item, classes, functions, tables, ctes)
            if why:
                return why
        return None
    if not isinstance(node, dict):
        return None
    cls = node.get("class")
    if cls is not None:
        if cls not in classes:
            return _WHAT.get(cls, f"a {str(cls).lower().replace('_', ' ')} expression")
        if cls == "FUNCTION":
            why = _check_function(node, functions)
            if why:
                return why
        if cls == "STAR" and node.get("relation_name") and tables is None:
            return _WHAT["STAR"]
    elif "sample" in node and "query_location" in node and isinstance(node.get("type"), str):
        # a table reference (FROM …)
        kind = node["type"]
        if tables is None:
            return "a FROM clause"
        if kind == "TABLE_FUNCTION":
            fn = node.get("function") or {}
            return f"table function {str(fn.get('function_name', '')).lower()}() (read only the declared sources)"
        if kind == "BASE_TABLE":
            name = str(node.get("table_name", ""))
            if node.get("catalog_name") or node.get("schema_name"):
                return f"table {node.get('schema_name') or node.get('catalog_name')}.{name} (read only the declared sources)"
            if name.lower() not in tables and name.lower() not in ctes:
                known = ", ".join(sorted(tables)) or "none"
                return f"table {name} (not a declared source; declared: {known})"
        elif kind not in ("JOIN", "SUBQUERY", "EMPTY", "EXPRESSION_LIST"):
            return f"a {kind.lower().replace('_', ' ')} in FROM"
    if tables is not None and isinstance(node.get("cte_map"), dict):
        for entry in node["cte_map"].get("map", []):
            ctes.add(str(entry.get("key", "")).lower())
    for value in node.values():
        if isinstance(value, (dict, list)):
            why = _walk(value, classes, functions, tables, ctes)
            if why:
                return why
    return None


def _single_select(tree: dict[str, Any]) -> dict[str, Any] | None:
    statements = tree.get("statements") or []
    if len(statements) != 1:
        return None
    return statements[0].get("node")


def _extra_clauses(node: dict[str, Any]) -> str:
    """Names of the clauses a bare ``SELECT <expr>`` node has beyond its select list ('' if none)."""
    plain = {"type", "select_list", "from_table", "cte_map", "aggregate_handling", "query_location"}
    extra = [k for k, v in node.items() if k not in plain and v not in (None, [], {}, "", False)]
    if (node.get("cte_map") or {}).get("map"):
        extra.append("with")
    if node.get("aggregate_handling") not in (None, "STANDARD_HANDLING"):
        extra.append("group by all")
    names = {"where_clause": "WHERE", "group_expressions": "GROUP BY", "group_sets": "GROUP BY",
             "modifiers": "ORDER BY/LIMIT/DISTINCT", "with": "WITH", "group by all": "GROUP BY ALL"}
    return ", ".join(dict.fromkeys(names.get(k, k.replace("_", " ").upper()) for k in extra))


def check_expression(expr: str, where: str) -> str:
    """Refuse ``expr`` unless it is one scalar expression over the row's columns.

    Parameters
    ----------
    expr : str
        A column expression or filter from ``workbench.toml``.
    where : str
        The key, for the message: ``[tables.transactions.columns].amount`` or
        ``[tables.transactions].filter``.

    Returns
    -------
    str
        ``expr`` unchanged, so a caller can write ``check_expression(e, key)`` inline.

    Raises
    ------
    ConfigError
        Naming the key, the construct found, and what is allowed. Nothing of
        ``expr`` is executed.
    """
    if not isinstance(expr, str) or not expr.strip():
        raise ConfigError(f"{where}: empty expression; give a source column name or an expression like "
                          f"\"Quantity * UnitPrice\"")
    allowed = ("source columns, literals, CASE, casts and scalar functions (e.g. \"Quantity * UnitPrice\", "
               "\"strptime(d, '%d/%m/%Y')\")")
    tree = _parse("SELECT " + expr)
    if "error" in tree:
        raise ConfigError(f"{where}: {_short(expr)!r} is not a single SQL expression: {tree['error']}. "
                          f"Allowed: {allowed}")
    node = _single_select(tree)
    problem = None
    if node is None or node.get("type") != "SELECT_NODE":
        problem = "more than one statement or a set operation (UNION …)"
    elif (node.get("from_table") or {}).get("type") != "EMPTY":
        problem = "a FROM clause"
    elif len(node.get("select_list", [])) != 1:
        problem = "more than one expression (a comma outside a function call)"
    elif node["select_list"][0].get("alias"):
        problem = "an alias (AS …); the canonical column name is the key"
    elif _extra_clauses(node):
        problem = f"a clause ({_extra_clauses(node)})"
    if problem is None:
        problem = _walk(node["select_list"], _EXPR_CLASSES, frozenset({"scalar", "macro"}), None, set())
    if problem is None:
        # a trailing line comment would swallow whatever the engine writes after the expression
        wrapped = _parse("SELECT (" + expr + ")")
        if "error" in wrapped or len((_single_select(wrapped) or {}).get("select_list", [])) != 1:
            problem = "text that does not stay inside brackets (a '--' comment to the end of the line, or ';')"
    if problem:
        raise ConfigError(f"{where}: {_short(expr)!r} is not allowed: it contains {problem}. Allowed: {allowed}")
    return expr


def check_query(sql: str, where: str, sources: Iterable[str]) -> str:
    """Refuse ``sql`` unless it is one ``SELECT`` that reads only ``sources``.

    Joins, subqueries, CTEs, aggregates and window functions are allowed;
    table functions (``read_csv`` …), schema-qualified tables and tables that
    are not declared sources are not.

    Parameters
    ----------
    sql : str
        The ``query`` of a canonical table.
    where : str
        The key, e.g. ``[tables.customers].query``.
    sources : iterable of str
        Names the query may read (the ``[sources.*]`` names and canonical tables loaded before it).

    Returns
    -------
    str
        ``sql`` without trailing ``;`` (embed this text, not the original).
    """
    tables = {s.lower() for s in sources}
    sql = sql.strip().rstrip(";").rstrip()
    tree = _parse(sql)
    if "error" in tree:
        raise ConfigError(f"{where}: not a single SELECT: {tree['error']}")
    if len(tree.get("statements") or []) != 1:
        raise ConfigError(f"{where}: exactly one SELECT statement is allowed")
    problem = _walk(tree["statements"][0], _QUERY_CLASSES, frozenset({"scalar", "macro", "aggregate"}),
                    tables, set())
    if problem is None:
        wrapped = _parse("SELECT * FROM (" + sql + ")")
        if "error" in wrapped:
            problem = "text that does not stay inside brackets (a '--' comment to the end of the line, or ';')"
    if problem:
        raise ConfigError(f"{where}: the query may read only the declared sources with one SELECT; "
                          f"it contains {problem}")
    return sql


def lock_connection(con: duckdb.DuckDBPyConnection, paths: Iterable[os.PathLike[str] | str] = (),
                    directories: Iterable[os.PathLike[str] | str] = ()) -> bool:
    """Allow ``con`` to read only ``paths`` and files under ``directories``, then disable external access.

    DuckDB cannot turn external access back on in a running database, and the
    allow-lists cannot change once it is off, so call this once, before any
    configured SQL runs. The connection's own database file (and its WAL and
    spill folder) stay usable.

    Returns
    -------
    bool
        False when this DuckDB cannot lock a running connection (the parse
        checks still apply).
    """
    # each path as written and resolved (symlinks): DuckDB compares the path a reader opens
    files = sorted({str(f) for p in paths for f in (Path(p).absolute(), Path(p).resolve())})
    dirs = sorted({str(f) + os.sep for d in directories for f in (Path(d).absolute(), Path(d).resolve())})
    try:
        if files:
            con.execute("SET allowed_paths = ?", [files])
        if dirs:
            con.execute("SET allowed_directories = ?", [dirs])
        con.execute("SET enable_external_access = false")
    except duckdb.Error:
        return False
    return True


def check_table_sql(table: str, mapping: dict[str, str], filter_sql: str | None) -> None:
    """Check every column expression and the filter of canonical ``table`` (see :func:`check_expression`)."""
    for column, expr in mapping.items():
        check_expression(expr, f"[tables.{table}.columns].{column}")
    if filter_sql:
        check_expression(filter_sql, f"[tables.{table}].filter")


def source_files(config: Any) -> list[Path]:
    """Every file a dataset config declares (tables and ``[sources.*]``): what its build may read."""
    files: list[Path] = []
    for group in ("tables", "sources"):
        for tc in (getattr(config, group, None) or {}).values():
            files.extend(getattr(tc, "files", ()) or ())
    return files
