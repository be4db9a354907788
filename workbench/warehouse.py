"""The analyses inside PostgreSQL or Spark: one adapter behind ``Dataset.sql``, ``Dataset.table`` and ``_con``.

With ``[engine] kind = "postgres"`` (``url``, ``schema``) or ``kind = "spark"`` (``master``, Parquet
``source`` files or catalog tables in ``database``) the canonical tables are **not** copied into a
DuckDB cache. :func:`open_warehouse` checks them in the engine and publishes, per session, a
temporary view with each canonical name that applies the validation rules (so every analysis sees
only valid rows, as with DuckDB); :class:`WarehouseDataset` then serves

* ``ds.table(name)`` — an Ibis table of that engine's Ibis backend (same expressions as on DuckDB);
* ``ds.sql(query)`` — the analyses' DuckDB-dialect SQL, translated once per text by :func:`translate`
  (sqlglot plus the hand fixes listed there), run in the engine, returned as pandas with the same
  column types DuckDB's ``.df()`` gives;
* ``ds._con.execute(query)`` — the same, with ``fetchall``/``df``/``fetchnumpy``, and temporary
  tables (``CREATE TEMP TABLE … AS``; on Spark a cached temporary view).

Validation in the engine (counts in ``ds.validation`` like the DuckDB loader): canonical column
types (a column of the wrong type stops the load with the table, column and type named), required
columns (``missing_column``), ``missing_value``, ``out_of_scale``, ``future_date``,
``closed_before_opened``, ``duplicate_id`` (later copies in column order dropped: a warehouse table has
no file order), ``orphan_customer_id``, non-finite numbers (``wrong_type``, nulled or excluded).
Not yet in the engine: text parsing of dates and numbers (the warehouse already types them),
``negative_points_balance``, ``churn_mismatch``, ``[tables.X.columns]`` mappings and filters.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import duckdb
import ibis
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import sqlglot
from sqlglot import exp

from workbench import __version__, results
from workbench.config import ConfigError, DatasetConfig, TableConfig, redact_url
from workbench.engine import (
    MAX_EXAMPLES,
    BuildState,
    DataError,
    Dataset,
    TableLoad,
    canonical_columns,
)
from workbench.io import quote_ident, quote_str
from workbench.schema import DEFAULT_SCALE, RULES, SCHEMA_VERSION, TABLES, Issue

log = logging.getLogger(__name__)

DIALECTS = {"postgres": "postgres", "spark": "spark"}
_AGGS = (exp.AggFunc,)
_ISO_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


# ------------------------------------------------------------------ translation
def _literal(value: Any) -> exp.Expression:
    """A SQL literal for a query parameter (dates as DATE/TIMESTAMP literals, as DuckDB would cast them)."""
    if value is None:
        return exp.Null()
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, (int, float)):
        return exp.Literal.number(repr(value) if isinstance(value, float) else str(value))
    if isinstance(value, dt.datetime):
        return exp.cast(exp.Literal.string(value.isoformat(sep=" ")), exp.DataType.build("TIMESTAMP"))
    if isinstance(value, dt.date):
        return exp.cast(exp.Literal.string(value.isoformat()), exp.DataType.build("DATE"))
    text = str(value)
    if _ISO_DAY.match(text):
        return exp.cast(exp.Literal.string(text), exp.DataType.build("DATE"))
    return exp.Literal.string(text)


def _group_by_all(tree: exp.Expression) -> exp.Expression:
    """``GROUP BY ALL`` (DuckDB, Spark ≥ 3.4; not PostgreSQL 15) as the positions of the non-aggregates."""
    for select in tree.find_all(exp.Select):
        group = select.args.get("group")
        if group is None or not group.args.get("all"):
            continue
        keys = [exp.Literal.number(i) for i, e in enumerate(select.expressions, 1)
                if not any(isinstance(n, _AGGS) for n in e.walk())]
        select.set("group", exp.Group(expressions=keys) if keys else None)
    return tree


def _alias_subqueries(tree: exp.Expression) -> exp.Expression:
    """PostgreSQL before 16 needs an alias on every subquery in FROM/JOIN (DuckDB and Spark do not)."""
    for i, sub in enumerate(tree.find_all(exp.Subquery)):
        if not sub.alias and isinstance(sub.parent, (exp.From, exp.Join)):
            sub.set("alias", exp.TableAlias(this=exp.to_identifier(f"_wb_sq{i}")))
    return tree


def _is_boolean(node: exp.Expression) -> bool:
    """A condition (comparison, AND/OR/NOT, TRUE/FALSE), also inside parentheses or COALESCE(…) with a condition
    or TRUE/FALSE among its arguments (``COALESCE(flag_column, false)``)."""
    node = node.unnest() if isinstance(node, exp.Paren) else node
    if isinstance(node, exp.Coalesce):
        return any(_is_boolean(a) for a in [node.this, *node.expressions])
    return isinstance(node, (exp.Predicate, exp.Connector, exp.Not, exp.Boolean))


def _bool_casts(tree: exp.Expression) -> exp.Expression:
    """PostgreSQL casts a boolean to INTEGER only: ``CAST(x IS NULL AS TINYINT/DOUBLE)`` goes through INTEGER."""
    numeric = exp.DataType.NUMERIC_TYPES - {exp.DataType.Type.INT}
    for cast in list(tree.find_all(exp.Cast)):
        if cast.to.this in numeric and _is_boolean(cast.this):
            cast.set("this", exp.cast(cast.this, exp.DataType.build("INT")))
    return tree


def _pg_functions(tree: exp.Expression) -> exp.Expression:
    """DuckDB functions PostgreSQL lacks: ``contains(s, t)`` and two-argument ``arg_max``/``arg_min``.

    ``arg_max(x, y)`` is the first element of ``x`` ordered by ``y`` descending over the rows with
    ``y`` present (DuckDB skips NULL ``y`` too); ties go to ``x``'s own order so the pick is stable.
    """
    def fix(node: exp.Expression) -> exp.Expression:
        if isinstance(node, (exp.ArgMax, exp.ArgMin)) and isinstance(node.expression, exp.Tuple):
            # arg_min(x, (a, b, c)): DuckDB compares the key as a struct (never NULL as a whole)
            x = node.this.sql("postgres")
            keys = ", ".join(f"{k.sql('postgres')} {'DESC' if isinstance(node, exp.ArgMax) else 'ASC'}"
                             for k in node.expression.expressions)
            return sqlglot.parse_one(f"((array_agg({x} ORDER BY {keys}, {x}))[1])", read="postgres")
        if isinstance(node, (exp.ArgMax, exp.ArgMin)) and node.args.get("count"):
            # min_by(x, y, n): the n values of x with the smallest y, as an array in y order
            x, y, n = (node.this.sql("postgres"), node.expression.sql("postgres"), node.args["count"].sql("postgres"))
            way = "DESC" if isinstance(node, exp.ArgMax) else "ASC"
            return sqlglot.parse_one(f"((array_agg({x} ORDER BY {y} {way}, {x}) FILTER (WHERE {y} IS NOT NULL))[1:{n}])",
                                     read="postgres")
        if isinstance(node, exp.Round) and node.args.get("decimals") is not None:
            # PostgreSQL rounds to decimals only a NUMERIC (half away from zero, as DuckDB rounds a DOUBLE)
            return exp.cast(exp.Round(this=exp.cast(node.this, exp.DataType.build("DECIMAL")),
                                      decimals=node.args["decimals"]), exp.DataType.build("DOUBLE"))
        if isinstance(node, exp.Anonymous) and node.name.lower() == "bit_count":
            return exp.Anonymous(this="bit_count", expressions=[exp.cast(node.expressions[0],
                                                                         exp.DataType.build("BIT(64)", dialect="postgres"))])
        if isinstance(node, exp.Explode) and isinstance(node.this, exp.GenerateSeries):
            # unnest(range(DATE a, DATE b, INTERVAL …)): PostgreSQL's generate_series is a set already; on
            # timestamps without time zone (on dates it would pick the time-zone-aware variant)
            gs, ts = node.this, exp.DataType.build("TIMESTAMP")
            end = exp.cast(gs.args["end"], ts)
            if gs.args.get("is_end_exclusive"):  # range() stops before its end
                end = exp.Sub(this=end, expression=exp.Interval(this=exp.Literal.string("1"), unit=exp.var("MICROSECOND")))
            return exp.GenerateSeries(start=exp.cast(gs.args["start"], ts), end=end, step=gs.args.get("step"))
        if isinstance(node, exp.Contains):
            return sqlglot.parse_one(f"(strpos({node.this.sql('postgres')}, {node.expression.sql('postgres')}) > 0)",
                                     read="postgres")
        if isinstance(node, (exp.ArgMax, exp.ArgMin)) and not node.args.get("count"):
            x, y = node.this.sql("postgres"), node.expression.sql("postgres")
            way = "DESC" if isinstance(node, exp.ArgMax) else "ASC"
            return sqlglot.parse_one(f"((array_agg({x} ORDER BY {y} {way}, {x}) FILTER (WHERE {y} IS NOT NULL))[1])",
                                     read="postgres")
        return node
    return tree.transform(fix)


_BOUNDARY = {"DAY": "datediff({b}, {a})", "MONTH": "((year({b}) - year({a})) * 12 + month({b}) - month({a}))",
             "QUARTER": "((year({b}) - year({a})) * 4 + quarter({b}) - quarter({a}))", "YEAR": "(year({b}) - year({a}))"}


def _spark_functions(tree: exp.Expression) -> exp.Expression:
    """On Spark: DuckDB ``min_by(x, y, n)`` / ``max_by`` (an array of n), a struct key ``arg_min(x, (a, b))``,
    ``date_diff`` in days, months, quarters or years as boundaries crossed (DuckDB's meaning),
    ``quantile_cont`` as ``percentile`` and ``AS MATERIALIZED`` dropped."""
    def fix(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.GenerateSeries) and node.args.get("is_end_exclusive"):
            # range(DATE a, DATE b, step) stops before b: sequence() includes its end (sqlglot's own rewrite
            # guards the step with a comparison of an interval and 0, which Spark rejects)
            start, end = node.args["start"], node.args["end"]
            dated = isinstance(start, exp.Cast) and start.to.this == exp.DataType.Type.DATE
            before = exp.Sub(this=end, expression=exp.Interval(this=exp.Literal.string("1"),
                                                               unit=exp.var("DAY" if dated else "MICROSECOND")))
            return exp.Anonymous(this="sequence", expressions=[start, before, node.args["step"]])
        if isinstance(node, exp.CTE) and node.args.get("materialized") is not None:
            node.set("materialized", None)  # a planner hint Spark's parser rejects
            return node
        if isinstance(node, exp.PercentileCont) and node.expression is not None:
            # quantile_cont(x, q): Spark's percentile(x, q) interpolates linearly, as DuckDB does
            return exp.Anonymous(this="percentile", expressions=[node.this, node.expression])
        if isinstance(node, exp.DateDiff) and (node.unit.name if node.unit else "DAY").upper() in _BOUNDARY:
            # DuckDB counts unit boundaries crossed; Spark's datediff(MONTH, …) counts whole units elapsed
            a, b = (exp.cast(e, exp.DataType.build("DATE")).sql("spark") for e in (node.expression, node.this))
            unit = (node.unit.name if node.unit else "DAY").upper()
            return sqlglot.parse_one(_BOUNDARY[unit].format(a=a, b=b), read="spark")
        if isinstance(node, (exp.ArgMax, exp.ArgMin)) and isinstance(node.expression, exp.Tuple):
            node = node.copy()
            node.set("expression", exp.Struct(expressions=node.expression.expressions))
            return node
        if isinstance(node, (exp.ArgMax, exp.ArgMin)) and node.args.get("count"):
            x, y, n = node.this.sql("spark"), node.expression.sql("spark"), node.args["count"].sql("spark")
            arr = f"array_sort(filter(collect_list(struct({y} AS k, {x} AS v)), s -> s.k IS NOT NULL))"
            if isinstance(node, exp.ArgMax):
                arr = f"reverse({arr})"
            return sqlglot.parse_one(f"transform(slice({arr}, 1, {n}), s -> s.v)", read="spark")
        return node
    return tree.transform(fix)


def _spark_epoch(tree: exp.Expression) -> exp.Expression:
    """DuckDB ``epoch(ts)`` on Spark without the session time zone.

    sqlglot writes ``UNIX_TIMESTAMP(ts)``, which reads a TIMESTAMP_NTZ as wall time in the session
    time zone: a 2-hour gap across a daylight-saving change comes out as 1 or 3 hours. Days since
    1970 plus the time of day is the nominal epoch DuckDB and PostgreSQL compute.
    """
    def fix(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.TimeToUnix):
            x = node.this.sql("spark")
            return sqlglot.parse_one(
                f"(CAST(unix_date(CAST({x} AS DATE)) AS DOUBLE) * 86400 + hour({x}) * 3600 + minute({x}) * 60 "
                f"+ CAST(date_part('SECOND', {x}) AS DOUBLE))", read="spark")
        return node
    return tree.transform(fix)


def _list_position(tree: exp.Expression, dialect: str) -> exp.Expression:
    """DuckDB ``list_position(list, x)`` (1-based, NULL when absent) as ``array_position`` (Spark: 0 when absent)."""
    def fix(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Anonymous) and node.name.lower() == "list_position":
            pos = exp.Anonymous(this="array_position", expressions=node.expressions)
            return exp.Nullif(this=pos, expression=exp.Literal.number(0)) if dialect == "spark" else pos
        return node
    return tree.transform(fix)


def _semi_joins(tree: exp.Expression) -> exp.Expression:
    """``FROM a SEMI JOIN b USING (k)`` / ``ON …`` (DuckDB, Spark) as ``WHERE EXISTS`` (PostgreSQL).

    The left side is the FROM relation (the only shape the analyses use: a SEMI JOIN right after FROM).
    """
    for select in list(tree.find_all(exp.Select)):
        joins = select.args.get("joins") or []
        semis = [j for j in joins if (j.args.get("kind") or "").upper() == "SEMI"]
        if not semis:
            continue
        left = select.args["from_"].this if "from_" in select.args else select.args["from"].this
        lname = left.alias_or_name
        for i, j in enumerate(semis):
            right = j.this.copy()
            alias = right.alias_or_name or f"_wb_semi{i}"
            if not right.alias:
                right = exp.alias_(right, alias, table=True)
            if j.args.get("using"):
                cond = exp.and_(*[exp.EQ(this=exp.column(u.name, table=alias), expression=exp.column(u.name, table=lname))
                                  for u in j.args["using"]])
            else:
                cond = j.args["on"]
            exists = exp.Exists(this=exp.select("1").from_(right).where(cond))
            select.where(exists, copy=False)
        select.set("joins", [j for j in joins if j not in semis] or None)
    return tree


@lru_cache(maxsize=4096)
def _translate_cached(sql: str, dialect: str) -> str | None:
    tree = sqlglot.parse_one(sql, read="duckdb")
    if isinstance(tree, exp.Set):  # DuckDB session settings (progress bar …) mean nothing elsewhere
        return None
    tree = _list_position(tree, dialect)
    if dialect == "postgres":
        tree = _pg_functions(_bool_casts(_alias_subqueries(_semi_joins(_group_by_all(tree)))))
    if dialect == "spark":
        tree = _spark_functions(_spark_epoch(tree))
    return tree.sql(dialect)


def translate(sql: str, dialect: str, params: list | tuple | None = None) -> str | None:
    """DuckDB-dialect ``sql`` as ``dialect`` SQL (``None`` for a statement with no meaning there).

    sqlglot does the translation; the hand fixes are ``?`` parameters inlined as literals (drivers
    differ in placeholder syntax, and ``%`` in LIKE patterns breaks psycopg's), ``GROUP BY ALL`` on
    PostgreSQL (:func:`_group_by_all`), aliases for FROM subqueries on PostgreSQL
    (:func:`_alias_subqueries`), boolean → number casts, ``contains`` and ``arg_max``/``arg_min`` on PostgreSQL
    (:func:`_bool_casts`, :func:`_pg_functions`), ``epoch`` on Spark (:func:`_spark_epoch`) and DuckDB ``SET``
    statements dropped.
    """
    if params:
        sql = _inline_params(sql, params)
    return _translate_cached(sql, dialect)


def _inline_params(sql: str, params: list | tuple) -> str:
    """``?`` placeholders replaced by literals in the order they appear in the text.

    Token positions, not the parse tree: a tree walk visits a WITH clause's CTEs after the main SELECT's
    list, which sent the first parameter to a later ``?``; ``?`` inside strings and comments is no token.
    """
    from sqlglot.tokens import TokenType

    dialect = sqlglot.Dialect.get_or_raise("duckdb")
    marks = [t for t in dialect.tokenize(sql) if t.token_type == TokenType.PLACEHOLDER and t.text == "?"]
    if len(marks) != len(params):
        raise ValueError(f"{len(params)} parameter(s) for {len(marks)} placeholder(s)")
    out, pos = [], 0
    for tok, value in zip(marks, params, strict=True):
        out += [sql[pos:tok.start], _literal(value).sql("duckdb")]
        pos = tok.end + 1
    return "".join(out) + sql[pos:]


# ------------------------------------------------------------------ results
def _arrow_to_pandas(table: pa.Table, numpy: bool = False) -> Any:
    """pandas with DuckDB's column types: decimals as doubles, time-zone-aware timestamps as local wall time.

    ``numpy``: DuckDB's ``fetchnumpy`` instead (a column with NULLs is a masked array, as the analyses expect).
    """
    if not table.num_columns:
        return {} if numpy else pd.DataFrame()
    cols = []
    for col in table.columns:
        if pa.types.is_decimal(col.type):
            col = pc.cast(col, pa.float64())
        elif pa.types.is_timestamp(col.type) and col.type.tz is not None:
            col = pc.local_timestamp(col)
        cols.append(col)
    fixed = pa.Table.from_arrays(cols, names=[f"c{i}" for i in range(len(cols))])
    con = duckdb.connect()
    try:
        if numpy:
            got = con.from_arrow(fixed).fetchnumpy()
            return {name: got[f"c{i}"] for i, name in enumerate(table.column_names)}
        df = con.from_arrow(fixed).df()
    finally:
        con.close()
    df.columns = table.column_names
    return df


class Result:
    """What ``_con.execute`` returns: the DuckDB result methods the analyses use."""

    def __init__(self, table: pa.Table):
        self.arrow = table

    def fetchall(self) -> list[tuple]:
        cols = [c.to_pylist() for c in self.arrow.columns]
        return list(zip(*cols, strict=True)) if cols else []

    def fetchone(self) -> tuple | None:
        rows = self.fetchall()
        return rows[0] if rows else None

    def df(self) -> pd.DataFrame:
        return _arrow_to_pandas(self.arrow)

    def fetchnumpy(self) -> dict[str, Any]:
        return _arrow_to_pandas(self.arrow, numpy=True)


_EMPTY = pa.table({})


# ------------------------------------------------------------------ engines
class NotOnThisEngine(results.Unsupported):
    """An analysis whose SQL does not (yet) run on the configured engine: skipped, saying so."""

    prefix = "core.engine."
    default_table = "transactions"

    def __init__(self, kind: str, key: str = "unsupported"):
        super().__init__(key, engine={"postgres": "PostgreSQL", "spark": "Spark"}.get(kind, kind))


class Connection:
    """A session in PostgreSQL or Spark that runs DuckDB-dialect SQL (see :func:`translate`)."""

    kind = ""
    dialect = ""

    def run(self, sql: str) -> pa.Table:  # pragma: no cover - abstract
        raise NotImplementedError

    def execute(self, query: str, params: list | tuple | None = None) -> Result:
        """Run one of the analyses' DuckDB-dialect statements here.

        A statement this engine cannot run (not every DuckDB construct translates yet) raises
        :class:`NotOnThisEngine`, so the analysis is skipped in plain words instead of failing the
        notebook; the engine's own message goes to the log, not to the page.
        """
        try:
            return self._execute(query, params)
        except Exception as exc:  # noqa: BLE001 - psycopg, Spark/py4j and sqlglot each raise their own
            log.warning("%s could not run an analysis query (%s): %s", self.kind, type(exc).__name__,
                        str(exc).strip().splitlines()[0][:300] if str(exc).strip() else "")
            raise NotOnThisEngine(self.kind) from exc

    def _execute(self, query: str, params: list | tuple | None = None) -> Result:
        temp = re.match(r"^\s*CREATE\s+TEMP(?:ORARY)?\s+TABLE\s+(\w+)\s+AS\s+(.*)$", query, re.S | re.I)
        if temp:
            return Result(self.create_temp(temp[1], translate(temp[2], self.dialect, params) or ""))
        drop = re.match(r"^\s*DROP\s+TABLE\s+IF\s+EXISTS\s+(\w+)\s*$", query, re.I)
        if drop:
            return Result(self.drop_temp(drop[1]))
        sql = translate(query, self.dialect, params)
        return Result(_EMPTY if sql is None else self.run(sql))

    def create_temp(self, name: str, select: str) -> pa.Table:
        return self.run(f"CREATE TEMPORARY TABLE {name} AS {select}")

    def drop_temp(self, name: str) -> pa.Table:
        return self.run(f"DROP TABLE IF EXISTS {name}")

    def cursor(self) -> Connection:
        return self

    def columns(self, table: str) -> dict[str, str]:  # pragma: no cover - abstract
        """Column name → engine type of a source table (empty when it does not exist)."""
        raise NotImplementedError

    def view(self, name: str, select: str) -> None:
        self.run(f"CREATE OR REPLACE TEMPORARY VIEW {name} AS {select}")

    def close(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class PostgresConnection(Connection):
    """A psycopg session; canonical views live in its ``pg_temp`` schema, which shadows ``schema``."""

    kind = dialect = "postgres"

    def __init__(self, url: str, schema: str = "public", time_zone: str | None = None):
        try:
            import psycopg
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ConfigError('[engine] kind = "postgres" needs psycopg: pip install "loyalty-workbench[postgres]"'
                              ) from exc
        try:
            self.con = psycopg.connect(url, autocommit=True)
        except psycopg.Error as exc:
            raise ConfigError(f"[engine] url {redact_url(url)}: cannot connect ({str(exc).strip()})") from None
        self.schema = schema
        self.run(f"SET search_path TO {quote_ident(schema)}")
        if time_zone:
            self.run(f"SET TIME ZONE {quote_str(time_zone)}")
        self.backend = ibis.postgres.from_connection(self.con)

    def run(self, sql: str) -> pa.Table:
        with self.con.cursor() as cur:
            cur.execute(sql.encode())  # bytes: no placeholder parsing (parameters are inlined)
            if cur.description is None:
                return _EMPTY
            names = [d.name for d in cur.description]
            rows = cur.fetchall()
        arrays = [pa.array([r[i] for r in rows]) for i in range(len(names))]
        return pa.Table.from_arrays(arrays, names=names) if names else _EMPTY

    def columns(self, table: str) -> dict[str, str]:
        schema, _, name = table.rpartition(".")
        rows = self.run(f"SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = "
                        f"{quote_str(schema or self.schema)} AND table_name = {quote_str(name)} "
                        "ORDER BY ordinal_position").to_pylist()
        return {r["column_name"]: r["data_type"].upper() for r in rows}

    def tables(self) -> list[str]:
        rows = self.run("SELECT table_name FROM information_schema.tables WHERE table_schema = "
                        f"{quote_str(self.schema)}").to_pylist()
        return [r["table_name"] for r in rows]

    def view(self, name: str, select: str) -> None:
        self.run(f"CREATE OR REPLACE TEMPORARY VIEW {quote_ident(name)} AS {select}")

    def table(self, name: str) -> ibis.Table:
        return self.backend.table(name)  # ibis looks in the session's temporary schema first

    def close(self) -> None:
        self.con.close()


def _ibis_pyspark_bit_or() -> None:
    """Ibis 12's PySpark compiler has no rule for ``bit_or`` (Spark SQL has the aggregate): add it.

    The customer-value base ORs product-category bits per customer (far cheaper than a distinct count).
    """
    from ibis.backends.sql.compilers.pyspark import PySparkCompiler

    def visit_bit_or(self: Any, _op: Any, *, arg: Any, where: Any, order_by: Any = (), **_kw: Any) -> Any:
        return self.agg.bit_or(arg, where=where)

    PySparkCompiler.visit_BitOr = visit_bit_or


def spark_session_settings(master: str) -> dict[str, str]:
    """SQL settings of the workbench's Spark session.

    ANSI mode off (x/0 and bad casts give NULL, as in DuckDB); 4 shuffle partitions on a local master only
    (a cluster keeps its own ``spark.sql.shuffle.partitions`` / adaptive settings: 4 would starve it); and
    the session time zone UTC whatever ``[engine] time_zone`` says. The canonical timestamps are naive wall
    times, and Spark hands timestamps to Arrow through the session zone: in an America/New_York session
    every complaint time came back 5 hours off (tests/test_engines.py). ibis's pyspark backend pins UTC on
    connecting for the same reason; this keeps it pinned.
    """
    out = {"spark.sql.ansi.enabled": "false", "spark.sql.session.timeZone": "UTC"}
    if master.startswith("local"):
        out["spark.sql.shuffle.partitions"] = "4"
    return out


class SparkConnection(Connection):
    """A SparkSession (``master``); canonical views are session temporary views."""

    kind = dialect = "spark"

    def __init__(self, master: str = "local[2]", database: str | None = None):
        try:
            from pyspark.sql import SparkSession
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ConfigError('[engine] kind = "spark" needs pyspark: pip install "loyalty-workbench[spark]"'
                              ) from exc
        builder = (SparkSession.builder.master(master).appName("loyalty-workbench")
                   .config("spark.ui.enabled", "false")
                   .config("spark.ui.showConsoleProgress", "false"))
        # a session of its own (shared SparkContext): temporary views and settings are per dataset, so two
        # datasets in one process do not overwrite each other's canonical views. The SQL settings are set on
        # that session: a session that existed before (spark-submit, a notebook's own) would not pass on
        # what the builder asks for.
        self.spark = builder.getOrCreate().newSession()
        self.database = database
        _ibis_pyspark_bit_or()
        self.backend = ibis.pyspark.connect(self.spark)
        for key, value in spark_session_settings(master).items():
            self.spark.conf.set(key, value)

    def run(self, sql: str) -> pa.Table:
        return self.spark.sql(sql).toArrow()

    def register_parquet(self, name: str, files: tuple[Path, ...]) -> str:
        view = f"_wb_src_{name}"
        self.spark.read.parquet(*[str(f) for f in files]).createOrReplaceTempView(view)
        return view

    def columns(self, table: str) -> dict[str, str]:
        try:
            schema = self.spark.table(table).schema
        except Exception:  # noqa: BLE001 - AnalysisException: no such table
            return {}
        return {f.name: f.dataType.simpleString().upper() for f in schema.fields}

    def tables(self) -> list[str]:
        if not self.database:
            return []
        return [t.name for t in self.spark.catalog.listTables(self.database)]

    def create_temp(self, name: str, select: str) -> pa.Table:
        return self.run(f"CACHE TABLE {name} AS {select}")

    def drop_temp(self, name: str) -> pa.Table:
        self.run(f"UNCACHE TABLE IF EXISTS {name}")
        return self.run(f"DROP VIEW IF EXISTS {name}")

    def view(self, name: str, select: str) -> None:
        # cached: every analysis query would otherwise re-read the Parquet and re-run the validation
        self.run(f"UNCACHE TABLE IF EXISTS {name}")
        self.run(f"CREATE OR REPLACE TEMPORARY VIEW {name} AS {select}")
        self.run(f"CACHE LAZY TABLE {name}")

    def table(self, name: str) -> ibis.Table:
        return self.backend.table(name)

    def close(self) -> None:
        pass  # the session is shared by the process (getOrCreate); stop it with the application


def connect(config: DatasetConfig) -> Connection:
    """The engine session for ``config.engine`` (postgres or spark)."""
    e = config.engine
    if e.kind == "postgres":
        return PostgresConnection(e.url or "", e.schema or "public", e.time_zone)
    if e.kind == "spark":
        return SparkConnection(e.master or "local[2]", e.database)  # time_zone: the session stays UTC
    raise ConfigError(f"[engine] kind = {e.kind!r} is not a warehouse engine")


# ------------------------------------------------------------------ validation in the engine
_NUMERIC = ("SMALLINT", "INTEGER", "BIGINT", "INT", "TINYINT", "REAL", "DOUBLE", "FLOAT", "NUMERIC",
            "DECIMAL")
_INTEGRAL = ("SMALLINT", "INTEGER", "BIGINT", "INT", "TINYINT")
# the engine types each canonical kind accepts (prefix match on the upper-case type name)
ACCEPTED: dict[str, tuple[str, ...]] = {
    "number": _NUMERIC, "rating": _NUMERIC, "integer": _INTEGRAL + ("NUMERIC", "DECIMAL"),
    "binary": ("BOOL",) + _INTEGRAL,
    "date": ("DATE", "TIMESTAMP"), "timestamp": ("TIMESTAMP", "DATE"),
    "id": ("CHARACTER", "TEXT", "VARCHAR", "STRING", "CHAR") + _INTEGRAL, "text": (),
}


def _typed(kind: str, col: str, src_type: str, dialect: str) -> str:
    """The canonical SQL type of ``col`` in ``dialect`` (ids as text, dates as dates, numbers as doubles)."""
    c = quote_ident(col) if dialect == "postgres" else f"`{col}`"
    double = "DOUBLE PRECISION" if dialect == "postgres" else "DOUBLE"
    text = "TEXT" if dialect == "postgres" else "STRING"
    if kind in ("number", "rating"):
        return f"CAST({c} AS {double})"
    if kind == "integer":
        return f"CAST({c} AS BIGINT)" if src_type.startswith(_INTEGRAL) else f"CAST(round({c}) AS BIGINT)"
    if kind == "binary":
        return f"CAST({c} AS INTEGER)"
    if kind == "date":
        return f"CAST({c} AS DATE)"
    if kind == "timestamp":
        if "WITH TIME ZONE" in src_type or src_type == "TIMESTAMP" and dialect == "spark":
            # an instant: its UTC wall time, whatever the session time zone (DuckDB reads such Parquet so)
            return (f"CAST(({c} AT TIME ZONE 'UTC') AS TIMESTAMP)" if dialect == "postgres"
                    else f"CAST(from_utc_timestamp({c}, 'UTC') AS TIMESTAMP_NTZ)")
        return f"CAST({c} AS TIMESTAMP)" if dialect == "postgres" else f"CAST({c} AS TIMESTAMP_NTZ)"
    return f"CAST({c} AS {text})"


class _WarehouseBuilder(BuildState):
    """Checks the canonical tables in the engine and publishes the valid rows as temporary views."""

    def __init__(self, config: DatasetConfig, con: Connection):
        super().__init__(config, con)
        self.present: list[str] = []
        self.sources: dict[str, str] = {}

    # the builder writes the engine's own SQL (identifiers and types differ), so it runs untranslated
    def q(self, sql: str) -> list[tuple]:
        return Result(self.con.run(sql)).fetchall()

    @property
    def text(self) -> str:
        return "TEXT" if self.con.dialect == "postgres" else "STRING"

    def ident(self, name: str) -> str:
        return quote_ident(name) if self.con.dialect == "postgres" else f"`{name}`"

    def _source(self, name: str, tc: TableConfig | None) -> str | None:
        """Where the canonical table ``name`` is in the engine (None: absent)."""
        if tc is not None and tc.files and isinstance(self.con, SparkConnection):
            return self.con.register_parquet(name, tc.files)
        table = tc.sql_table if tc is not None and tc.sql_table else name
        if isinstance(self.con, SparkConnection) and self.con.database and "." not in table:
            table = f"{self.con.database}.{table}"
        if isinstance(self.con, PostgresConnection) and "." not in table:
            table = f"{self.con.schema}.{table}"
        return table if self.con.columns(table) else None

    def _issue(self, rule: str, table: str, column: str | None, src: str, where: str, show: list[str],
               action: str = "", message: str = "", n: int | None = None) -> int:
        """Record rule ``rule`` with its count (``n``, else counted here) and up to five example rows."""
        if n is None:
            n = int(self.q(f"SELECT count(*) FROM {src} WHERE {where}")[0][0])
        if n:
            sel = ", ".join(f"CAST({self.ident(c)} AS {self.text}) AS {self.ident(c)}" for c in dict.fromkeys(show))
            rows = Result(self.con.run(f"SELECT {sel} FROM {src} WHERE {where} ORDER BY 1 LIMIT {MAX_EXAMPLES}")).df()
            self.report.issues.append(Issue(
                rule=rule, table=table, column=column, count=n, files=[src],
                examples=rows.astype(object).where(rows.notna(), None).to_dict("records"),
                action=action or RULES[rule].action, message=message))
        return n

    def load_table(self, name: str, tc: TableConfig | None) -> None:
        spec = TABLES[name]
        src = self._source(name, tc)
        if src is None:
            if tc is not None:
                raise ConfigError(f"[tables.{name}]: table {tc.sql_table or tc.pattern or name!r} is not in the "
                                  f"{self.con.kind} {'schema' if self.con.kind == 'postgres' else 'catalog'}")
            return
        self.sources[name] = src
        load = TableLoad(table=name, source=src)
        self.report.tables[name] = load
        types = self.con.columns(src) if not src.startswith("_wb_src_") else self.con.columns(src)
        by_lower = {c.lower(): c for c in types}
        missing = [c for c in spec.required if c not in by_lower]
        if missing:
            load.source_rows = int(self.q(f"SELECT count(*) FROM {src}")[0][0])
            load.skipped = True
            self.report.issues.append(Issue(
                rule="missing_column", table=name, column=", ".join(missing), count=load.source_rows, files=[src],
                examples=[{"available_columns": ", ".join(types)}],
                message=f"required column(s) {', '.join(missing)} not found in {src}; the table must have the "
                        "canonical column names"))
            return
        kinds: dict[str, str] = {}
        for col in spec.names:
            if col in by_lower:
                kinds[col] = spec.column(col).kind
        segments = tc.segments if tc is not None else ()
        for seg in segments:
            if seg in by_lower and seg not in kinds:
                kinds[seg] = "text"
        drivers: list[str] = []
        if spec.extra_kind:
            if tc is not None and tc.drivers is not None:
                absent = [d for d in tc.drivers if d not in by_lower]
                if absent:
                    raise ConfigError(f"[tables.{name}].drivers: column(s) {absent} not in {src} (has {', '.join(types)})")
                drivers = list(tc.drivers)
            else:
                drivers = [c for c, t in types.items() if c not in kinds and t.startswith(_NUMERIC)]
            for d in drivers:
                kinds[d] = spec.extra_kind
        # canonical types: a column the engine holds as the wrong type stops the load, named
        for col, kind in kinds.items():
            t = types[by_lower[col.lower()]]
            ok = ACCEPTED[kind]
            if ok and not t.startswith(ok):
                raise DataError(f"{src}.{col} has type {t}, but the canonical {name}.{col} is a {kind} "
                                f"(accepted: {', '.join(sorted(set(ok)))}); cast it in a view in the database")
        typed = {col: _typed(kind, by_lower[col.lower()], types[by_lower[col.lower()]], self.con.dialect)
                 for col, kind in kinds.items()}
        stg = f"(SELECT {', '.join(f'{e} AS {self.ident(c)}' for c, e in typed.items())} FROM {src}) s"
        self.kinds[name] = kinds
        self._validate(name, tc, kinds, stg, src)
        if name == "surveys":
            self.drivers = drivers

    def _validate(self, name: str, tc: TableConfig | None, kinds: dict[str, str], stg: str, src: str) -> None:
        spec = TABLES[name]
        load = self.report.tables[name]
        load.columns = list(kinds)
        id_cols = [c for c in ("customer_id", spec.unique) if c and c in kinds]
        scales = tc.scales if tc is not None else {}
        # (rule, column, condition, columns shown, action); all counted in ONE scan of the table
        checks: list[tuple[str, str, str, list[str], str]] = []
        dbl = "DOUBLE PRECISION" if self.con.dialect == "postgres" else "DOUBLE"
        for col, kind in kinds.items():
            column = spec.column(col)
            required = bool(column and column.required)
            drop = "excluded" if required else "nulled"
            c = self.ident(col)
            if kind in ("number", "rating"):  # NaN / ±inf are not values (NaN = NaN in both engines)
                checks.append(("wrong_type", col, f"{c} IN (CAST('NaN' AS {dbl}), CAST('Infinity' AS {dbl}), "
                                                  f"CAST('-Infinity' AS {dbl}))", id_cols + [col], drop))
            if required:
                checks.append(("missing_value", col, f"{c} IS NULL", id_cols + [col], "excluded"))
            if kind == "rating":
                lo, hi = scales.get(col, DEFAULT_SCALE)
                self.scales.setdefault(name, {})[col] = (lo, hi)
                checks.append(("out_of_scale", col, f"{c} IS NOT NULL AND ({c} < {lo} OR {c} > {hi})",
                               id_cols + [col], drop))
            if kind in ("date", "timestamp"):
                day = quote_str((self.as_of + dt.timedelta(days=1)).isoformat())
                checks.append(("future_date", col, f"{c} >= DATE {day}", id_cols + [col], "excluded"))
        if name == "complaints":
            for col in ("closed_at", "first_response_at"):
                if col in kinds:
                    checks.append(("closed_before_opened", col, f"{self.ident(col)} < opened_at",
                                   id_cols + ["opened_at", col], "excluded"))
        *counts, total = self.q("SELECT " + ", ".join([f"count(CASE WHEN {cond} THEN 1 END)"
                                                       for _, _, cond, _, _ in checks] + ["count(*)"]) + f" FROM {stg}")[0]
        load.source_rows = int(total)
        excluded: list[str] = []
        nulled: dict[str, list[str]] = {}
        for (rule, col, cond, show, action), n in zip(checks, counts, strict=True):
            if n:
                self._issue(rule, name, col, stg, cond, show, action, n=int(n))
                (excluded.append(cond) if action == "excluded" else nulled.setdefault(col, []).append(cond))
        keep = " AND ".join(f"NOT COALESCE({p}, false)" for p in excluded) or "true"
        cols, margin_source = canonical_columns(name, kinds, nulled, self.config.margin_rate, self.ident)
        if name == "transactions":
            self.margin_source = margin_source
        unique = spec.unique if spec.unique in kinds else None
        body = f"SELECT * FROM {stg} WHERE {keep}"
        if unique:
            u = self.ident(unique)
            order = ", ".join(self.ident(c) for c in kinds)
            ranked = f"SELECT *, row_number() OVER (PARTITION BY {u} ORDER BY {order}) AS _k FROM ({body}) v"
            self._issue("duplicate_id", name, unique, f"({ranked}) r", f"{u} IS NOT NULL AND _k > 1", [unique])
            body = f"SELECT * FROM ({ranked}) r WHERE {u} IS NULL OR _k = 1"
        self.con.view(name, f"SELECT {', '.join(cols)} FROM ({body}) w")
        load.loaded_rows = int(self.q(f"SELECT count(*) FROM {name}")[0][0])
        load.excluded_rows = load.source_rows - load.loaded_rows
        if load.source_rows == 0:
            self.report.issues.append(Issue("empty_table", name, None, 0, files=[src],
                                            message="the table has no rows; analyses that need it are skipped"))
        if tc is not None:
            if tc.segments:
                self.semantics.setdefault("segments", {})[name] = list(tc.segments)
            if name == "surveys":
                self.semantics["loyal_kind"] = tc.loyal_kind or "intent"
                self.semantics["wave_date"] = tc.wave_date.isoformat() if tc.wave_date else None
            if name == "complaints":
                self.semantics["closed_statuses"] = list(tc.closed_statuses) if tc.closed_statuses else None
            if name == "customers":
                self.semantics["churn_as_of"] = (tc.churn_as_of or self.as_of).isoformat()
        elif name == "customers":
            self.semantics["churn_as_of"] = self.as_of.isoformat()
        self.present.append(name)

    def cross_checks(self) -> None:
        if "customers" not in self.present and "transactions" in self.present:
            self.con.view("customers", "SELECT customer_id, CAST(min(date) AS DATE) AS signup_date "
                                       "FROM transactions GROUP BY customer_id")
            n = int(self.q("SELECT count(*) FROM customers")[0][0])
            self.report.tables["customers"] = TableLoad("customers", "derived from transactions", n, 0, 0, n,
                                                        columns=["customer_id", "signup_date"], derived=True)
            self.kinds["customers"] = {"customer_id": "id", "signup_date": "date"}
            self.present.insert(0, "customers")
            self.semantics.setdefault("churn_as_of", self.as_of.isoformat())
        elif "customers" in self.present:
            for table in ("transactions", "surveys", "complaints", "members", "points"):
                if table in self.present and "customer_id" in self.kinds.get(table, {}):
                    where = "customer_id IS NOT NULL AND customer_id NOT IN (SELECT customer_id FROM customers)"
                    self._issue("orphan_customer_id", table, "customer_id", table, where, ["customer_id"])

    def meta(self) -> dict[str, Any]:
        present = [t for t in TABLES if t in self.present]
        return {
            "schema_version": SCHEMA_VERSION, "workbench_version": __version__, "fingerprint": "",
            "name": self.config.name, "currency": self.config.currency, "margin_rate": self.config.margin_rate,
            "margin_source": self.margin_source, "source": self.config.source_label(),
            "built_at": dt.datetime.now().isoformat(timespec="seconds"), "engine": self.con.kind,
            "tables": present, "kinds": {t: self.kinds.get(t, {}) for t in present},
            "scales": {t: {c: list(v) for c, v in s.items()} for t, s in self.scales.items()},
            "drivers": self.drivers, "validation": self.report.to_dict(), **self.semantics,
        }


# ------------------------------------------------------------------ dataset
class WarehouseDataset(Dataset):
    """A :class:`~workbench.engine.Dataset` whose tables live in PostgreSQL or Spark (see module docs)."""

    def __init__(self, con: Connection, meta: dict[str, Any], config: DatasetConfig):
        key = json.dumps([con.kind, config.engine.url and redact_url(config.engine.url), config.engine.schema,
                          config.engine.master, str(config.config_path), id(con)], default=str)
        self.path = Path(f"{con.kind}-{hashlib.sha1(key.encode()).hexdigest()[:12]}")  # a cache key, not a file
        self.meta = meta
        self.config = config
        self._con = con  # type: ignore[assignment]  # DuckDB-like execute()
        self.backend = con.backend

    def table(self, name: str) -> ibis.Table:
        self.require(name)
        return self._con.table(name)  # type: ignore[attr-defined]

    def sql(self, query: str, params: list | None = None) -> pd.DataFrame:
        return self._con.execute(query, params).df()

    supports_filters = False

    def restrict(self, **where: Any) -> Dataset:
        """The whole dataset for an empty filter; a customer filter is refused in plain words (DuckDB only yet:
        the filtered views would need a second session per filter in the engine)."""
        merged = {k: v for k, v in where.items() if v not in (None, [], ())}
        if not merged:
            return self
        raise NotOnThisEngine(self._con.kind, "filters")

    def close(self) -> None:
        self._con.close()

    def __repr__(self) -> str:
        return f"<Dataset {self.name!r} in {self._con.kind}: {', '.join(self.tables)}>"


def open_warehouse(config: DatasetConfig) -> WarehouseDataset:
    """Check the canonical tables in the engine, publish the valid rows as temporary views, return the dataset."""
    con = connect(config)
    try:
        builder = _WarehouseBuilder(config, con)
        names = set(config.tables)
        if not names:
            names = set(con.tables()) & set(TABLES)  # type: ignore[attr-defined]
        for name in TABLES:
            if name in names:
                builder.load_table(name, config.tables.get(name))
        if not builder.present:
            where = (f"schema {config.engine.schema!r}" if con.kind == "postgres"
                     else f"database {config.engine.database!r}" if config.engine.database else "the config")
            raise DataError(f"{config.source_label()}: no canonical table ({', '.join(TABLES)}) found in {con.kind} "
                            f"{where}", builder.report)
        builder.cross_checks()
        return WarehouseDataset(con, builder.meta(), config)
    except BaseException:
        con.close()
        raise
