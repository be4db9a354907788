"""The canonical data model: six tables, their columns, types and rules.

Users bring what they have; every table is optional. An analysis that needs a
missing table or column is skipped with a message naming what is missing
(:func:`workbench.engine.Dataset.require`).

Column kinds
------------
``id``         text identifier (numbers such as ``12346.0`` become ``"12346"``)
``date``       calendar date
``timestamp``  date and time (complaint handling needs hours)
``number``     floating-point amount
``integer``    whole number
``rating``     number on a declared scale (default 1–5; configure 0–10 etc.)
``binary``     0/1 flag
``text``       free text or a label

Validation rules (severity; what loading does) — see :data:`RULES`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SCHEMA_VERSION = "1"
DEFAULT_SCALE: tuple[float, float] = (1.0, 5.0)


@dataclass(frozen=True)
class Column:
    name: str
    kind: str
    required: bool = False
    pii: bool = False
    description: str = ""


@dataclass(frozen=True)
class TableSpec:
    name: str
    columns: tuple[Column, ...]
    unique: str | None = None
    # analyses need at least one of these (surveys: a loyalty measure); without any the table still
    # loads with a ``missing_measure`` warning
    one_of: tuple[str, ...] = ()
    # required columns the loader can fill from a table key or another column (see engine._semantics)
    derivable: tuple[str, ...] = ()
    description: str = ""
    extra_kind: str | None = None  # kind given to extra source columns kept (surveys: rating drivers)

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.required)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)


def _c(name: str, kind: str, required: bool = False, pii: bool = False, description: str = "") -> Column:
    return Column(name, kind, required, pii, description)


TABLES: dict[str, TableSpec] = {
    "customers": TableSpec(
        "customers",
        (
            _c("customer_id", "id", True),
            _c("signup_date", "date", True),
            _c("segment", "text"),
            _c("region", "text"),
            _c("channel", "text"),
            _c("acquisition_cost", "number"),
            _c("birth_year", "integer"),
            _c("gender", "text"),
            _c("income", "number", description="annual income (a trait for segments and look-alikes)"),
            _c("occupation", "text"),
            _c("household_size", "integer"),
            _c("churn_reason", "text"),
            _c("churned_at", "date", description="snapshot exports: when the customer left (empty = active)"),
            _c("churned", "binary", description="1 = churned by churn_as_of (default: the dataset as_of)"),
            _c("tenure_months", "number", description="months as a customer at churn_as_of; "
                                                      "signup_date is derived from it when not mapped"),
            _c("complaint_count", "integer", description="complaints per customer (call-centre extracts)"),
            _c("name", "text", pii=True),
            _c("email", "text", pii=True),
            _c("phone", "text", pii=True),
        ),
        unique="customer_id",
        derivable=("signup_date",),  # = churn_as_of − tenure_months
        description="One row per customer.",
    ),
    "transactions": TableSpec(
        "transactions",
        (
            _c("customer_id", "id", True),
            _c("date", "date", True),
            _c("amount", "number", True, description="negative = refund"),
            _c("order_id", "id"),
            _c("margin", "number", description="gross profit; absent → amount × margin_rate"),
            _c("channel", "text"),
            _c("product_category", "text"),
            _c("discount", "number"),
        ),
        description="One row per purchase (or order line); refunds negative.",
    ),
    "surveys": TableSpec(
        "surveys",
        (
            _c("date", "date", True),
            _c("satisfaction", "rating", True),
            _c("repurchase_intent", "rating"),
            _c("recommend", "rating"),
            _c("loyal", "binary"),
            _c("customer_id", "id"),
            _c("response_id", "id"),
            _c("expectation", "rating"),
            _c("comment", "text"),
            _c("wave", "text", description="survey wave label; undated files: table key wave_date"),
        ),
        unique="response_id",
        one_of=("repurchase_intent", "recommend", "loyal"),
        derivable=("date",),  # = wave_date for an undated single-wave file
        extra_kind="rating",
        description="Survey responses; extra numeric columns are attribute ratings (drivers).",
    ),
    "complaints": TableSpec(
        "complaints",
        (
            _c("complaint_id", "id", True),
            _c("opened_at", "timestamp", True),
            _c("category", "text", True),
            _c("customer_id", "id"),
            _c("first_response_at", "timestamp"),
            _c("closed_at", "timestamp", description="empty = still open"),
            _c("status", "text"),
            _c("channel", "text"),
            _c("severity", "text"),
            _c("handler", "text"),
            _c("resolution", "text"),
            _c("outcome", "text"),
            _c("timely", "binary", description="SLA met (yes/no)"),
            _c("text", "text"),
        ),
        unique="complaint_id",
        description="One row per complaint.",
    ),
    "members": TableSpec(
        "members",
        (
            _c("customer_id", "id", True),
            _c("joined_at", "date", True),
            _c("level", "text", True),
            _c("level_changed_at", "date", description="one row per level spell"),
            _c("left_at", "date"),
        ),
        description="Loyalty-programme membership; level history as rows.",
    ),
    "points": TableSpec(
        "points",
        (
            _c("customer_id", "id", True),
            _c("date", "date", True),
            _c("points", "number", True, description="+earned / −redeemed / −expired"),
            _c("kind", "text"),
        ),
        description="Programme points ledger.",
    ),
    "prospects": TableSpec(
        "prospects",
        (
            _c("prospect_id", "id", True),
            _c("segment", "text"),
            _c("region", "text"),
            _c("channel", "text"),
            _c("birth_year", "integer"),
            _c("gender", "text"),
            _c("income", "number"),
            _c("occupation", "text"),
            _c("household_size", "integer"),
            _c("name", "text", pii=True),
            _c("email", "text", pii=True),
            _c("phone", "text", pii=True),
        ),
        unique="prospect_id",
        description="People who are not customers yet, with the traits customers have (look-alike scoring).",
    ),
}

RATING_KINDS = frozenset({"rating"})
DATE_KINDS = frozenset({"date", "timestamp"})


@dataclass(frozen=True)
class Rule:
    id: str
    severity: str  # "error" | "warning"
    action: str  # "excluded" (rows removed) | "nulled" (value set missing) | "flagged" | "table skipped" | "derived"
    description: str


RULES: dict[str, Rule] = {r.id: r for r in (
    Rule("missing_column", "error", "table skipped", "a required column is missing from the source"),
    Rule("empty_table", "warning", "table skipped", "the source has a header but no data rows"),
    Rule("missing_value", "error", "excluded", "a required value is empty"),
    Rule("unparseable_date", "error", "excluded", "a date could not be read (set date_format)"),
    Rule("wrong_type", "error", "excluded", "a value is not of the column's type (e.g. text in a number column)"),
    Rule("duplicate_id", "error", "excluded", "an id that must be unique repeats (the first row is kept)"),
    Rule("out_of_scale", "error", "nulled", "a rating lies outside its declared scale (not averaged in)"),
    Rule("future_date", "error", "excluded", "a date lies after the load date"),
    Rule("closed_before_opened", "error", "excluded", "closed_at or first_response_at is before opened_at"),
    Rule("negative_points_balance", "error", "flagged", "a customer's running points balance goes below zero"),
    Rule("orphan_customer_id", "warning", "flagged", "customer_id not found in the customers table"),
    Rule("churn_mismatch", "warning", "flagged",
         "customers.churned and churned_at disagree at churn_as_of (churned = 0 but left by then, or "
         "churned = 1 but leaving later)"),
    Rule("missing_measure", "warning", "flagged",
         "none of the columns analyses need is mapped (surveys: repurchase_intent, recommend or loyal); "
         "the table loads and those analyses say what is missing"),
    Rule("filtered", "info", "excluded", "rows removed by the configured filter"),
    Rule("filled", "info", "filled", "empty values replaced by the column's configured fill (rows kept)"),
    Rule("derived_column", "info", "derived",
         "a column filled from a workbench.toml key or another column (surveys.date = wave_date; "
         "customers.signup_date = churn_as_of − tenure_months)"),
)}
# Optional columns that fail a parse rule are set missing rather than excluding the row.


@dataclass
class Issue:
    """One validation finding: a rule broken by ``count`` rows of one column."""

    rule: str
    table: str
    column: str | None
    count: int
    files: list[str] = field(default_factory=list)
    examples: list[dict] = field(default_factory=list)
    action: str = ""
    message: str = ""

    @property
    def severity(self) -> str:
        return RULES[self.rule].severity

    def to_dict(self, examples: bool = True) -> dict:
        d = {
            "rule": self.rule,
            "severity": self.severity,
            "table": self.table,
            "column": self.column,
            "count": int(self.count),
            "action": self.action or RULES[self.rule].action,
            "files": list(self.files),
            "message": self.message or RULES[self.rule].description,
        }
        if examples:
            d["examples"] = self.examples
        return d
