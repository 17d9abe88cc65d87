//! AQL, the Artifactory Query Language: `items.find({...}).include(...)
//! .sort({...}).offset(n).limit(n)`.
//!
//! [`parse`](parse::parse) turns text into a value tree; [`Query::parse`]
//! gives it meaning (fields, operators, `$and`/`$or`, properties), and
//! [`run_items`] executes it: the store returns candidates from its best
//! index (see [`ItemHint`]), and this module filters, sorts and pages them,
//! so both backends share one evaluation.
//!
//! Semantics worth knowing:
//! - Members of one object combine with the operator of the array holding it
//!   (`$and` at the top): `"$or":[{"repo":"a","repo":"b"}]` is a or b.
//! - `$match`/`$nmatch` use `*` and `?`, case-sensitively, like paths.
//! - On a property, `$eq`/`$match`/`$gt`… hold when any value of the key
//!   does; `$ne`/`$nmatch` hold when no value does (also when the key is absent).
//! - Missing checksums (folders) equal `null`.

pub mod parse;

use std::cmp::Ordering;

use crate::Error;
use crate::artifact::{Item, RepoKey};
use crate::bundle::Millis;
use crate::digest::Sha256;
use crate::rules::Pattern;
use crate::store::ItemRepo;
use parse::{Pos, Value, error_at};

/// What a query searches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Domain {
    /// `items.find`
    Items,
    /// `builds.find`
    Builds,
}

/// An item field AQL knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Field {
    /// `repo`
    Repo,
    /// `path`
    Path,
    /// `name`
    Name,
    /// `type`
    Type,
    /// `size`
    Size,
    /// `depth`
    Depth,
    /// `created`
    Created,
    /// `modified`
    Modified,
    /// `updated`
    Updated,
    /// `created_by`
    CreatedBy,
    /// `modified_by`
    ModifiedBy,
    /// `sha256`
    Sha256,
    /// `actual_sha1`
    ActualSha1,
    /// `actual_md5`
    ActualMd5,
    /// `original_sha1`
    OriginalSha1,
    /// `original_md5`
    OriginalMd5,
}

impl Field {
    /// Every field, in Artifactory's output order.
    pub const ALL: [Field; 16] = [
        Field::Repo,
        Field::Path,
        Field::Name,
        Field::Type,
        Field::Size,
        Field::Depth,
        Field::Created,
        Field::CreatedBy,
        Field::Modified,
        Field::ModifiedBy,
        Field::Updated,
        Field::Sha256,
        Field::ActualSha1,
        Field::ActualMd5,
        Field::OriginalSha1,
        Field::OriginalMd5,
    ];

    /// Fields returned when the query has no `.include`.
    pub const DEFAULT: [Field; 10] = [
        Field::Repo,
        Field::Path,
        Field::Name,
        Field::Type,
        Field::Size,
        Field::Created,
        Field::CreatedBy,
        Field::Modified,
        Field::ModifiedBy,
        Field::Updated,
    ];

    /// The AQL name.
    pub fn name(self) -> &'static str {
        match self {
            Field::Repo => "repo",
            Field::Path => "path",
            Field::Name => "name",
            Field::Type => "type",
            Field::Size => "size",
            Field::Depth => "depth",
            Field::Created => "created",
            Field::Modified => "modified",
            Field::Updated => "updated",
            Field::CreatedBy => "created_by",
            Field::ModifiedBy => "modified_by",
            Field::Sha256 => "sha256",
            Field::ActualSha1 => "actual_sha1",
            Field::ActualMd5 => "actual_md5",
            Field::OriginalSha1 => "original_sha1",
            Field::OriginalMd5 => "original_md5",
        }
    }

    fn parse(name: &str, pos: Pos) -> Result<Field, Error> {
        Field::ALL
            .into_iter()
            .find(|f| f.name() == name)
            .ok_or_else(|| {
                let known: Vec<&str> = Field::ALL.iter().map(|f| f.name()).collect();
                error_at(
                    pos,
                    format!(
                        "unknown item field '{name}'; known fields: {}",
                        known.join(", ")
                    ),
                )
            })
    }

    fn kind(self) -> FieldKind {
        match self {
            Field::Size | Field::Depth => FieldKind::Int,
            Field::Created | Field::Modified | Field::Updated => FieldKind::Date,
            _ => FieldKind::Str,
        }
    }

    /// The field's value on an item.
    pub fn value(self, item: &Item) -> FieldValue {
        let sum = |f: fn(&crate::digest::Checksums) -> String| item.checksums.as_ref().map(f);
        match self {
            Field::Repo => FieldValue::Str(Some(item.repo.to_string())),
            Field::Path => FieldValue::Str(Some(item.path.folder().to_string())),
            Field::Name => FieldValue::Str(Some(item.path.name().to_string())),
            Field::Type => FieldValue::Str(Some(item.kind.as_str().to_string())),
            Field::Size => FieldValue::Int(item.size),
            Field::Depth => FieldValue::Int(item.path.depth()),
            Field::Created => FieldValue::Date(item.created),
            Field::Modified | Field::Updated => FieldValue::Date(item.modified),
            Field::CreatedBy => FieldValue::Str(Some(item.created_by.clone())),
            Field::ModifiedBy => FieldValue::Str(Some(item.modified_by.clone())),
            Field::Sha256 => FieldValue::Str(sum(|c| c.sha256.to_hex())),
            Field::ActualSha1 | Field::OriginalSha1 => FieldValue::Str(sum(|c| c.sha1.to_hex())),
            Field::ActualMd5 | Field::OriginalMd5 => FieldValue::Str(sum(|c| c.md5.to_hex())),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FieldKind {
    Str,
    Int,
    Date,
}

/// A field's value on one item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FieldValue {
    /// Text; `None` for checksums of folders.
    Str(Option<String>),
    /// A count or size.
    Int(u64),
    /// A time.
    Date(Millis),
}

impl FieldValue {
    fn cmp(&self, other: &FieldValue) -> Ordering {
        match (self, other) {
            (FieldValue::Str(a), FieldValue::Str(b)) => a.cmp(b),
            (FieldValue::Int(a), FieldValue::Int(b))
            | (FieldValue::Date(a), FieldValue::Date(b)) => a.cmp(b),
            _ => Ordering::Equal,
        }
    }
}

/// A comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `$eq`
    Eq,
    /// `$ne`
    Ne,
    /// `$gt`
    Gt,
    /// `$gte`
    Gte,
    /// `$lt`
    Lt,
    /// `$lte`
    Lte,
    /// `$match`
    Match,
    /// `$nmatch`
    Nmatch,
    /// `$last`: within the given span before now (a date at or after now − span).
    Last,
    /// `$before`: up to the given span before now (a date at or before now − span).
    Before,
}

impl Op {
    fn parse(name: &str, pos: Pos) -> Result<Op, Error> {
        Ok(match name {
            "$eq" => Op::Eq,
            "$ne" => Op::Ne,
            "$gt" => Op::Gt,
            "$gte" => Op::Gte,
            "$lt" => Op::Lt,
            "$lte" => Op::Lte,
            "$match" => Op::Match,
            "$nmatch" => Op::Nmatch,
            "$last" => Op::Last,
            "$before" => Op::Before,
            other => {
                return Err(error_at(
                    pos,
                    format!(
                        "unknown operator '{other}'; use $eq, $ne, $gt, $gte, $lt, $lte, $match, $nmatch, $last or $before"
                    ),
                ));
            }
        })
    }

    fn holds(self, ord: Ordering) -> bool {
        match self {
            Op::Eq => ord == Ordering::Equal,
            Op::Ne => ord != Ordering::Equal,
            Op::Gt => ord == Ordering::Greater,
            Op::Gte => ord != Ordering::Less,
            Op::Lt => ord == Ordering::Less,
            Op::Lte | Op::Before => ord != Ordering::Greater,
            Op::Last => ord != Ordering::Less,
            Op::Match | Op::Nmatch => false,
        }
    }

    fn negative(self) -> bool {
        matches!(self, Op::Ne | Op::Nmatch)
    }

    fn positive(self) -> Op {
        match self {
            Op::Ne => Op::Eq,
            Op::Nmatch => Op::Match,
            other => other,
        }
    }
}

/// A compiled right-hand side.
#[derive(Clone, Debug)]
enum Operand {
    Value(FieldValue),
    Pattern(Pattern),
    /// A span before "now", for `$last`/`$before`; `Query::parse_at`
    /// replaces it with a date, and nothing evaluates it before.
    Ago(Span),
}

/// A relative time such as `3d` or `2mo`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Span {
    amount: u64,
    months: bool,
    /// Milliseconds per unit, for units of fixed length.
    unit_ms: u64,
}

impl Span {
    /// Parses AQL's relative times: a whole number and a unit (`ms`/`mills`,
    /// `s`/`seconds`, `minutes`, `d`/`days`, `w`/`weeks`, `mo`/`months`,
    /// `y`/`years`).
    fn parse(text: &str) -> Option<Span> {
        let split = text.find(|c: char| !c.is_ascii_digit())?;
        let (digits, unit) = text.split_at(split);
        let amount: u64 = digits.parse().ok()?;
        let (months, unit_ms) = match unit {
            "ms" | "mills" => (false, 1),
            "s" | "seconds" => (false, 1_000),
            "minutes" => (false, 60_000),
            "d" | "days" => (false, 86_400_000),
            "w" | "weeks" => (false, 7 * 86_400_000),
            "mo" | "months" => (true, 1),
            "y" | "years" => (true, 12),
            _ => return None,
        };
        Some(Span {
            amount,
            months,
            unit_ms,
        })
    }

    /// The moment `self` before `now`.
    fn before(self, now: Millis) -> Millis {
        if self.months {
            crate::time::months_before(now, self.amount.saturating_mul(self.unit_ms))
        } else {
            now.saturating_sub(self.amount.saturating_mul(self.unit_ms))
        }
    }
}

/// A search criterion.
#[derive(Clone, Debug)]
pub enum Criterion {
    /// All hold (an empty list is true).
    And(Vec<Criterion>),
    /// Any holds (an empty list is false).
    Or(Vec<Criterion>),
    /// A comparison on a field.
    Field {
        /// The field.
        field: Field,
        /// The operator.
        op: Op,
        /// The compiled operand.
        operand: OperandBox,
    },
    /// A comparison on a property.
    Prop {
        /// Property key.
        key: String,
        /// The operator.
        op: Op,
        /// The operand as written.
        value: String,
        /// The compiled pattern for `$match`/`$nmatch`.
        pattern: Option<Pattern>,
    },
}

/// An opaque compiled operand.
#[derive(Clone, Debug)]
pub struct OperandBox(Operand);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Combine {
    And,
    Or,
}

fn literal_text(v: &Value) -> Result<Option<String>, Error> {
    match v {
        Value::Str(s, _) | Value::Num(s, _) => Ok(Some(s.clone())),
        Value::Bool(b, _) => Ok(Some(b.to_string())),
        Value::Null(_) => Ok(None),
        other => Err(error_at(
            other.pos(),
            format!(
                "expected a value to compare with, found {}",
                other.describe()
            ),
        )),
    }
}

fn compile_field(field: Field, op: Op, v: &Value) -> Result<Criterion, Error> {
    let text = literal_text(v)?;
    // `"type":"any"` (Artifactory's word for files and folders) holds for
    // every item; it still names `type`, so no file-only default is added.
    if field == Field::Type && op == Op::Eq && text.as_deref() == Some("any") {
        return Ok(Criterion::Field {
            field,
            op: Op::Match,
            operand: OperandBox(Operand::Pattern(Pattern::case_sensitive("*"))),
        });
    }
    let operand = match (op, field.kind(), text) {
        (Op::Last | Op::Before, FieldKind::Date, Some(t)) => {
            Operand::Ago(Span::parse(&t).ok_or_else(|| {
                error_at(
                    v.pos(),
                    format!(
                        "'{t}' is not a relative time; use a number and ms, s, minutes, d, w, mo or y, such as 3d"
                    ),
                )
            })?)
        }
        (Op::Last | Op::Before, _, _) => {
            return Err(error_at(
                v.pos(),
                format!(
                    "$last and $before take a relative time on a date field (created, modified, updated), not on '{}'",
                    field.name()
                ),
            ));
        }
        (Op::Match | Op::Nmatch, _, Some(t)) => Operand::Pattern(Pattern::case_sensitive(&t)),
        (Op::Match | Op::Nmatch, _, None) => {
            return Err(error_at(v.pos(), "$match needs a pattern, not null"));
        }
        (_, FieldKind::Str, t) => Operand::Value(FieldValue::Str(t)),
        (_, FieldKind::Int, Some(t)) => {
            Operand::Value(FieldValue::Int(t.parse().map_err(|_| {
                error_at(
                    v.pos(),
                    format!(
                        "field '{}' is a number; '{t}' is not a whole number",
                        field.name()
                    ),
                )
            })?))
        }
        (_, FieldKind::Date, Some(t)) => {
            let millis = t.parse::<u64>().ok().or_else(|| crate::time::parse_iso(&t)).ok_or_else(|| {
                error_at(v.pos(), format!("field '{}' is a date; '{t}' is not a date such as 2024-05-01T10:00:00Z", field.name()))
            })?;
            Operand::Value(FieldValue::Date(millis))
        }
        (_, _, None) => {
            return Err(error_at(
                v.pos(),
                format!("field '{}' is never null", field.name()),
            ));
        }
    };
    Ok(Criterion::Field {
        field,
        op,
        operand: OperandBox(operand),
    })
}

fn compile_prop(key: &str, op: Op, v: &Value) -> Result<Criterion, Error> {
    if matches!(op, Op::Last | Op::Before) {
        return Err(error_at(
            v.pos(),
            format!("$last and $before apply to date fields, not to the property '{key}'"),
        ));
    }
    let value =
        literal_text(v)?.ok_or_else(|| error_at(v.pos(), "property values are never null"))?;
    let pattern = matches!(op, Op::Match | Op::Nmatch).then(|| Pattern::case_sensitive(&value));
    Ok(Criterion::Prop {
        key: key.to_string(),
        op,
        value,
        pattern,
    })
}

/// The comparisons in `{"$op": value, ...}` or a bare value (meaning `$eq`).
fn comparisons(
    v: &Value,
    mut make: impl FnMut(Op, &Value) -> Result<Criterion, Error>,
) -> Result<Criterion, Error> {
    match v {
        Value::Obj(members, pos) => {
            if members.is_empty() {
                return Err(error_at(
                    *pos,
                    "expected at least one comparison such as {\"$eq\": ...}",
                ));
            }
            let parts = members
                .iter()
                .map(|(op, p, val)| make(Op::parse(op, *p)?, val))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(if parts.len() == 1 {
                parts.into_iter().next().unwrap_or(Criterion::And(vec![]))
            } else {
                Criterion::And(parts)
            })
        }
        other => make(Op::Eq, other),
    }
}

fn member(key: &str, pos: Pos, v: &Value) -> Result<Criterion, Error> {
    match key {
        "$and" | "$or" => {
            let combine = if key == "$and" {
                Combine::And
            } else {
                Combine::Or
            };
            let parts = match v {
                Value::Arr(items, _) => items
                    .iter()
                    .map(|item| match item {
                        Value::Obj(members, _) => object(members, combine),
                        other => Err(error_at(
                            other.pos(),
                            format!(
                                "expected an object inside {key}, found {}",
                                other.describe()
                            ),
                        )),
                    })
                    .collect::<Result<Vec<_>, _>>()?,
                Value::Obj(members, _) => vec![object(members, combine)?],
                other => {
                    return Err(error_at(
                        other.pos(),
                        format!(
                            "{key} takes an array of criteria, found {}",
                            other.describe()
                        ),
                    ));
                }
            };
            Ok(combined(parts, combine))
        }
        k if k.starts_with('@') => {
            let prop = &k[1..];
            if prop.is_empty() {
                return Err(error_at(pos, "'@' must be followed by a property key"));
            }
            comparisons(v, |op, val| compile_prop(prop, op, val))
        }
        k if k.starts_with('$') => Err(error_at(
            pos,
            format!("'{k}' is not supported here; criteria combine with $and and $or"),
        )),
        k => {
            let field = Field::parse(k, pos)?;
            comparisons(v, |op, val| compile_field(field, op, val))
        }
    }
}

fn combined(parts: Vec<Criterion>, combine: Combine) -> Criterion {
    if parts.len() == 1 {
        return parts.into_iter().next().unwrap_or(Criterion::And(vec![]));
    }
    match combine {
        Combine::And => Criterion::And(parts),
        Combine::Or => Criterion::Or(parts),
    }
}

fn object(members: &[(String, Pos, Value)], combine: Combine) -> Result<Criterion, Error> {
    let parts = members
        .iter()
        .map(|(k, p, v)| member(k, *p, v))
        .collect::<Result<Vec<_>, _>>()?;
    if parts.is_empty() {
        return Ok(Criterion::And(vec![]));
    }
    Ok(combined(parts, combine))
}

fn matches_operand(op: Op, operand: &Operand, actual: &FieldValue) -> bool {
    match operand {
        Operand::Pattern(p) => {
            let text = match actual {
                FieldValue::Str(Some(s)) => s.clone(),
                FieldValue::Str(None) => return op.negative(),
                FieldValue::Int(n) => n.to_string(),
                FieldValue::Date(d) => crate::time::format_iso(*d),
            };
            p.matches(&text) != op.negative()
        }
        // `Query::parse_at` resolves every span; an unresolved one matches nothing.
        Operand::Ago(_) => false,
        Operand::Value(expected) => match (actual, expected) {
            // null only equals null; ordering against null is false.
            (FieldValue::Str(None), FieldValue::Str(None)) => {
                matches!(op, Op::Eq | Op::Gte | Op::Lte)
            }
            (FieldValue::Str(None), _) | (_, FieldValue::Str(None)) => op == Op::Ne,
            _ => op.holds(actual.cmp(expected)),
        },
    }
}

/// Compares property values numerically when both sides are numbers.
fn cmp_prop(a: &str, b: &str) -> Ordering {
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
        _ => a.cmp(b),
    }
}

impl Criterion {
    /// Whether `item` satisfies the criterion.
    pub fn matches(&self, item: &Item) -> bool {
        match self {
            Criterion::And(parts) => parts.iter().all(|c| c.matches(item)),
            Criterion::Or(parts) => parts.iter().any(|c| c.matches(item)),
            Criterion::Field { field, op, operand } => {
                matches_operand(*op, &operand.0, &field.value(item))
            }
            Criterion::Prop {
                key,
                op,
                value,
                pattern,
            } => {
                let values = item.props.get(key).map(Vec::as_slice).unwrap_or(&[]);
                let positive = op.positive();
                let any = values.iter().any(|v| match (positive, pattern) {
                    (Op::Match, Some(p)) => p.matches(v),
                    (op, _) => op.holds(cmp_prop(v, value)),
                });
                any != op.negative()
            }
        }
    }

    /// Equalities every match must satisfy, for choosing an index.
    pub fn hint(&self) -> ItemHint {
        let mut hint = ItemHint::default();
        let top: Vec<&Criterion> = match self {
            Criterion::And(parts) => parts.iter().collect(),
            other => vec![other],
        };
        for c in top {
            match c {
                Criterion::Field {
                    field,
                    op: Op::Eq,
                    operand: OperandBox(Operand::Value(FieldValue::Str(Some(v)))),
                } => match field {
                    Field::Repo => hint.repo = RepoKey::parse(v.clone()).ok().or(hint.repo.take()),
                    Field::Path => hint.folder = Some(v.clone()),
                    Field::Name => hint.name = Some(v.clone()),
                    Field::Sha256 => hint.sha256 = Sha256::parse_hex(v).ok().or(hint.sha256),
                    _ => {}
                },
                Criterion::Field {
                    field: Field::Name,
                    op: Op::Match,
                    operand: OperandBox(Operand::Pattern(p)),
                } => {
                    let literal: String = p
                        .as_str()
                        .chars()
                        .take_while(|c| !matches!(c, '*' | '?'))
                        .collect();
                    if !literal.is_empty() {
                        hint.name_prefix = Some(literal);
                    }
                }
                Criterion::Prop {
                    key,
                    op: Op::Eq,
                    value,
                    ..
                } => hint.prop = Some((key.clone(), value.clone())),
                _ => {}
            }
        }
        hint
    }
}

/// Constraints a store may use to pick candidates from an index. Every item
/// that matches the query satisfies all of them, so a store may return any
/// superset of the items satisfying them; the query filters exactly afterwards.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ItemHint {
    /// `repo` equals this.
    pub repo: Option<RepoKey>,
    /// `path` (the folder, `.` at the root) equals this.
    pub folder: Option<String>,
    /// `name` equals this.
    pub name: Option<String>,
    /// `name` starts with this (a case-sensitive `$match` with a literal
    /// start); a store may turn it into an index range.
    pub name_prefix: Option<String>,
    /// `sha256` equals this.
    pub sha256: Option<Sha256>,
    /// The property has this value.
    pub prop: Option<(String, String)>,
}

/// What to return for each result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Include {
    /// Fields, in output order.
    pub fields: Vec<Field>,
    /// Whether all properties are returned.
    pub all_props: bool,
    /// Individual property keys to return.
    pub props: Vec<String>,
}

impl Include {
    /// Whether any properties are returned.
    pub fn wants_props(&self) -> bool {
        self.all_props || !self.props.is_empty()
    }
}

/// `.sort({"$asc"|"$desc": [fields]})`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sort {
    /// Ascending or descending.
    pub ascending: bool,
    /// Fields, most significant first.
    pub fields: Vec<Field>,
}

/// An interpreted AQL query.
#[derive(Clone, Debug)]
pub struct Query {
    /// What is searched.
    pub domain: Domain,
    /// The filter.
    pub criteria: Criterion,
    /// The output shape.
    pub include: Include,
    /// The order.
    pub sort: Option<Sort>,
    /// Results to skip.
    pub offset: u64,
    /// Results to return at most.
    pub limit: Option<u64>,
    /// Builds only: which criteria were given, as (key, value) equalities.
    pub build_criteria: Vec<(String, String)>,
    /// Builds only: which of the build's files to return.
    pub build_parts: BuildParts,
}

/// Which files of a build a `builds.find` returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BuildParts {
    /// `module.artifact.item`
    pub artifacts: bool,
    /// `module.dependency.item`
    pub dependencies: bool,
}

fn whole_number(v: &Value, what: &str) -> Result<u64, Error> {
    match v {
        Value::Num(n, p) => n
            .parse()
            .map_err(|_| error_at(*p, format!("{what} takes a whole number, found {n}"))),
        other => Err(error_at(
            other.pos(),
            format!("{what} takes a whole number, found {}", other.describe()),
        )),
    }
}

fn include(args: &[Value], pos: Pos) -> Result<Include, Error> {
    let mut inc = Include {
        fields: vec![],
        all_props: false,
        props: vec![],
    };
    if args.is_empty() {
        return Err(error_at(pos, "include needs at least one field"));
    }
    for a in args {
        let Value::Str(name, p) = a else {
            return Err(error_at(
                a.pos(),
                format!("include takes quoted field names, found {}", a.describe()),
            ));
        };
        match name.as_str() {
            "*" => inc.fields = Field::ALL.to_vec(),
            "property" | "property.*" | "property.key" | "property.value" => inc.all_props = true,
            n if n.starts_with('@') && n.len() > 1 => inc.props.push(n[1..].to_string()),
            n => {
                let f = Field::parse(n, *p)?;
                if !inc.fields.contains(&f) {
                    inc.fields.push(f);
                }
            }
        }
    }
    Ok(inc)
}

fn sort(args: &[Value], pos: Pos) -> Result<Sort, Error> {
    let [Value::Obj(members, opos)] = args else {
        return Err(error_at(
            pos,
            "sort takes one object such as {\"$asc\": [\"name\"]}",
        ));
    };
    let [(dir, dpos, fields)] = members.as_slice() else {
        return Err(error_at(*opos, "sort takes exactly one of $asc or $desc"));
    };
    let ascending = match dir.as_str() {
        "$asc" => true,
        "$desc" => false,
        other => {
            return Err(error_at(
                *dpos,
                format!("expected $asc or $desc, found '{other}'"),
            ));
        }
    };
    let Value::Arr(items, apos) = fields else {
        return Err(error_at(
            fields.pos(),
            format!("{dir} takes an array of field names"),
        ));
    };
    if items.is_empty() {
        return Err(error_at(*apos, format!("{dir} needs at least one field")));
    }
    let fields = items
        .iter()
        .map(|v| match v {
            Value::Str(s, p) => Field::parse(s, *p),
            other => Err(error_at(
                other.pos(),
                format!("expected a quoted field name, found {}", other.describe()),
            )),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Sort { ascending, fields })
}

impl Criterion {
    /// Whether any comparison is on `type`.
    fn mentions_type(&self) -> bool {
        match self {
            Criterion::And(parts) | Criterion::Or(parts) => {
                parts.iter().any(Criterion::mentions_type)
            }
            Criterion::Field { field, .. } => *field == Field::Type,
            Criterion::Prop { .. } => false,
        }
    }

    /// Replaces relative times with dates as of `now`; returns how many
    /// there were.
    fn resolve(&mut self, now: Option<Millis>) -> usize {
        match self {
            Criterion::And(parts) | Criterion::Or(parts) => {
                parts.iter_mut().map(|c| c.resolve(now)).sum()
            }
            Criterion::Field { operand, .. } => match (&operand.0, now) {
                (Operand::Ago(span), Some(now)) => {
                    operand.0 = Operand::Value(FieldValue::Date(span.before(now)));
                    1
                }
                (Operand::Ago(_), None) => 1,
                _ => 0,
            },
            Criterion::Prop { .. } => 0,
        }
    }
}

impl Query {
    /// Parses and interprets AQL text, with relative times (`$last`,
    /// `$before`) taken from `now`: the core has no clock of its own.
    pub fn parse_at(text: &str, now: Millis) -> Result<Query, Error> {
        let mut q = Query::parse_inner(text)?;
        q.criteria.resolve(Some(now));
        Ok(q)
    }

    /// Parses and interprets AQL text that holds no relative times.
    pub fn parse(text: &str) -> Result<Query, Error> {
        let mut q = Query::parse_inner(text)?;
        if q.criteria.resolve(None) > 0 {
            return Err(Error::Invalid {
                field: "aql",
                reason: "$last and $before need the current time (Query::parse_at)".into(),
            });
        }
        Ok(q)
    }

    fn parse_inner(text: &str) -> Result<Query, Error> {
        let raw = parse::parse(text)?;
        let domain = match raw.domain.as_str() {
            "items" => Domain::Items,
            "builds" => Domain::Builds,
            other => {
                return Err(error_at(
                    raw.domain_pos,
                    format!("unsupported domain '{other}'; use items or builds"),
                ));
            }
        };
        let (mut criteria, build_criteria) = match (&raw.criteria, domain) {
            (None, _) => (Criterion::And(vec![]), vec![]),
            (Some(Value::Obj(members, _)), Domain::Items) => {
                (object(members, Combine::And)?, vec![])
            }
            (Some(Value::Obj(members, _)), Domain::Builds) => {
                (Criterion::And(vec![]), build_members(members)?)
            }
            (Some(other), _) => {
                return Err(error_at(
                    other.pos(),
                    format!(
                        "find takes an object of criteria, found {}",
                        other.describe()
                    ),
                ));
            }
        };
        // As in Artifactory, items are files unless the query names a type.
        // Added beside the top-level conjuncts, not around them, so
        // `hint()` still sees the equalities that pick an index.
        if domain == Domain::Items && !criteria.mentions_type() {
            let files = Criterion::Field {
                field: Field::Type,
                op: Op::Eq,
                operand: OperandBox(Operand::Value(FieldValue::Str(Some("file".into())))),
            };
            criteria = match criteria {
                Criterion::And(mut parts) => {
                    parts.push(files);
                    Criterion::And(parts)
                }
                other => Criterion::And(vec![other, files]),
            };
        }
        let mut q = Query {
            domain,
            criteria,
            include: Include {
                fields: Field::DEFAULT.to_vec(),
                all_props: false,
                props: vec![],
            },
            sort: None,
            offset: 0,
            limit: None,
            build_criteria,
            build_parts: BuildParts {
                artifacts: true,
                dependencies: true,
            },
        };
        let mut seen: Vec<&str> = Vec::new();
        for call in &raw.calls {
            if seen.contains(&call.name.as_str()) {
                return Err(error_at(
                    call.pos,
                    format!("'{}' is given twice", call.name),
                ));
            }
            seen.push(&call.name);
            let one = |what: &str| -> Result<&Value, Error> {
                match call.args.as_slice() {
                    [v] => Ok(v),
                    _ => Err(error_at(
                        call.pos,
                        format!("{what} takes exactly one argument"),
                    )),
                }
            };
            match call.name.as_str() {
                "include" if domain == Domain::Builds => {
                    q.build_parts = build_include(&call.args, call.pos)?
                }
                "include" => q.include = include(&call.args, call.pos)?,
                "sort" => q.sort = Some(sort(&call.args, call.pos)?),
                "offset" => q.offset = whole_number(one("offset")?, "offset")?,
                "limit" => q.limit = Some(whole_number(one("limit")?, "limit")?),
                other => {
                    return Err(error_at(
                        call.pos,
                        format!("unknown modifier '{other}'; use include, sort, offset or limit"),
                    ));
                }
            }
        }
        Ok(q)
    }

    /// Sorts (by the query's order, else by repo, path, name) and pages.
    pub fn order_and_page(&self, mut items: Vec<Item>) -> Vec<Item> {
        match &self.sort {
            Some(sort) => items.sort_by(|a, b| {
                let ord = sort
                    .fields
                    .iter()
                    .map(|f| f.value(a).cmp(&f.value(b)))
                    .find(|o| *o != Ordering::Equal)
                    .unwrap_or(Ordering::Equal);
                if sort.ascending { ord } else { ord.reverse() }
            }),
            None => items.sort_by(|a, b| (&a.repo, &a.path).cmp(&(&b.repo, &b.path))),
        }
        let skip = usize::try_from(self.offset).unwrap_or(usize::MAX);
        let take = self
            .limit
            .and_then(|l| usize::try_from(l).ok())
            .unwrap_or(usize::MAX);
        items.into_iter().skip(skip).take(take).collect()
    }
}

fn build_include(args: &[Value], pos: Pos) -> Result<BuildParts, Error> {
    let mut parts = BuildParts {
        artifacts: false,
        dependencies: false,
    };
    for a in args {
        match a {
            Value::Str(s, _) if s == "module.artifact.item" || s == "module.artifact" => {
                parts.artifacts = true
            }
            Value::Str(s, _) if s == "module.dependency.item" || s == "module.dependency" => {
                parts.dependencies = true
            }
            other => {
                return Err(error_at(
                    other.pos(),
                    "builds.find includes \"module.artifact.item\" and/or \"module.dependency.item\"",
                ));
            }
        }
    }
    if !parts.artifacts && !parts.dependencies {
        return Err(error_at(pos, "include needs at least one field"));
    }
    Ok(parts)
}

fn build_members(members: &[(String, Pos, Value)]) -> Result<Vec<(String, String)>, Error> {
    members
        .iter()
        .map(|(k, p, v)| match (k.as_str(), v) {
            ("name" | "number", Value::Str(s, _) | Value::Num(s, _)) => Ok((k.clone(), s.clone())),
            ("name" | "number", other) => Err(error_at(
                other.pos(),
                format!("build {k} must be a string, found {}", other.describe()),
            )),
            (other, _) => Err(error_at(
                *p,
                format!("builds.find supports \"name\" and \"number\", not '{other}'"),
            )),
        })
        .collect()
}

/// Runs an `items` query against a store.
pub async fn run_items(store: &dyn ItemRepo, query: &Query) -> Result<Vec<Item>, Error> {
    run_items_filtered(store, query, |_| true).await
}

/// Runs an `items` query, keeping only items `keep` admits (such as those the
/// caller may read) before sorting and paging, so pages stay full.
pub async fn run_items_filtered(
    store: &dyn ItemRepo,
    query: &Query,
    keep: impl Fn(&Item) -> bool + Send,
) -> Result<Vec<Item>, Error> {
    let candidates = store.find_items(&query.criteria.hint()).await?;
    let matching: Vec<Item> = candidates
        .into_iter()
        .filter(|i| query.criteria.matches(i) && keep(i))
        .collect();
    Ok(query.order_and_page(matching))
}

/// The build a `builds.find` names, and the items its chosen files resolve
/// to: by SHA-256 where the build recorded one, else by name and SHA-1.
/// `Ok(None)` when the build does not exist.
pub async fn run_build(
    store: &dyn ItemRepo,
    query: &Query,
) -> Result<Option<(crate::artifact::Build, Vec<Item>)>, Error> {
    let get = |k: &str| {
        query
            .build_criteria
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    let (Some(name), Some(number)) = (get("name"), get("number")) else {
        return Err(Error::invalid(
            "aql",
            "builds.find needs both \"name\" and \"number\"",
        ));
    };
    let Some(build) = store.get_build(&name, &number).await? else {
        return Ok(None);
    };
    let parts = query.build_parts;
    // Collected up front: a lazy iterator held across `.await` defeats Send inference.
    let mut files: Vec<crate::artifact::BuildFile> = Vec::new();
    for m in &build.modules {
        if parts.artifacts {
            files.extend(m.artifacts.iter().cloned());
        }
        if parts.dependencies {
            files.extend(m.dependencies.iter().cloned());
        }
    }
    let mut out: Vec<Item> = Vec::new();
    for f in files {
        let found = match (f.sha256, f.sha1) {
            (Some(sha), _) => {
                store
                    .find_items(&ItemHint {
                        sha256: Some(sha),
                        ..Default::default()
                    })
                    .await?
            }
            (None, Some(sha1)) => store
                .find_items(&ItemHint {
                    name: Some(f.name.clone()),
                    ..Default::default()
                })
                .await?
                .into_iter()
                .filter(|i| i.checksums.is_some_and(|c| c.sha1 == sha1))
                .collect(),
            _ => vec![],
        };
        for i in found {
            if !out.iter().any(|o| o.repo == i.repo && o.path == i.path) {
                out.push(i);
            }
        }
    }
    Ok(Some((build, out)))
}

/// Runs any query and returns the items it finds (for `builds.find`, the
/// build's items), as release bundle creation needs them.
pub async fn run(store: &dyn ItemRepo, query: &Query) -> Result<Vec<Item>, Error> {
    match query.domain {
        Domain::Items => run_items(store, query).await,
        Domain::Builds => Ok(run_build(store, query)
            .await?
            .map(|(_, items)| items)
            .unwrap_or_default()),
    }
}

#[cfg(test)]
mod tests;
